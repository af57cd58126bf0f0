"""Installed files against their wheel's RECORD: a byte changed in uv's cache after the
download's hash check stops the build instead of shipping as "hash-checked"."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest

from packer.build.prefix import Prefix
from packer.build.wheelrecord import Pending, changed
from packer.core.errors import BuildError, ExitCode

from .conftest import copy_model, error_line, run_cli
from .wheels import make_wheel

SOURCE = "def data():\n    return 'from the wheel'\n"


def _site(tmp_path: Path) -> Path:
    """A wheel unpacked as an installer does: its files and its own RECORD."""
    wheel = make_wheel(tmp_path / "wheels", "tp_rec", {"tp_rec/__init__.py": SOURCE,
                                                       "tp_rec/x.txt": "data\n"})
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    info = site / "tp_rec-1.0.dist-info"
    with (info / "RECORD").open("a") as fh:  # rows this check leaves alone
        fh.write("../../bin/tp-rec,sha256=AAAA,1\ntp_rec/gone.py,sha256=AAAA,1\n")
    return site


def test_unchanged_files_pass_and_a_changed_byte_or_a_link_is_named(tmp_path: Path) -> None:
    site = _site(tmp_path)
    assert changed(site, ["tp-rec"]) == []  # a script outside site-packages, a file not there
    (site / "tp_rec" / "x.txt").write_text("datA\n")
    assert changed(site, ["TP_Rec"]) == ["tp_rec/x.txt"]  # the locked name, canonicalised
    assert changed(site, ["other"]) == []  # only the distributions asked about
    target = site / "tp_rec" / "__init__.py"
    shutil.copy(target, tmp_path / "real.py")
    target.unlink()
    os.symlink(tmp_path / "real.py", target)  # same bytes, but not the wheel's file
    assert changed(site, ["tp-rec"]) == ["tp_rec/__init__.py", "tp_rec/x.txt"]



def test_the_check_runs_beside_the_build_and_stops_it_when_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Started after the install, asked for before the pack runs the installed code
    (``Prefix.verified``): a changed byte stops the build with the same sentence and exit
    code as when it ran in line; ``settled`` only waits."""
    monkeypatch.setenv("TRITONPACK_CACHE", str(tmp_path / "cache"))
    site = _site(tmp_path)
    clean = Prefix(tmp_path, "3.10", (), (), records=Pending(site, ["tp-rec"]))
    clean.verified()  # nothing changed: nothing raised
    (site / "tp_rec" / "x.txt").write_text("datA\n")
    changed_one = Prefix(tmp_path, "3.10", (), (), records=Pending(site, ["tp-rec"]))
    changed_one.settled()
    with pytest.raises(BuildError) as caught:
        changed_one.verified()
    assert str(caught.value) == (
        "tp_rec/x.txt as installed differs from the sha256 its wheel's RECORD gives: uv's "
        f"cache ({tmp_path / 'cache' / 'uv'}) holds a changed copy")
    assert caught.value.exit_code == ExitCode.BUILD
    broken = Pending(site, [None])  # type: ignore[list-item]  # raised on its thread
    with pytest.raises(AttributeError):  # what the check raised, raised where it is asked
        broken.result()
    Prefix(tmp_path, "3.10", (), ()).verified()  # no PyPI packages: nothing to wait for

MODEL_PY = '''import numpy as np
import tp_rec
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(
            "OUTPUT0", np.zeros(1, np.float32))]) for _ in requests]
'''


@pytest.mark.slow
def test_a_byte_changed_in_uvs_cache_stops_the_build(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("TRITONPACK_CACHE", str(cache))  # its own: this test damages it
    wheels, recipes = tmp_path / "wheels", tmp_path / "recipes"
    make_wheel(wheels, "tp_rec", {"tp_rec/__init__.py": SOURCE})
    recipes.mkdir()
    (recipes / "imports.toml").write_text('[imports]\ntp_rec = "tp_rec"\n')
    model = copy_model("plain_numpy", tmp_path / "m")
    (model / "1" / "model.py").write_text(MODEL_PY)
    options = ("--triton", "24.10", "--python-from", "auto", "--find-links", wheels,
               "--recipes", recipes)
    assert (res := run_cli(model, *options)).exit_code == 0, res.stderr
    archive = (model / "tritonpack-env.tar.gz").read_bytes()
    [unpacked] = (cache / "uv").glob("archive-v0/*/tp_rec/__init__.py")
    with unpacked.open("a") as fh:  # through the hard link uv installs: one inode, two names
        fh.write("POISON = True\n")
    shutil.rmtree(cache / "envs")  # the environment is built again from the lock
    res = run_cli(model, *options)
    assert res.exit_code == ExitCode.BUILD, res.stderr
    assert error_line(res.stderr) == (
        "error: tp_rec/__init__.py as installed differs from the sha256 its wheel's RECORD "
        f"gives: uv's cache ({cache / 'uv'}) holds a changed copy")
    assert (model / "tritonpack-env.tar.gz").read_bytes() == archive  # nothing was packed
