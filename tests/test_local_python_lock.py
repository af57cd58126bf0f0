"""Locks made with the local-Python fallback hold anywhere: the package is reproducible, the
lock names it logically (no machine path), and it is made again (and checked) when missing."""

from __future__ import annotations

import dataclasses
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.core.errors import ExitCode
from packer.lock.lockfile import read_lock, write_lock
from packer.lock.pychannel import SCHEME, find_python, local_channel

from .conftest import error_line, run_cli

Copy = Callable[..., Path]
pytestmark = pytest.mark.slow


def test_the_same_cpython_gives_the_same_package_whatever_the_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install = find_python("3.10")
    made = []
    for n in (1, 2):
        monkeypatch.setenv("TRITONPACK_CACHE", str(tmp_path.joinpath(f"cache-{n}", *["d"] * n)))
        channel = local_channel(install, "linux-64")
        made.append(sorted((p.relative_to(channel).as_posix(), p.read_bytes())
                           for p in channel.rglob("*.tar.bz2")))
    assert [name for name, _ in made[0]] == [name for name, _ in made[1]]
    assert made[0] == made[1]


def test_the_lock_names_no_machine_path_and_builds_with_the_channel_gone(
        model_copy: Copy, session_cache: Path) -> None:
    model = model_copy("plain_numpy")
    assert run_cli("lock", model, "--triton", "24.10", "--offline").exit_code == 0
    text = (model / "tritonpack.lock").read_text()
    assert "file://" not in text and str(session_cache) not in text
    python = next(p for p in read_lock(model / "tritonpack.lock").conda if p.name == "python")
    assert python.url.startswith(f"{SCHEME}:{python.version}/linux-64/python-")
    shutil.rmtree(session_cache / "channels")  # a colleague's machine, CI, `cache prune --all`
    res = run_cli(model, "--triton", "24.10", "--offline", "--frozen", "--no-cache")
    assert res.exit_code == 0, res.stderr
    assert run_cli("check", model).exit_code == 0
    with tarfile.open(model / "tritonpack-env.tar.gz") as tar:  # nor does the env
        metas = [tar.extractfile(m).read() for m in tar  # type: ignore[union-attr]
                 if m.name.startswith("conda-meta/") and m.name.endswith(".json")]
    assert metas and not [m for m in metas if str(session_cache).encode() in m]


def test_no_matching_cpython_says_which_to_install(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    assert run_cli("lock", model, "--triton", "24.10", "--offline").exit_code == 0
    lock = read_lock(model / "tritonpack.lock")
    python = next(p for p in lock.conda if p.name == "python")
    gone = dataclasses.replace(python, version="3.10.99",
                               url=f"{SCHEME}:3.10.99/linux-64/python-3.10.99-x.tar.bz2")
    write_lock(model / "tritonpack.lock", dataclasses.replace(
        lock, conda=tuple(gone if p is python else p for p in lock.conda)))
    res = run_cli(model, "--triton", "24.10", "--offline", "--frozen", "--no-cache")
    assert (res.exit_code, error_line(res.stderr)) == (ExitCode.TARGET, (
        "error: the lock's Python package was made from a shared-library CPython 3.10.99, and "
        "none is on this machine: install CPython 3.10.99 with --enable-shared (e.g. "
        "PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install 3.10.99), or re-lock with the "
        "Python 3.10 you have"))
