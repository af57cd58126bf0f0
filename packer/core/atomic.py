"""Atomic outputs: write beside the target, fsync, rename. A crash leaves the old file, and
a temporary name carrying the dead run's pid that the next run removes (packer.core.debris)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .debris import tagged
from .signals import signals_held


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    fd, tmp = tempfile.mkstemp(prefix=tagged(f".{path.name}."), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is None and path.exists():
            mode = path.stat().st_mode & 0o7777
        os.chmod(tmp, mode if mode is not None else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def temp_beside(path: Path, *, directory: bool = False) -> Iterator[Path]:
    """A temporary file or dir in ``path``'s directory, removed unless renamed into place
    (made with SIGINT/SIGTERM held: an interrupt between its creation and the ``try`` that
    removes it would leave it behind)."""
    tmp: Path | None = None
    try:
        with signals_held():
            tmp = _make_temp(path, directory)
        yield tmp
    finally:
        if tmp is None:
            pass
        elif tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists() or tmp.is_symlink():
            tmp.unlink()


def _make_temp(path: Path, directory: bool) -> Path:
    if directory:
        return Path(tempfile.mkdtemp(prefix=tagged(f".{path.name}."), suffix=".tmp",
                                     dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=tagged(f".{path.name}."), suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def replace_dir(src: Path, dest: Path) -> None:
    """Move directory ``src`` to ``dest``, swapping out an existing ``dest`` last."""
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dest, old)
        os.replace(src, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dest)


def ensure_writable(directory: Path) -> None:
    """Raise the OSError a write into ``directory`` would meet (and leave nothing behind: an
    interrupt between making the probe and removing it is handled after both)."""
    with signals_held():
        fd, name = tempfile.mkstemp(prefix=".tritonpack-probe-", dir=directory)
        try:
            os.close(fd)
        finally:
            os.unlink(name)
