"""A full disk, named: whichever stage met it (an install, the pack, the bytecode compile, the
write into the model dir), the user reads exit 15 and the disk that is full, not "re-lock"
(exit 8) or the model dir's disk when ``$TMPDIR``'s was the full one.

The stage that failed may only have a tool's message (uv, py-rattler, the env's Python):
``No space left on device (os error 28)`` with the path it was writing. That path says which
disk; without one, the disk with the least room among the temporary directory and the cache.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path

from .cachehome import cache_root
from .errors import CacheError, TritonPackError

_NO_SPACE = re.compile(r"No space left on device|os error 28\b|\[Errno 28\]|ENOSPC|"
                       r"Disk quota exceeded|os error 122\b|\[Errno 122\]|EDQUOT")
_PATH = re.compile(r"(?<![\w.])(/[^\s'\"`:,;()\[\]]+)")
_LOW = 256 << 20  # below this much free space a disk is taken for the full one


def _mb(size: int) -> str:
    return f"{size / 1e6:.0f} MB" if size >= 10e6 else f"{size / 1e6:.1f} MB"


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _places() -> list[tuple[Path, str, str]]:
    """(root, how a message names it, the hint) of the places tritonpack writes besides the
    model dir, in the order a path is matched against them."""
    tmp = Path(tempfile.gettempdir())
    return [(tmp, f"the temporary directory {tmp}", "free some, or point TMPDIR at a disk "
             "with room (nothing in the model directory was changed)"),
            (cache_root(), f"tritonpack's cache {cache_root()}", "free some with tritonpack "
             "cache prune, or set TRITONPACK_CACHE to a disk with room")]


def _device(path: Path) -> int | None:
    try:
        return _existing(path).stat().st_dev
    except OSError:
        return None


def _name(path: Path) -> tuple[str, str]:
    """How the disk holding ``path`` is named, and what to do about it: by the place it is
    under (the temporary directory, the cache) when it is on that place's disk, else as the
    disk of the directory it was written in."""
    device = _device(path)
    for root, named, hint in _places():
        if _existing(path).resolve().is_relative_to(_existing(root).resolve()) and \
                device == _device(root):
            return named, hint
    return _name_dir(_existing(path if path.is_dir() else path.parent))


def _name_dir(path: Path) -> tuple[str, str]:
    return (f"the disk of {path}",
            "free some space there (nothing in the model directory was changed)")


def _room(path: Path) -> str:
    try:
        st = os.statvfs(_existing(path))
    except OSError:
        return ""
    # its size only: what is free now, after the failed step removed its files, would mislead
    return f" ({_mb(st.f_blocks * st.f_frsize)} in all)"


def _full_path(text: str, filename: str | None) -> Path | None:
    """The path that was being written: the OSError's own, else the last path on the line
    that says no space was left (a copy names its source first and its destination last)."""
    if filename:
        return Path(filename)
    for line in text.splitlines():
        if _NO_SPACE.search(line):
            paths = _PATH.findall(line)
            if paths:
                return Path(paths[-1])
    return None


def _lowest(also: tuple[Path, ...] = ()) -> Path | None:
    """Without a path: the temporary directory, the cache or ``also`` (the destination),
    whichever is nearly full."""
    best: tuple[int, Path] | None = None
    for root in (*also, *(place for place, _, _ in _places())):
        try:
            st = os.statvfs(_existing(root))
        except OSError:
            continue
        free = st.f_bavail * st.f_frsize
        if free < _LOW and (best is None or free < best[0]):
            best = (free, root)
    return best[1] if best else None


def _nearly_full(path: Path) -> bool:
    """Whether ``path``'s disk has under a megabyte left: a tool whose own output went to the
    same full disk dies without saying why (Python exits 120 when it cannot flush)."""
    try:
        st = os.statvfs(_existing(path))
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 1 << 20


def no_space_error(text: str, *, filename: str | None = None, needed: str | None = None,
                   writing: Path | None = None, within: Path | None = None) -> CacheError | None:
    """Exit 15 naming the full disk when ``text`` (an error, a tool's output) says no space was
    left; None otherwise. ``needed``: what the step needed, when the stage knows it;
    ``writing``: the user's directory the step wrote into, named as itself, when the error
    names no file; ``within``: a directory of tritonpack's the step wrote in (named by the
    place it is in: the temporary directory, the cache), also taken for the full disk when
    under a megabyte is left there whatever the text says."""
    if not _NO_SPACE.search(text) and not (within is not None and _nearly_full(within)):
        return None
    also = (writing,) if writing is not None else ()
    path = (_full_path(text, filename) or within or _lowest(also) or writing
            or Path(tempfile.gettempdir()))
    named, hint = _name(path) if path != writing else _name_dir(path)
    return CacheError(f"no space left on device: {named} is full{_room(path)}"
                      + (f"; {needed}" if needed else ""), hint=hint, detail=text)


def from_os_error(exc: OSError, needed: str | None = None,
                  writing: Path | None = None) -> CacheError | None:
    """A full disk met by tritonpack's own write: exit 15 naming that file's disk (a
    compressor's write names no file: then the nearly full one, ``writing`` included)."""
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    filename = exc.filename if isinstance(exc.filename, str) else None
    return no_space_error(f"[Errno {exc.errno}] {exc.strerror}", filename=filename,
                          needed=needed, writing=writing)


def reclassify(exc: TritonPackError) -> TritonPackError:
    """Any stage's error whose cause was a full disk, as that: the one place every command's
    failure passes (``packer.commands.base``), so no stage can send the user to re-lock."""
    if isinstance(exc, CacheError):
        return exc
    cause = exc.__cause__
    filename = cause.filename if isinstance(cause, OSError) and \
        isinstance(cause.filename, str) else None
    text = "\n".join(t for t in (exc.message, exc.detail or "", str(cause or "")) if t)
    return no_space_error(text, filename=filename) or exc
