"""Two tritonpack runs at once on one cache (two CI jobs, the suite's xdist workers)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.build import shelves
from packer.lock.lockfile import read_lock

from .conftest import run_cli
from .freshcache import fresh_cache

Copy = Callable[..., Path]


def _blocked_on(path: Path, pid: int) -> bool:
    """Whether ``pid`` waits for a lock on ``path`` (/proc/locks: a waiter's line has '->')."""
    inode = os.stat(path).st_ino
    return any("->" in line and line.split()[5] == str(pid)
               and line.split()[6].endswith(f":{inode}")
               for line in Path("/proc/locks").read_text().splitlines())


@pytest.mark.slow
def test_an_install_waits_for_another_into_the_same_package_shelf(
        model_copy: Copy, tmp_path: Path, session_cache: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Builds of locks whose conda packages agree extract them into one shelf of rattler's
    package cache: one at a time (at once, one of them failed: exit 8, installing the locked
    conda packages failed). A fresh cache's first shelf is shelf-0."""
    cache = fresh_cache(tmp_path / "cache", session_cache, ("channels", "uv"))  # pkgs: its own
    monkeypatch.setenv("TRITONPACK_CACHE", str(cache))
    model = model_copy("plain_numpy")
    assert run_cli("lock", model, "--triton", "24.10", "--python-from", "auto").exit_code == 0
    conda = read_lock(model / "tritonpack.lock").conda
    shelf = "shelf-0"
    run = None
    try:
        with shelves.shelf_lock(shelf):  # another run's install into that shelf, going on
            run = subprocess.Popen([sys.executable, "-m", "packer", model, "--triton", "24.10",
                                    "--python-from", "auto"], stderr=subprocess.PIPE,
                                   text=True, env={**os.environ, "NO_COLOR": "1"})
            deadline = time.monotonic() + 300
            while not _blocked_on(cache / "pkgs" / f".{shelf}.lock", run.pid):
                assert run.poll() is None, f"the install did not wait: {run.stderr.read()}"  # type: ignore[union-attr]
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert not any((cache / "pkgs" / shelf).glob("python-*"))  # nothing extracted
    except BaseException:
        if run is not None:  # the test failed: the run it started goes with it
            run.kill()
            run.communicate()
        raise
    _, err = run.communicate(timeout=600)
    assert run.returncode == 0, err
    assert "    note  waiting for another tritonpack run's install into the conda package cache" \
        in err.splitlines()
    assert any((cache / "pkgs" / shelf).glob("python-*"))
    recorded = json.loads((cache / "pkgs" / "shelves.json").read_text())
    assert recorded == {shelf: {shelves.folder(p): p.sha256 for p in conda}}


def _pack(model: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "packer", model, "--triton", "24.10",
                             "--python-from", "auto"], stderr=subprocess.PIPE, text=True,
                            env={**env, "NO_COLOR": "1"})


@pytest.mark.slow
def test_a_run_that_waited_for_the_same_build_takes_it_instead_of_building_again(
        model_copy: Copy, tmp_path: Path, session_cache: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two models of one lock packed at once (two CI jobs, one cache): the second waits for
    the first's build of the environment, then reuses the entry it stored; before, it built
    the same environment again once the first was done."""
    cache = fresh_cache(tmp_path / "cache", session_cache, ("channels", "pkgs", "uv"))
    monkeypatch.setenv("TRITONPACK_CACHE", str(cache))
    first = model_copy("plain_numpy")
    second = shutil.copytree(first, tmp_path / "job2" / "plain_numpy")  # another CI job's
    assert run_cli("lock", first, "--triton", "24.10", "--python-from", "auto").exit_code == 0
    (second / "tritonpack.lock").write_bytes((first / "tritonpack.lock").read_bytes())
    a = _pack(first, dict(os.environ))
    b = None
    try:
        assert a.stderr is not None
        seen = []
        for line in a.stderr:  # the first run is building: it holds the build's lock
            seen.append(line)
            if "installing" in line:
                break
        else:
            raise AssertionError("".join(seen))
        b = _pack(second, dict(os.environ))
        _, err_b = b.communicate(timeout=600)
        err_a = "".join(seen) + a.communicate(timeout=600)[1]
    except BaseException:
        for run in (a, b):
            if run is not None:
                run.kill()
                run.communicate()
        raise
    assert (a.returncode, b.returncode) == (0, 0), err_a + err_b
    lines = err_b.splitlines()
    assert any(line.startswith("    note  waiting for another tritonpack run building this "
                               "environment (") for line in lines), err_b
    assert any("reused the environment for this lock" in line for line in lines), err_b
    assert not any("installing" in line for line in lines), err_b  # no second build
    assert run_cli("check", first).exit_code == 0 and run_cli("check", second).exit_code == 0
