"""A full disk is exit 15 naming the disk that is full, from every stage: the install, the
bytecode compile, the write into the model dir. Each test mounts its own small tmpfs (and
skips, saying why, where mounting is not permitted)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from packer.core.diskfull import no_space_error, reclassify
from packer.core.errors import BuildError, CacheError, ExitCode
from packer.pack.bytecode import compile_bytecode

from .conftest import MODELS, Result, error_line, run_cli, snapshot

SIZE = "8m"
ALL = "8.4 MB in all"  # 8 MiB, as the message counts


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs of this test's own, unmounted after it."""
    where = tmp_path / "small"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(where)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def small_tmpdir(small_disk: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TMPDIR on the small disk, for this process and what it starts."""
    monkeypatch.setenv("TMPDIR", str(small_disk))
    monkeypatch.setattr(tempfile, "tempdir", None)
    return small_disk


def fill(disk: Path, leave: int) -> None:
    """Use all of ``disk`` but ``leave`` bytes."""
    st = os.statvfs(disk)
    with (disk / "filler").open("wb") as fh:
        fh.write(b"\0" * max(st.f_bavail * st.f_frsize - leave, 0))


def test_a_tool_message_names_the_disk_it_was_writing(small_disk: Path) -> None:
    """py-rattler's and uv's messages name the file being written last on the line."""
    dest = small_disk / "env" / "lib" / "x.py"
    text = (f"failed to link 'x.py'\nCaused by: failed to copy file from /var/cache/x.py to "
            f"{dest}: No space left on device (os error 28)")
    err = no_space_error(text)
    assert err is not None and err.exit_code == ExitCode.CACHE == 15
    assert err.message == f"no space left on device: the disk of {small_disk} is full ({ALL})"
    assert no_space_error("failed to copy file: permission denied") is None


def test_a_stage_error_caused_by_a_full_disk_becomes_exit_15(small_tmpdir: Path) -> None:
    """Whatever class the stage raised (exit 8 'installing ... failed: re-lock'), the one place
    every failure passes names the full disk instead."""
    raised = BuildError("installing the locked conda packages failed",
                        hint="re-lock with tritonpack lock",
                        detail=f"failed to write {small_tmpdir}/tritonpack-build/env/lib/a.so: "
                        "No space left on device (os error 28)")
    err = reclassify(raised)
    assert isinstance(err, CacheError)
    assert (err.exit_code, err.message, err.hint) == (
        ExitCode.CACHE, f"no space left on device: the temporary directory {small_tmpdir} is "
        f"full ({ALL})", "free some, or point TMPDIR at a disk with room (nothing in the model "
        "directory was changed)")
    other = BuildError("installing the locked conda packages failed", detail="sha256 mismatch")
    assert reclassify(other) is other


def test_the_bytecode_compile_on_a_full_disk(small_tmpdir: Path) -> None:
    """The env's own Python writes the .pyc (no file name in its traceback): the env root's
    disk is named, here the temporary directory, where the build prefix lives."""
    root = small_tmpdir / "tritonpack-build" / "env"
    (root / "bin").mkdir(parents=True)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    (root / "bin" / f"python{python}").symlink_to(sys.executable)
    src = root / "lib" / "big.py"
    src.parent.mkdir()
    src.write_text("".join(f"value_{i} = {i} * 2 + {i}\n" for i in range(20000)))
    fill(small_tmpdir, leave=96 << 10)
    with pytest.raises(CacheError) as err:
        compile_bytecode(root, python, [src])
    assert err.value.message == (
        f"no space left on device: the temporary directory {small_tmpdir} is full ({ALL})")
    assert err.value.detail  # the tool's own output, with --verbose


@pytest.mark.slow
def test_install_into_a_full_temporary_directory(tmp_path: Path, small_disk: Path) -> None:
    model = tmp_path / "plain_numpy"
    shutil.copytree(MODELS / "plain_numpy", model)
    assert run_cli("lock", model, "--triton", "24.10", "--python-from", "auto", "-q").exit_code == 0
    before = snapshot(model)
    # a process of its own, as a user runs it: the build root follows its TMPDIR
    done = subprocess.run([sys.executable, "-m", "packer", str(model), "--python-from", "auto", "--no-cache"],
                          capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "TMPDIR": str(small_disk)})
    res = Result(done.returncode, done.stdout, done.stderr)
    assert res.exit_code == ExitCode.CACHE == 15, res.stderr
    assert re.fullmatch(
        rf"error: no space left on device: the temporary directory {re.escape(str(small_disk))} "
        rf"is full \({ALL}\); the 2 conda packages need more than their \d+ MB download once "
        r"installed", error_line(res.stderr)), res.stderr
    assert "re-lock" not in res.stderr
    assert snapshot(model) == before


@pytest.mark.slow
def test_writing_into_a_full_model_disk(small_disk: Path) -> None:
    """The archive is written beside its destination: the model's disk is the full one, named
    as such (not the temporary directory's), and nothing in the model dir changed."""
    model = small_disk / "plain_numpy"
    shutil.copytree(MODELS / "plain_numpy", model)
    before = snapshot(model)
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == ExitCode.CACHE, res.stderr
    assert error_line(res.stderr) == (
        f"error: no space left on device: the disk of {model} is full ({ALL})")
    assert snapshot(model) == before
    assert sorted(p.name for p in model.iterdir()) == ["1", "config.pbtxt"]
