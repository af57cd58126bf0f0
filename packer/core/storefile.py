"""How an entry of a pack store (``$TRITONPACK_CACHE/bytecode``, ``.../gzip``) is opened.

Whoever can write the cache can put anything there: a symlink to ``/etc/passwd``, a FIFO
that would block the read forever, a directory. An entry is read only as a regular file of
the store itself: opened without following a symlink (O_NOFOLLOW) and without blocking
(O_NONBLOCK), then checked with fstat on the open descriptor, so a swap between the check
and the read is caught. What the entry holds is then checked by its store.
Under ``--no-cache`` (``core.cache.distrusted``) the stores are written, never read.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO

from .fsguard import open_if_regular

SIGNED = ".sig"  # a store entry's sidecar: the cache's HMAC vouching for the entry


def real_dir(path: Path) -> bool:
    """A directory that is not a symlink to one (a store's folders never are)."""
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


def open_entry(path: Path) -> BinaryIO | None:
    """``path`` opened for reading if it is a regular file inside a real folder; else None
    (a symlink, a FIFO, a directory, absent: a miss, never an error)."""
    return open_if_regular(path) if real_dir(path.parent) else None


def store_secret(store: Path, name: str) -> bytes | None:
    """A store's signing key ``store/name`` (32 random bytes, mode 0600), made on first use;
    None when it cannot be read or made (the store's entries are then checked the slow way,
    nothing fails). Whoever can read it can sign: the cache stays a trust root, so a key
    others could read or have written (another user's file, group or world bits, a symlink)
    is no key: it is replaced once, and what it signed is checked the slow way again."""
    path = store / name
    for _ in range(2):
        with contextlib.suppress(OSError):
            store.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(32))
        key = _own_key(path)
        if not isinstance(key, _Foreign):
            return key
        with contextlib.suppress(OSError):
            path.unlink()  # the link itself, never its target
    return None


class _Foreign:
    """A key file someone other than this user could have read or written."""


def _own_key(path: Path) -> bytes | _Foreign | None:
    """The key in ``path`` if only this user can read and write it (checked on the open
    descriptor); ``_Foreign`` if others could; None when absent, unreadable, or not 32 bytes
    (a key being written: another run made it a moment ago)."""
    with contextlib.suppress(OSError):
        if stat.S_ISLNK(path.lstat().st_mode):
            return _Foreign()
    fh = open_if_regular(path)
    if fh is None:
        return None
    with fh:
        st = os.fstat(fh.fileno())
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return _Foreign()
        data = fh.read(33)
    return data if len(data) == 32 else None  # a key being written, or not one
