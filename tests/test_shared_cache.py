"""Two tritonpack runs at once on one cache (two CI jobs, the suite's xdist workers)."""

from __future__ import annotations

import json
import os
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
