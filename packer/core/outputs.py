"""Writing beside a destination: one message for a full disk, a read-only file system or a
permission problem, and the directory ``mkdir -p`` would first write to."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path

from . import diskfull
from .errors import PackError, TritonPackError


def existing_ancestor(path: Path) -> Path:
    """The nearest directory that exists: where ``mkdir -p path`` would first write."""
    while not path.is_dir() and path != path.parent:
        path = path.parent
    return path


@contextlib.contextmanager
def output_errors(dest: Path, error: type[TritonPackError] = PackError) -> Iterator[None]:
    """Turn a full disk, a read-only file system or a permission problem into one message."""
    try:
        yield
    except OSError as exc:
        full = diskfull.from_os_error(exc, writing=dest.parent)  # maybe not dest's disk
        if full is not None:
            raise full from exc
        why = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
               errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied"}.get(exc.errno or 0)
        if why is None:
            raise
        raise error(f"cannot write to {dest.parent}: {why}",
                        hint="nothing in the model directory was changed",
                        detail=str(exc)) from exc
