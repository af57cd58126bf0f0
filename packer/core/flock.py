"""An exclusive file lock held for a block: the one way tritonpack waits for another run
(a build of the same key, an install into the same package shelf)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import BusyError


@contextlib.contextmanager
def held(path: Path, *, remove: bool = False, within: float | None = None,
         busy: str = "", on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """``path``'s exclusive lock (flock; the file is made if missing, never followed through
    a symlink), waited for, and released when the block ends. With ``remove``, the holder
    unlinks the file as it leaves (locks named by a key would otherwise pile up, one empty
    file per build ever made); a waiter that then gets the lock of an unlinked file sees that
    the path no longer names it and locks the path again, so two runs never both hold it.
    With ``within``, a lock still held after that many seconds (a holder stopped with
    Ctrl-Z, or hung) raises ``BusyError`` saying ``busy`` instead of waiting forever.
    ``on_wait`` is called once, when the lock is found held: the user learns why nothing
    moves (another run's build of the same environment may take minutes)."""
    deadline = None if within is None else time.monotonic() + within
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            _lock(fd, deadline, path, busy, on_wait)
            on_wait = None  # said once, however many times the path is locked again
        except BaseException:
            os.close(fd)
            raise
        if _names(path, fd):
            break
        os.close(fd)  # unlinked (or replaced) by the holder before us: lock the path again
    try:
        yield
    finally:
        if remove:
            with contextlib.suppress(OSError):
                path.unlink()
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _lock(fd: int, deadline: float | None, path: Path, busy: str,
          on_wait: Callable[[], None] | None) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        if on_wait is not None:
            on_wait()
    if deadline is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise BusyError(f"{busy or 'another tritonpack run holds ' + str(path)} "
                                f"(its lock {path} is still held)",
                                hint="a run stopped with Ctrl-Z holds it: resume (fg) or end "
                                     "it, then run again") from None
            time.sleep(0.1)


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` is still the file open as ``fd``."""
    try:
        st = path.lstat()
    except OSError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
