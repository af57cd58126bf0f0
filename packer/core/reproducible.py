"""Reproducible archives, in one place: the fixed time every entry carries and the one
normalisation of a tar entry. The environment archive (``archive.writer``), the local Python
packages (``lock.pychannel``), the stdlib zip (``pack.stdlibzip``), an sdist's build
(``lock.backend``) and the remote cache's plain tar (``caches.remote``) all take them from
here, so "the same inputs give the same bytes" has one definition."""

from __future__ import annotations

import tarfile

EPOCH = 315532800  # 1980-01-01 00:00:00 UTC: every tar entry's mtime
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the same instant, the zip format's first date
SOURCE_DATE_EPOCH = str(EPOCH)  # what a build backend reads for the times it writes


def anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """No owner: uid and gid 0, no user or group names (a ``tarfile`` filter)."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """``anonymous``, the fixed mtime, and a mode that depends only on the entry's kind: 0755
    for a directory and an executable file, 0644 for another file, 0777 for a symlink (a
    ``tarfile`` filter)."""
    anonymous(info)
    info.mtime = EPOCH
    if info.isdir():
        info.mode = 0o755
    elif info.issym():
        info.mode = 0o777
    elif info.isreg():
        info.mode = 0o755 if info.mode & 0o111 else 0o644
    return info
