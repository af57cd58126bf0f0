"""What was written is what ships: recorded sha256 sums, checked before reuse and at release.

An archive's sha256 is recorded beside it when it is written (``NAME.tar.gz.sha256``, in
``sha256sum`` format, so ``sha256sum -c`` checks it too); a directory environment gets a
manifest of every file's sha256 (``NAME.sha256``, same format, paths relative to the model
dir). ``tritonpack check`` and the environment cache verify against these records: a
truncated archive, a flipped bit, a file added, removed or changed in a directory env is
caught, never shipped.

An archive placed in a model directory never shares an inode with the cache: it is cloned
(reflink, where the file system has it) or copied, so damaging a model's archive cannot
damage the cache entry another model reuses. A directory env's files are hard-linked from
the cache where it can be (``link_or_copy``): seventeen models of one lock cost one
environment on disk. Those files are read-only (``seal``), and the cache hashes an entry's
every file before it places it again, so a linked file written in place is caught there,
never shipped to another model.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import stat
from pathlib import Path

from .errors import PackError
from .fsguard import open_if_regular, open_regular, read_regular

CHUNK = 1 << 20
_FICLONE = 0x40049409  # linux/fs.h: share extents copy-on-write (btrfs, xfs); never an inode


def sha256_file(path: Path) -> str:
    """A file's sha256, read in chunks (``hashlib.file_digest``): the one file hash."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def regular_sha256(path: Path) -> str | None:
    """``sha256_file`` of what someone else may have written (the cache, an installed tree):
    None where ``path`` is no regular file: absent, unreadable, a symlink (not followed), a
    FIFO (never blocked on) or a device."""
    fh = open_if_regular(path)
    if fh is None:
        return None
    digest = hashlib.sha256()
    with fh:  # a BinaryIO, which file_digest's types do not take
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def clone_or_copy(src: str | Path, dest: str | Path) -> None:
    """A new inode with ``src``'s bytes: a reflink where possible, else a copy. ``src`` is
    opened without following a symlink or blocking, and must be a regular file by the open
    descriptor (a cache entry swapped for a link to a secret, or for a FIFO, between its
    check and this copy is refused with OSError, never copied); its mode and times come from
    that descriptor too."""
    fi = open_regular(src, follow=False)
    if isinstance(fi, str):
        raise OSError(errno.EINVAL, f"is {fi}, not a regular file", str(src))
    st = os.fstat(fi.fileno())
    with fi, open(dest, "wb") as fo:
        try:
            fcntl.ioctl(fo.fileno(), _FICLONE, fi.fileno())
        except OSError as exc:
            if exc.errno not in _NO_KERNEL_COPY:
                raise
            if not _kernel_copy(fi.fileno(), fo.fileno()):
                shutil.copyfileobj(fi, fo, CHUNK)
    os.chmod(dest, stat.S_IMODE(st.st_mode))
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))


# a reflink or an in-kernel copy refused where a plain copy can still be made: another file
# system, one without the call, a descriptor or a file the call does not take
_NO_KERNEL_COPY = frozenset({errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY,
                             errno.EBADF, errno.EPERM, errno.ENOSYS})


def _kernel_copy(fi: int, fo: int) -> bool:
    """Copy to EOF inside the kernel (copy_file_range(2)): no pass through Python's buffers,
    which made a 143 MB archive's copy 0.1-1.1 s instead of 0.04 s. False, with nothing
    copied, where the call is refused (then a plain copy follows)."""
    copied = 0
    try:
        while n := os.copy_file_range(fi, fo, 1 << 30):
            copied += n
    except OSError as exc:
        if copied or exc.errno not in _NO_KERNEL_COPY:
            raise
        return False
    return True


# link(2) refused, where a copy can still be made: another file system (EXDEV), a file system
# or a protected_hardlinks policy without links (EPERM, ENOTSUP), a file's link count at its
# maximum (EMLINK), a file this user may not link (EACCES).
_NO_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES, errno.ENOTSUP,
                      errno.EOPNOTSUPP})


def link_or_copy(src: str | Path, dest: str | Path) -> None:
    """``dest`` as a hard link to ``src`` (no bytes written, no space taken), else, where the
    link is refused (``_NO_LINK``: decided per file), a clone or copy. ``src`` is linked
    without following a symlink, and what was linked must be a regular file (one swapped for
    a FIFO or a device since it was listed is unlinked again: OSError, never shipped)."""
    try:
        os.link(src, dest, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        clone_or_copy(src, dest)
        return
    if not stat.S_ISREG(os.lstat(dest).st_mode):
        os.unlink(dest)
        raise OSError(errno.EINVAL, "is not a regular file", str(src))


def seal(root: Path) -> None:
    """Every regular file under ``root`` read-only (its write bits cleared): the files of a
    directory env are shared, by hard links, between the cache and every model packed from
    it, and an editor or a script that opens one for writing should be refused rather than
    change it for all of them. (root is not refused: the cache's check on reuse is the guard.)
    A file this user may not chmod (a shared cache's entry, linked) is left as it is: that
    check is the guard there too."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_mode & _WRITE:
                with contextlib.suppress(PermissionError):
                    os.chmod(path, stat.S_IMODE(st.st_mode) & ~_WRITE)


_WRITE = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def record_path(env: Path) -> Path:
    """Where an environment's sha256 record lives: beside it, named after it."""
    return env.with_name(env.name + ".sha256")


def manifest(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every regular file of a directory env (symlinks are judged
    by inspect, not hashed)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                out[path.relative_to(root).as_posix()] = sha256_file(path)
    return out


def render_record(env_name: str, sha256: str = "", files: dict[str, str] | None = None) -> bytes:
    """``sha256sum`` lines: one for an archive, one per file for a directory env."""
    if files is None:
        return f"{sha256}  {env_name}\n".encode()
    return "".join(f"{h}  {env_name}/{rel}\n" for rel, h in sorted(files.items())).encode()


def read_record(path: Path, env_name: str) -> dict[str, str] | None:
    """path (relative to the env; "" for the archive itself) -> sha256; None if unreadable."""
    try:  # never block on a FIFO put where the record belongs
        text = read_regular(path, PackError, "sha256 record", limit=64 << 20).decode("utf-8")
    except (OSError, UnicodeDecodeError, PackError):
        return None
    out: dict[str, str] = {}
    for line in text.splitlines():
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            return None
        if name == env_name:
            out[""] = digest
        elif name.startswith(env_name + "/"):
            out[name[len(env_name) + 1:]] = digest
        else:
            return None
    return out


def verify(env: Path) -> str | None:
    """Why ``env`` differs from its record (None: it is what was written)."""
    record = read_record(record_path(env), env.name)
    if record is None:
        return (f"{env.name} has no readable sha256 record ({record_path(env).name}): "
                "re-pack it")
    if env.is_dir():
        if "" in record:
            return f"{record_path(env).name} records an archive, but {env.name} is a directory"
        have = manifest(env)
        changed = sorted(k for k in record.keys() & have.keys() if record[k] != have[k])
        missing = sorted(record.keys() - have.keys())
        extra = sorted(have.keys() - record.keys())
        diffs = [f"{what} {names[0]}" + (f" and {len(names) - 1} more" if len(names) > 1 else "")
                 for what, names in (("changed", changed), ("missing", missing), ("added", extra))
                 if names]
        return f"{env.name} differs from what was packed: {'; '.join(diffs)}" if diffs else None
    want = record.get("")
    if want is None:
        return f"{record_path(env).name} records a directory, but {env.name} is an archive"
    if sha256_file(env) != want:
        return (f"{env.name} differs from what was packed (sha256 mismatch: truncated, "
                "corrupted or changed)")
    return None
