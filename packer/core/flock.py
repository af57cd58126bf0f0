"""An exclusive file lock held for a block: the one way tritonpack waits for another run
(a build of the same key, an install into the same package shelf)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def held(path: Path, *, remove: bool = False) -> Iterator[None]:
    """``path``'s exclusive lock (flock; the file is made if missing, never followed through
    a symlink), waited for, and released when the block ends. With ``remove``, the holder
    unlinks the file as it leaves (locks named by a key would otherwise pile up, one empty
    file per build ever made); a waiter that then gets the lock of an unlinked file sees that
    the path no longer names it and locks the path again, so two runs never both hold it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
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


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` is still the file open as ``fd``."""
    try:
        st = path.lstat()
    except OSError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
