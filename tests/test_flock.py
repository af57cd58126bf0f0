"""The file lock runs wait on (``packer.core.flock.held``): one holder at a time, and a lock
named by a build key leaves no file behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from packer.core.flock import held

# Each run enters the lock 30 times; inside, a file says who holds it: anyone who finds it
# held by another says so (two holders at once).
RACER = '''
import os, sys, time
from pathlib import Path
from packer.core.flock import held
lock, inside = Path(sys.argv[1]), Path(sys.argv[2])
for _ in range(30):
    with held(lock, remove=True):
        if inside.exists():
            print("two holders:", inside.read_text(), os.getpid())
        inside.write_text(str(os.getpid()))
        time.sleep(0.002)
        inside.unlink()
'''


def test_a_removed_lock_is_never_held_twice_and_leaves_no_file(tmp_path: Path) -> None:
    """The holder unlinks the file as it leaves; a waiter already blocked on that file gets
    a lock nobody else can see, and must lock the path again (else it and a newcomer, who
    made a new file, both hold it)."""
    lock, inside = tmp_path / "key.lock", tmp_path / "inside"
    runs = [subprocess.Popen([sys.executable, "-c", RACER, str(lock), str(inside)],
                             stdout=subprocess.PIPE, text=True) for _ in range(4)]
    said = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0] * 4
    assert "".join(said) == ""
    assert list(tmp_path.iterdir()) == []


def test_a_kept_lock_stays_and_a_symlink_is_not_followed(tmp_path: Path) -> None:
    lock = tmp_path / "shelf.lock"
    with held(lock):
        assert lock.is_file()
    assert lock.is_file()  # the default: the file stays (a cache's few shelves)
    target = tmp_path / "elsewhere"
    link = tmp_path / "link.lock"
    link.symlink_to(target)
    with pytest.raises(OSError), held(link):
        pass
    assert not target.exists()


def test_a_channel_lock_held_by_a_stopped_run_is_not_waited_for_forever(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run stopped with Ctrl-Z while it makes the local Python channel holds its lock: the
    next run said "packaging Python 3.12.1" and waited with no end; it now stops, exit 14."""
    import fcntl
    import os

    from packer.core import deadlines
    from packer.core.errors import BusyError, ExitCode
    from packer.lock import pychannel
    from packer.resolve.target import host_platform

    monkeypatch.setenv("TRITONPACK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(deadlines, "LOCAL_CHANNEL", 0.5)
    install = pychannel.find_python("3.12")
    channel = pychannel.cache_dir("channels") / (
        f"python-{install.version}-{pychannel._key(install, host_platform())}")
    lock = channel.parent / f".{channel.name}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)  # the stopped run's hold
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(BusyError) as err:
            pychannel.local_channel(install, host_platform())
    finally:
        os.close(fd)
    assert (err.value.exit_code, err.value.message) == (
        ExitCode.BUSY, f"another tritonpack run has been making the local channel for Python "
        f"{install.version} for 0 s (its lock {lock} is still held)")
    assert not channel.exists()


def test_a_waiter_is_told_once_and_a_free_lock_tells_nothing(tmp_path: Path) -> None:
    """Another run's build of the same environment may take minutes: the waiter says why
    nothing moves, once; taking a free lock says nothing."""
    lock = tmp_path / "key.lock"
    told: list[str] = []
    with held(lock, on_wait=lambda: told.append("waiting")):
        pass
    assert told == []
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with held(lock, remove=True, on_wait=lambda: told.append("waiting")):
            assert holder.wait(timeout=30) == 0  # we got it once the holder let go
    finally:
        holder.kill()
        holder.communicate()
    assert told == ["waiting"]


HOLDER = '''
import sys, time
from pathlib import Path
from packer.core.flock import held
with held(Path(sys.argv[1]), remove=True):
    print("held", flush=True)
    time.sleep(1)
'''
