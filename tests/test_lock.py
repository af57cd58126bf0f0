"""Locking for real: py-rattler solves against a local python channel, uv resolves on PyPI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.version import Version

from packer.core.errors import ExitCode
from packer.lock import conda
from packer.lock.lockfile import read_lock

from .conftest import run_cli

pytestmark = pytest.mark.slow
Copy = Callable[..., Path]


def pins(model: Path) -> dict[str, str]:
    return {p.name: p.version for p in read_lock(model / "tritonpack.lock").pypi}


def test_two_releases_lock_different_pythons_and_wheels(model_copy: Copy) -> None:
    old, new = model_copy("plain_numpy", "old"), model_copy("plain_numpy", "new")
    res = run_cli("lock", old, "--triton", "24.10", "--python-from", "auto", "-q")
    assert res.exit_code == 0, res.stderr
    lock_old = read_lock(old / "tritonpack.lock")
    res = run_cli("lock", new, "--triton", "24.12", "--python-from", "auto", "-q")
    assert res.exit_code == 0, res.stderr
    lock_new = read_lock(new / "tritonpack.lock")
    assert lock_old.python_version().startswith("3.10.")
    assert lock_new.python_version().startswith("3.12.")
    numpy_old = {p.name: p.version for p in lock_old.pypi}["numpy"]
    numpy_new = {p.name: p.version for p in lock_new.pypi}["numpy"]
    assert numpy_old.startswith("1.") and not numpy_new.startswith("1.")  # numpy<2 before 24.11
    python_pkg = {p.name: p for p in lock_new.conda}["python"]
    assert len(python_pkg.sha256) == 64 and python_pkg.url.endswith(".conda")
    assert all(h.startswith("sha256:") for p in lock_new.pypi for h in p.hashes)


def test_relock_unchanged_and_check(model_copy: Copy) -> None:
    model = model_copy("optional")
    assert run_cli("lock", model, "--python-from", "auto", "-q").exit_code == 0
    lock_file = model / "tritonpack.lock"
    before = lock_file.read_bytes(), lock_file.stat().st_mtime_ns
    res = run_cli("lock", model, "--python-from", "auto", "--json")
    assert json.loads(res.stdout)["reused"] is True
    assert (lock_file.read_bytes(), lock_file.stat().st_mtime_ns) == before
    assert set(pins(model)) == {"numpy", "ujson"}  # orjson is optional and undeclared

    check = run_cli("lock", "--check", model, "-q")
    assert (check.exit_code, check.stdout.splitlines()[-1]) == (0, f"{lock_file}: fresh")

    src = model / "1" / "model.py"
    src.write_text(src.read_text() + "\nimport yaml\n")
    check = run_cli("lock", "--check", model, "-q")
    assert check.exit_code == 1
    assert "  imports: +yaml=pyyaml" in check.stdout
    assert "  requirements: +pyyaml" in check.stdout
    assert check.stdout.splitlines()[-1] == (
        f"run: tritonpack lock {model}   (then commit tritonpack.lock)")


def test_export_is_a_hashed_requirements_file(model_copy: Copy) -> None:
    model = model_copy("dynamic")
    assert run_cli("lock", model, "--python-from", "auto", "-q").exit_code == 0
    text = run_cli("export", model).stdout
    names = {line.split("==")[0] for line in text.splitlines() if "==" in line}
    assert {"numpy", "pyyaml", "tqdm", "protobuf"} <= names
    assert "    --hash=sha256:" in text


def test_vision_model_locks_cv2_pil_yaml_sklearn(model_copy: Copy) -> None:
    model = model_copy("vision")
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto", "-q")
    assert res.exit_code == 0, res.stderr
    locked = pins(model)
    for dist in ("opencv-python-headless", "pillow", "pyyaml", "scikit-learn", "scikit-image",
                 "scipy", "numpy"):
        assert dist in locked
    assert locked["numpy"].startswith("1.")


def test_unknown_import_is_an_error_naming_it(model_copy: Copy) -> None:
    model = model_copy("unknown_import")
    res = run_cli("lock", model, "--python-from", "auto")
    assert res.exit_code == ExitCode.RESOLVE == 5
    errors = [line for line in res.stderr.splitlines() if line.startswith(("error:", "hint:"))]
    assert errors[0] == (
        "error: import 'tritonpack_no_such_distribution_xyz' (unknown_import/1/model.py:2) "
        "needs distribution 'tritonpack-no-such-distribution-xyz' (guessed from its name), which "
        "the package index does not have"
    )
    assert errors[1].startswith("hint: if 'tritonpack_no_such_distribution_xyz' is your own code")
    assert not (model / "tritonpack.lock").exists()


def test_falls_back_to_a_local_python_when_no_channel_answers(
    model_copy: Copy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conda, "CONDA_FORGE", "http://127.0.0.1:9/conda-forge")
    model = model_copy("plain_numpy")
    res = run_cli("lock", model, "--triton", "24.10")
    assert res.exit_code == 0, res.stderr
    assert "note  conda-forge is unreachable: using a local Python (--python-from auto)" \
        in res.stderr


def test_pip_tools_resolver(model_copy: Copy) -> None:
    model = model_copy("dynamic")
    # pip-compile runs in the target's Python: Triton 24.10's 3.10 (a local CPython build),
    # not the tests' own 3.11
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto",
                  "--resolver", "pip-tools", "-q")
    assert res.exit_code == 0, res.stderr
    lock = read_lock(model / "tritonpack.lock")
    assert lock.resolver == "pip-tools"
    assert lock.target["python"] == "3.10"
    assert {"numpy", "pyyaml", "tqdm", "protobuf"} <= set(pins(model))
    # numpy 2.3 dropped 3.10: a resolve in tritonpack's own 3.11 would pick it
    numpy = next(p for p in lock.pypi if p.name == "numpy")
    assert Version(numpy.version) < Version("2.3"), numpy.version


def test_pip_tools_refuses_another_platform(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto", "--resolver", "pip-tools",
                  "--platform", "linux-aarch64")
    assert res.exit_code == ExitCode.RESOLVE
    assert res.stderr.splitlines()[-1] == (
        "error: --resolver pip-tools resolves only for this machine's platform (linux-64), "
        "not linux-aarch64: use --resolver uv")
    assert not (model / "tritonpack.lock").exists()
