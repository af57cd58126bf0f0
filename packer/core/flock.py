"""An exclusive file lock held for a block: the one way tritonpack waits for another run
(a build of the same key, an install into the same package shelf)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def held(path: Path) -> Iterator[None]:
    """``path``'s exclusive lock (flock; the file is made if missing, never followed through
    a symlink), waited for, and released when the block ends."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
