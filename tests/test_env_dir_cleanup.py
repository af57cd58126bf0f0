"""What a stopped server's clean-up removes from /tmp: only the env dirs its own log ties to it.
Other jobs on the machine run their own tritonservers, whose Python backends make their
/tmp/python_env_* dirs at any time; an empty one of theirs is about to be extracted into."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from packer.verify.runtime import TRITON_TMP, cleanup_from_log


@pytest.fixture(scope="module", autouse=True)
def one_worker() -> Iterator[None]:
    """A fixture wider than a test puts this module's tests on one worker (conftest's
    ``_groups``): run at once on two, one test's clean-up took the other's dir made within
    its log's window (``busy`` below: the race these tests are about, met by themselves)."""
    yield


@pytest.fixture
def env_dirs() -> Iterator[list[Path]]:
    """Env dirs this test makes where Triton makes them; whatever is left goes at the end."""
    made: list[Path] = []
    yield made
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def _env_dir(made: list[Path]) -> Path:
    made.append(Path(tempfile.mkdtemp(prefix="python_env_", dir=TRITON_TMP)))
    return made[-1]


def _log(when: datetime, *, init: bool = True) -> str:
    """A server's log around its Python backend's initialization (the mkdtemp follows the
    "Shared memory configuration" line), as tritonserver 2.51 writes it."""
    stamp = f"I{when:%m%d %H:%M:%S.%f} 4242"
    first = ('python_be.cc:2104] "Shared memory configuration is shm-default-byte-size=1048576"'
             if init else 'python_be.cc:1966] "backend configuration: {}"')
    return (f"{stamp} {first}\n"
            f'{stamp} python_be.cc:2401] "TRITONBACKEND_GetBackendAttribute: setting attributes"\n')


def test_only_the_empty_env_dir_made_as_the_backend_started_is_removed(
        env_dirs: list[Path]) -> None:
    ours = _env_dir(env_dirs)
    made = datetime.fromtimestamp(ours.stat().st_ctime, UTC)
    busy = _env_dir(env_dirs)  # made at the same moment but not empty: never taken
    (busy / "0").mkdir()
    time.sleep(0.3)
    theirs = _env_dir(env_dirs)  # another job's server, a moment later: still empty
    cleanup_from_log(_log(made))
    assert (ours.exists(), busy.is_dir(), theirs.is_dir()) == (False, True, True)


def test_a_log_that_does_not_say_when_the_backend_started_takes_no_unnamed_dir(
        env_dirs: list[Path]) -> None:
    ours = _env_dir(env_dirs)
    cleanup_from_log(_log(datetime.fromtimestamp(ours.stat().st_ctime, UTC), init=False))
    assert ours.is_dir()
    named = _env_dir(env_dirs)  # a dir the log names (an extracted archive) goes in any case
    (named / "0").mkdir()
    cleanup_from_log(f'I1204 17:18:10.972713 4242 stub_launcher.cc:385] "source {named}/0/bin"\n')
    assert not named.exists()


def _extracting(when: datetime) -> str:
    return (f'I{when:%m%d %H:%M:%S.%f} 4242 pb_env.cc:292] "Extracting Python execution env '
            '/models/m/tritonpack-env.tar.gz"\n')


def test_the_env_dir_a_server_was_killed_extracting_into_is_removed(
        env_dirs: list[Path]) -> None:
    """Killed while extracting its first archive: the dir holds ``0`` (made right after the
    "Extracting" line) and the log names it nowhere; it went with nobody (103 MB each)."""
    ours = _env_dir(env_dirs)
    made = datetime.fromtimestamp(ours.stat().st_ctime, UTC)
    (ours / "0" / "lib").mkdir(parents=True)  # the extraction, cut short
    (ours / "0" / "lib" / "x.so").write_bytes(b"\0" * 100)
    extracting = datetime.fromtimestamp(ours.stat().st_ctime, UTC)
    time.sleep(0.3)
    theirs = _env_dir(env_dirs)  # another job's server, extracting a moment later
    (theirs / "0").mkdir()
    cleanup_from_log(_log(made) + _extracting(extracting))
    assert (ours.exists(), theirs.is_dir()) == (False, True)


_MAPS = ("import mmap, sys; f = open(sys.argv[1], 'rb'); m = mmap.mmap(f.fileno(), 0, "
         "prot=mmap.PROT_READ); print('mapped', flush=True); sys.stdin.read()")


def test_an_env_dir_a_live_process_maps_is_never_removed(env_dirs: list[Path]) -> None:
    """Another job's server extracted at the moment the killed one's log says it began to
    (its dir holds only ``0``), or the log names its dir (a model's own log line): its stub
    maps libpython from there, and the dir is left to it; once nothing maps it, it goes."""
    theirs = _env_dir(env_dirs)
    (theirs / "0" / "lib").mkdir(parents=True)
    (theirs / "0" / "lib" / "libpython3.12.so.1.0").write_bytes(b"\x7fELF" + bytes(4096))
    extracting = datetime.fromtimestamp(theirs.stat().st_ctime, UTC)
    log = _extracting(extracting) + (
        f'I1204 17:18:10.972713 4242 model.py:12] "cache at {theirs}/0/lib"\n')
    stub = subprocess.Popen([sys.executable, "-c", _MAPS, theirs / "0/lib/libpython3.12.so.1.0"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert stub.stdout is not None and stub.stdout.readline() == b"mapped\n"
        cleanup_from_log(log)
        assert (theirs / "0" / "lib" / "libpython3.12.so.1.0").is_file()
    finally:
        stub.communicate(timeout=30)
    cleanup_from_log(log)
    assert not theirs.exists()


def test_a_later_extraction_is_not_taken_for_the_killed_ones(env_dirs: list[Path]) -> None:
    ours = _env_dir(env_dirs)
    (ours / "0").mkdir()
    extracting = datetime.fromtimestamp(ours.stat().st_ctime, UTC)
    (ours / "1").mkdir()  # a dir with more than the first extraction: named in the log once done
    cleanup_from_log(_extracting(extracting))
    assert ours.is_dir()


def test_the_next_verify_removes_what_a_killed_verifys_server_left(
        env_dirs: list[Path], tmp_path: Path) -> None:
    """SIGKILL runs no clean-up and the watchdog that then kills the server has no log: the
    next verify reads the dead run's server log in its work dir, removes the env dirs and shm
    regions it names, then the work dir. A live run's work dir is not touched."""
    import subprocess
    import sys

    from packer.core.debris import RUN_ID
    from packer.verify.runtime import LOCAL_LOG, SHM, WORK_PREFIX, sweep_killed

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    named = _env_dir(env_dirs)
    (named / "0").mkdir()
    region = SHM / f"triton_python_backend_shm_region_tritonpacktest{dead}"
    region.write_bytes(b"\0")
    log = (f'I1204 17:18:10.972713 4242 stub_launcher.cc:385] "source {named}/0/bin"\n'
           f'I1204 17:18:10.972713 4242 shm "{region.name}"\n')
    killed = tmp_path / f"{WORK_PREFIX}{dead}.{RUN_ID}.x"
    live = tmp_path / f"{WORK_PREFIX}{os.getpid()}.{RUN_ID}.y"
    for work in (killed, live):
        work.mkdir()
        (work / LOCAL_LOG).write_text(log)
    try:
        sweep_killed(tmp_path)
        assert (named.exists(), region.exists(), killed.exists(), live.is_dir()) == (
            False, False, False, True)
    finally:
        region.unlink(missing_ok=True)


def test_a_planted_work_dir_names_nothing_that_is_removed(
        env_dirs: list[Path], tmp_path: Path) -> None:
    """A dead verify's work dir that is a link, or holds a log that is a link, is someone
    else's doing: its log is not read (it would name another job's env dirs)."""
    import subprocess
    import sys

    from packer.core.debris import RUN_ID
    from packer.verify.runtime import LOCAL_LOG, WORK_PREFIX, sweep_killed

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    theirs = _env_dir(env_dirs)
    (theirs / "0").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / LOCAL_LOG).write_text(f'I1204 17:18:10.972713 4242 x "source {theirs}/0/bin"\n')
    planted = tmp_path / "temp"
    planted.mkdir()
    (planted / f"{WORK_PREFIX}{dead}.{RUN_ID}.a").symlink_to(elsewhere)
    linked_log = planted / f"{WORK_PREFIX}{dead}.{RUN_ID}.b"
    linked_log.mkdir()
    (linked_log / LOCAL_LOG).symlink_to(elsewhere / LOCAL_LOG)
    if os.getuid() == 0:  # root (CI) can make a dir of another user's: its log is not read
        foreign = planted / f"{WORK_PREFIX}{dead}.{RUN_ID}.c"
        foreign.mkdir()
        (foreign / LOCAL_LOG).write_text((elsewhere / LOCAL_LOG).read_text())
        os.chown(foreign / LOCAL_LOG, 65534, 65534)
        os.chown(foreign, 65534, 65534)
    sweep_killed(planted)
    assert theirs.is_dir() and (elsewhere / LOCAL_LOG).is_file()
