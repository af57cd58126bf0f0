"""The suite's own parallel machinery (conftest): which tests share a worker, the lock the
workers build shared things under."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ENGINE_GROUP, exclusive, pytest_xdist_make_scheduler

ROOT = Path(__file__).parent.parent
pytest.importorskip("xdist")  # the scheduler is xdist's class, subclassed


class _Config:
    """What xdist's scheduler reads of a controller's config: --dist, --tx, the rootdir."""

    rootpath = ROOT

    def getvalue(self, name: str) -> object:
        return {"dist": "loadgroup", "tx": ["2*popen"]}[name]


def _scope(nodeid: str) -> str:
    sched = pytest_xdist_make_scheduler(_Config(), None)  # type: ignore[arg-type]
    return sched._split_scope(nodeid)  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize(("nodeid", "scope"), [
    # the engine's tests assert what it holds: one worker for all of them
    ("tests/test_docker.py::test_directory_env_leaves_no_image", ENGINE_GROUP),
    ("tests/test_image.py::test_a_model_that_does_not_load_tags_nothing", ENGINE_GROUP),
    ("tests/test_docker_engine.py::test_a_container_the_engine_will_not_start_is_removed",
     ENGINE_GROUP),
    # a module-scoped repository, verify's session-scoped environment: built once
    ("tests/test_public_models.py::test_the_repository_verifies_as_a_whole[x]",
     "tests/test_public_models.py"),
    ("tests/test_verify.py::test_never_ready_is_bounded_and_leaves_nothing",
     "tests/test_verify.py"),
    # the rest: one test at a time, wherever a worker is free
    ("tests/test_cli.py::test_version", "tests/test_cli.py::test_version"),
    # an explicit xdist_group mark, where xdist still writes it into the id, is kept
    ("tests/test_cli.py::test_version@mine", "mine"),
])
def test_the_scheduler_groups_what_shares_a_fixture_or_the_engine(nodeid: str, scope: str) -> None:
    assert _scope(nodeid) == scope


def test_other_dist_modes_are_xdists_own() -> None:
    class Load(_Config):
        def getvalue(self, name: str) -> object:
            return "load" if name == "dist" else super().getvalue(name)

    assert pytest_xdist_make_scheduler(Load(), None) is None  # type: ignore[arg-type]


_TRY = ("import fcntl, sys\n"
        "fh = open(sys.argv[1], 'a')\n"
        "try:\n    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n    sys.exit(1)\n")


def test_exclusive_is_held_against_other_processes_and_its_wait_is_bounded(
        tmp_path: Path) -> None:
    lock = tmp_path / "build.lock"
    with exclusive(lock):  # what another worker sees meanwhile: held
        assert subprocess.run([sys.executable, "-c", _TRY, lock]).returncode == 1
    assert subprocess.run([sys.executable, "-c", _TRY, lock]).returncode == 0
    with subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time\n"
                           "fh = open(sys.argv[1], 'a'); fcntl.flock(fh, fcntl.LOCK_EX)\n"
                           "print(flush=True); time.sleep(60)", lock],
                          stdout=subprocess.PIPE) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline()
            t0 = time.monotonic()
            with pytest.raises(TimeoutError, match="held for over 1 s"), exclusive(lock, 1.0):
                pass
            assert time.monotonic() - t0 < 30
        finally:
            holder.kill()
