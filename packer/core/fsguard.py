"""Never block on, or write over, what is not a regular file.

Opening a FIFO for reading waits for a writer forever; a directory, socket or device where
tritonpack expects a file is a user mistake to name, not a crash. Every read of a path the
user controls (the lock, an environment, ``--inputs``) goes through :func:`read_regular`,
and every output path is checked with :func:`writable_file` before any work is done.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from .errors import TritonPackError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words: 'a directory', 'a FIFO (named pipe)', ..."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def not_regular(path: Path) -> str | None:
    """None when ``path`` is a regular file or absent; else what it is instead."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else kind_of(mode)


def open_regular(path: Path | str, *, follow: bool = True) -> BinaryIO | str:
    """``path`` open for reading when it is a regular file, else what it is in words (and
    nothing left open). Opened with O_NONBLOCK (a FIFO without a writer opens at once
    instead of hanging) and checked with fstat on the open descriptor, so a swap between
    check and open is caught. ``follow=False``: a symlink is not followed (OSError, ELOOP),
    for what someone else may have written (the cache). OSError propagates: callers say
    'no X' in their own words."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            return kind_of(mode)
        os.set_blocking(fd, True)
        fh = os.fdopen(fd, "rb", closefd=True)
        fd = -1
        return fh
    finally:
        if fd >= 0:
            os.close(fd)


def open_if_regular(path: Path | str) -> BinaryIO | None:
    """``open_regular`` without following a symlink, for what someone else may have written
    (the cache, an installed tree): None where ``path`` names no regular file (absent,
    unreadable, a symlink, a FIFO, a device): a miss, never an error."""
    try:
        fh = open_regular(path, follow=False)
    except OSError:
        return None
    return None if isinstance(fh, str) else fh


def read_regular(path: Path, error: type[TritonPackError], what: str = "file",
                 limit: int | None = None, shown: str | None = None) -> bytes:
    """The bytes of regular file ``path``, never blocking on a FIFO or a device (see
    :func:`open_regular`). ``limit`` refuses a file larger than that many bytes.
    FileNotFoundError propagates: callers say 'no X' in their own words."""
    fh = open_regular(path)
    if isinstance(fh, str):
        raise error(f"{shown or path}: is {fh}, not a {what}",
                    hint=f"tritonpack reads the {what} from there: put a regular file "
                         "there, or remove it")
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if limit is not None and size > limit:
            raise error(f"{shown or path}: {size / 1e6:.0f} MB is too large for a {what} "
                        f"(at most {limit / 1e6:.0f} MB)")
        return fh.read()


def writable_file(path: Path, error: type[TritonPackError], what: str) -> None:
    """Refuse an output path that exists as something a rename cannot replace with a file."""
    kind = not_regular(path)
    if kind is not None:
        raise error(f"{path}: is {kind}, where tritonpack writes its {what}",
                    hint="move it away (nothing was written)")
