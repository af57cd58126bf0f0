"""How the staged tree is written: a reproducible gzip'd tar (what Triton's libarchive reads),
with tritonpack's stamp as its first entry.

Sorted entries, uid/gid 0, no user names, a fixed mtime and modes, a zero gzip timestamp:
the same tree gives the same bytes. The gzip members come from ``targz`` (every core).
Before a byte is written the tree is checked: nothing in it may write or point outside
the environment once extracted (``archivefs``).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import hmac
import json
import os
import stat
import tarfile
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from zlib_ng import zlib_ng

from ..core import reused
from ..core.cachehome import reuse
from ..core.errors import PackError
from ..core.fsguard import not_regular, open_regular
from ..core.reproducible import normalised
from ..core.storefile import SIGNED, open_entry, real_dir, store_secret
from ..resolve.target import Target
from .fs import check_entries, escapes_dir
from .inflate import INFLATE_ERROR, read_targz
from .targz import BLOCK, IDENTITY, ParallelGzipWriter, member

DEFAULT_LEVEL = 5  # zlib-ng's knee (bench/): 6 took 27 % more CPU for 0.4 % fewer bytes
STAMP = "tritonpack.json"  # the archive's first entry: which lock it was packed from
_STAMP_LIMIT = 1 << 20


def entries(root: Path) -> list[Path]:
    """Every path under ``root`` in archive order: sorted, the stamp first (so that
    `tritonpack check` reads one entry, not the archive)."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        out += [base / d for d in dirnames]
        out += [base / f for f in sorted(filenames)]
    return sorted(out, key=lambda p: (p.name != STAMP or p.parent != root,
                                      p.relative_to(root).as_posix()))


def check_tree(root: Path, paths: list[Path]) -> None:
    """Refuse a tree whose entries, replayed in archive order, would write or point outside
    the environment (through chains of links too: ``archivefs``), or that holds anything but
    files, directories and symlinks; symlinks are also resolved by real path."""
    found: list[tuple[str, str, str]] = []
    for path in paths:
        rel = path.relative_to(root).as_posix()
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            if escapes_dir(root, path):
                raise PackError(f"unsafe entry {rel}: symlink to {os.readlink(path)} leaves the "
                                "environment", hint="Triton 26.06+ refuses such archives")
            found.append((rel, "symlink", os.readlink(path)))
        elif stat.S_ISREG(mode) or stat.S_ISDIR(mode):
            found.append((rel, "dir" if stat.S_ISDIR(mode) else "file", ""))
        else:
            raise PackError(f"unsafe entry {rel}: not a file, directory or symlink")
    problems = check_entries(found)
    if problems:
        raise PackError(f"unsafe entry: {problems[0]}", hint="Triton 26.06+ refuses such archives",
                        detail="\n".join(problems))


def write_stamp(root: Path, lock_hash: str, target: Target | None = None,
                bundled: tuple[tuple[str, str], ...] = ()) -> None:
    """The lock it was packed from, the target it was packed for (``inspect`` reads it) and
    the sha256 of each bundled --src file by its site-packages path (``check`` compares them
    with the sources: a lock says nothing about the user's own code)."""
    recorded: dict[str, Any] = ({"target": {"release": target.release, "python": target.python,
                                            "platform": target.platform}}
                                if target is not None else {})
    if bundled:
        recorded["bundled"] = dict(sorted(bundled))
    (root / STAMP).write_text(json.dumps({"lock": lock_hash, "format": 1, **recorded},
                                         sort_keys=True) + "\n",
                              encoding="utf-8")


def read_stamp(env: Path) -> dict[str, Any] | None:
    """The stamp of an archive (its first entry) or a directory env; None if it has none, or
    one that is not a small JSON object in a regular file (a FIFO would block the reader, a
    huge or deeply nested one is no stamp tritonpack writes)."""
    try:
        if env.is_dir():
            fh = open_regular(env / STAMP, follow=False)
            if isinstance(fh, str):
                return None
            with fh:
                data = fh.read(_STAMP_LIMIT + 1)
        else:
            if not_regular(env) is not None:
                return None
            with read_targz(env) as tar:
                first = tar.next()
                if first is None or first.name != STAMP or first.size > _STAMP_LIMIT:
                    return None
                member = tar.extractfile(first)
                if member is None:
                    return None
                data = member.read(_STAMP_LIMIT + 1)
        stamp = json.loads(data) if len(data) <= _STAMP_LIMIT else None
    except (OSError, ValueError, RecursionError, tarfile.TarError, EOFError, zlib.error):
        return None
    return stamp if isinstance(stamp, dict) else None


def _tarinfo(root: Path, path: Path) -> tarfile.TarInfo:
    st = path.lstat()
    info = tarfile.TarInfo(path.relative_to(root).as_posix())
    info.mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    else:
        info.type = tarfile.REGTYPE
        info.size = st.st_size
    return normalised(info)  # fixed time, owner and modes: the same lock gives the same bytes


def write_targz(root: Path, dest: Path, level: int = DEFAULT_LEVEL,
                threads: int | None = None,
                progress: Callable[[int], None] | None = None,
                store: Path | None = None,
                early: Ahead | None = None) -> tuple[str, int, int]:
    """Write ``root`` as a reproducible .tar.gz at ``dest``; return (sha256, size, files).

    The tar stream is the one ``tarfile`` writes (PAX headers, two zero blocks, padded to a
    record). A file of LARGE bytes or more starts and ends a gzip member, so its compressed
    bytes depend on its content only: with ``store`` (a cache dir) they are kept there and
    appended as they are by the next pack that holds the same file (numpy's OpenBLAS,
    torch's libraries), instead of compressed again; so does a native library (``.so``) of
    NATIVE bytes or more. ``early``: the ``ahead`` still compressing such files into
    ``store`` (``Ahead.claim``: a file it is on is waited for, one it has not started is
    the write's). With or without ``store``, the same tree gives the same bytes."""
    paths = entries(root)
    check_tree(root, paths)
    with dest.open("wb") as raw:
        gz = ParallelGzipWriter(raw, level, threads, progress)
        try:
            offset = 0
            for path in paths:
                info = _tarinfo(root, path)
                header = info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
                gz.write(header)
                offset += len(header)
                if info.type != tarfile.REGTYPE or not info.size:
                    continue
                padded = _padded(info.size)
                if own_members(path.name, info.size):
                    known = early.claim(path) if early is not None else None
                    _large(gz, path, info.size, padded, level, store, known)
                else:
                    data = path.read_bytes()
                    if len(data) != info.size:
                        raise PackError(f"{path} changed while it was being packed")
                    gz.write(data + tarfile.NUL * (padded - info.size))
                offset += padded
            end = offset + 2 * tarfile.BLOCKSIZE
            gz.write(tarfile.NUL * (2 * tarfile.BLOCKSIZE
                                    + -end % tarfile.RECORDSIZE))
            gz.close()
        except BaseException:
            gz.abort()
            raise
        raw.flush()
        os.fsync(raw.fileno())
    return gz.sha.hexdigest(), gz.size, len(paths)


LARGE = 1 << 20  # bytes from which a file's compressed data is its own (cached) members
# ... and a native library's: the medium bench model ships 205 of 64 KiB to 1 MiB (67 MB,
# half of what its warm pack compressed anew), the same bytes in every pack of its wheels
NATIVE = 64 << 10
_KEY_FILE = "gzip.key"


def own_members(name: str, size: int) -> bool:
    """Whether a file of this name and size is written as gzip members of its own (kept in
    the store, compressed ahead): a large file, or a native library (``x.so``, ``x.so.1``)
    of NATIVE bytes or more."""
    return size >= LARGE or (size >= NATIVE and (name.endswith(".so") or ".so." in name))


def _stream(gz: ParallelGzipWriter, path: Path, size: int, padded: int) -> None:
    seen = 0
    with path.open("rb") as fh:
        while chunk := fh.read(BLOCK):
            seen += len(chunk)
            gz.write(chunk)
    if seen != size:
        raise PackError(f"{path} changed while it was being packed")
    gz.write(tarfile.NUL * (padded - size))


def _own_members(gz: ParallelGzipWriter, path: Path, size: int, padded: int) -> None:
    """The file compressed into members of its own (the same bytes a cached entry holds)."""
    gz.cut()
    _stream(gz, path, size, padded)
    gz.cut()


def _padded(size: int) -> int:
    """A member's data in the tar stream: rounded up to whole blocks."""
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def _salt(level: int) -> bytes:
    """What a store entry's key hashes before the file's bytes: the members' encoding."""
    return f"{IDENTITY} level {level}\0".encode()


class _Stopped(Exception):
    """``ahead`` was told to stop in the middle of a file."""


def _content_key(path: Path, salt: bytes, stop: threading.Event | None = None) -> str:
    """The store key of a file's members (``_Stopped`` when ``stop`` is set during the read)."""
    digest = hashlib.sha256(salt)
    with path.open("rb") as fh:
        while chunk := fh.read(BLOCK):
            if stop is not None and stop.is_set():
                raise _Stopped
            digest.update(chunk)
    return digest.hexdigest()


def _new_entry(folder: Path, key: str) -> tuple[int, str]:
    """A new temporary file in the store's ``folder`` for ``key``'s members (OSError: the
    cache cannot be written). A link where the folder should be is debris, removed."""
    if folder.is_symlink():
        folder.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".tmp")


def _large(gz: ParallelGzipWriter, path: Path, size: int, padded: int, level: int,
           store: Path | None, known: Kept | None = None) -> None:
    """One large file's data as members of its own: from the store when an entry there holds
    exactly this file's bytes (``_holds``), else compressed, and kept. ``known``: what this
    pack's ``ahead`` hashed (and kept) for this very file, unchanged since (``Ahead.claim``):
    not hashed again; its entry, written by this pack, is appended as the append checks it
    (its bytes against their digest, on the way)."""
    if store is None:
        _own_members(gz, path, size, padded)
        reused.members(False, size)
        return
    if known is not None and known.entry is not None:
        fresh = open_entry(known.entry)
        if fresh is not None:
            try:
                gz.append_members(fresh, padded, known.blob)
            except BaseException:
                fresh.close()
                raise
            reused.members(False, size)
            return
    salt = _salt(level)
    header = member(b"", level)[:10]  # every member's
    key = known.key if known is not None else _content_key(path, salt)
    folder = store / key[:2]
    secret = store_secret(store, _KEY_FILE)
    for entry in sorted(folder.glob(f"{key}.*")) if real_dir(folder) and reuse() else ():
        if entry.name.endswith(SIGNED):
            continue  # looked at with its entry
        blob = entry.name.rpartition(".")[2]
        kept = open_entry(entry)
        if kept is not None and _vouched(kept, entry, secret, key, blob, size, padded, salt,
                                         header):
            kept.seek(0)
            with contextlib.suppress(OSError):
                os.utime(entry, follow_symlinks=False)  # last use, for `cache prune`
                os.utime(_sig_path(entry), follow_symlinks=False)
            try:
                gz.append_members(kept, padded, blob)
            except BaseException:  # a full disk before it was queued: abort() cannot see it
                kept.close()
                raise
            reused.members(True, size, key)  # not if this pack's ahead made it (``made``)
            return
        if kept is not None:
            kept.close()
        for gone in (entry, _sig_path(entry)):
            with contextlib.suppress(OSError):
                gone.unlink()  # a symlink is removed, never its target
    try:
        fd, tmp = _new_entry(folder, key)
    except OSError:  # a cache that cannot be written: compressed, not kept
        _own_members(gz, path, size, padded)
        reused.members(False, size)
        return
    reused.made(key)
    sink = _Sink(os.fdopen(fd, "wb"))

    def done(ok: bool) -> None:
        """After the file's last member is written: keep the entry, named by its digest."""
        sink.close()
        try:
            if ok and not sink.failed:
                blob = hashlib.sha256()
                with open(tmp, "rb") as fh:
                    while chunk := fh.read(BLOCK):
                        blob.update(chunk)
                with contextlib.suppress(OSError):
                    kept = folder / f"{key}.{blob.hexdigest()}"
                    os.replace(tmp, kept)
                    for other in folder.glob(f"{key}.*"):  # one entry per file: no other
                        if other.name not in (kept.name, kept.name + SIGNED):  # encoding
                            other.unlink()  # stays to be picked by the next pack
                    _sign(secret, kept, padded)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    gz.record(sink, done)
    try:
        _stream(gz, path, size, padded)
    except BaseException:
        gz.forget()  # the caller aborts the writer: nothing of this file is kept
        raise
    gz.stop()
    reused.members(False, size)


def _members(path: Path, size: int, padded: int, level: int, stop: threading.Event,
             out: _Hashing) -> bool:
    """Write to ``out`` the members ``_large`` writes for this file: its bytes, then the tar
    padding, cut every BLOCK bytes as the writer cuts them, each block its own gzip member
    (mtime 0); one block in memory at a time. False if ``stop`` is set first or the file is
    not ``size`` bytes."""
    buf, seen = bytearray(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(BLOCK):
            if stop.is_set():
                return False
            seen += len(chunk)
            buf += chunk
            while len(buf) >= BLOCK:
                out.write(member(bytes(buf[:BLOCK]), level))
                del buf[:BLOCK]
    if seen != size:
        return False
    buf += tarfile.NUL * (padded - size)
    while buf:
        out.write(member(bytes(buf[:BLOCK]), level))
        del buf[:BLOCK]
    return True


class Ahead:
    """The tree's own-member files compressed into the store on a thread (``ahead``), from
    the last in archive order, while the pack imports and compiles and then while it writes
    from the first: the write ``claim``s each file before it looks in the store, so no file
    is compressed twice and none is dropped half done."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._taken: set[Path] = set()  # the write's: this thread leaves them
        self._busy: dict[Path, threading.Event] = {}  # being compressed here
        self._kept: dict[Path, tuple[tuple[int, ...], Kept]] = {}  # hashed here, and kept
        self._thread: threading.Thread | None = None

    def start(self, root: Path, level: int, store: Path) -> None:
        """The thread runs in the caller's context: the entries it writes count as this
        pack's (``core.reused.made``), not as reused when the write finds them."""
        self._thread = threading.Thread(target=contextvars.copy_context().run,
                                        args=(compress_ahead, root, level, store, self.stop,
                                              self),
                                        name="gzip-ahead", daemon=True)
        self._thread.start()

    def claim(self, path: Path) -> Kept | None:
        """The write is at ``path``: if this thread is compressing it, wait until its entry is
        kept (or dropped on a stop); else it is the write's, never started here. Returns what
        this thread hashed and kept for it, if the file is still the one it read (the same
        inode, size, mtime and ctime: as git trusts its index)."""
        with self._lock:
            self._taken.add(path)
            busy = self._busy.get(path)
        if busy is not None:
            busy.wait()
        with self._lock:
            seen, kept = self._kept.pop(path, ((), None))
        return kept if kept is not None and _identity(path) == seen else None

    def kept(self, path: Path, seen: tuple[int, ...], kept: Kept) -> None:
        """What ``compress_ahead`` hashed (and kept) for ``path``, read while its identity was
        ``seen`` (and settled: ``_identity``)."""
        with self._lock:
            self._kept[path] = (seen, kept)

    def take(self, path: Path) -> threading.Event | None:
        """This thread's turn at ``path``: None when the write has it already."""
        with self._lock:
            if path in self._taken:
                return None
            busy = self._busy[path] = threading.Event()
            return busy

    def release(self, path: Path, busy: threading.Event) -> None:
        with self._lock:
            del self._busy[path]
        busy.set()

    def halt(self) -> None:
        """Stop (a file half done is dropped) and wait for the thread."""
        self.stop.set()
        if self._thread is not None:
            self._thread.join()


def ahead(root: Path, level: int, store: Path | None) -> Ahead:
    """Compress the tree's own-member files into ``store`` on a thread, while the pack still
    imports and compiles (a core is idle while the import check runs) and on while it writes
    (``Ahead``): the write then finds their members there, checks and appends them
    (``_large``), as it would a second pack's. Returns the handle whose ``halt`` stops it;
    nothing runs when there is no store to keep members in or it is not read
    (``--no-cache``)."""
    early = Ahead()
    if store is not None and reuse():
        early.start(root, level, store)
    return early


def compress_ahead(root: Path, level: int, store: Path, stop: threading.Event,
                   early: Ahead | None = None) -> None:
    """``ahead``'s work: each own-member file not kept yet, the last in archive order first
    (the write starts from the first; ``early`` says which it took), as the entry ``_large``
    would keep. Python files are left out (they may yet be zipped or compiled), and any error
    only leaves a file to the write."""
    salt = _salt(level)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            path = Path(dirpath) / name
            with contextlib.suppress(OSError):
                st = path.lstat()
                if (stat.S_ISREG(st.st_mode) and own_members(name, st.st_size)
                        and not name.endswith((".py", ".pyc"))):
                    found.append((path.relative_to(root).as_posix(), st.st_size, path))
    for _, size, path in sorted(found, reverse=True):
        if stop.is_set():
            return
        busy = early.take(path) if early is not None else None
        if early is not None and busy is None:
            continue  # the write's now
        try:
            seen = _identity(path)
            kept = _compress_one(path, size, level, store, stop, salt)
            if kept is not None and kept.entry is not None:
                reused.made(kept.key)  # counted as compressed by this pack, not reused
            if early is not None and kept is not None and seen and _identity(path) == seen:
                early.kept(path, seen, kept)
        except _Stopped:
            return
        finally:
            if early is not None and busy is not None:
                early.release(path, busy)


@dataclass(frozen=True)
class Kept:
    """What ``compress_ahead`` found for a file: its store key, and the entry it wrote (with
    that entry's digest), or None when the store held one already (the write checks it)."""

    key: str
    entry: Path | None = None
    blob: str = ""


_SETTLED_NS = 100_000_000  # as bytecode.interpreter_key: a file older than this is not being
# written in the tick its times were read in


def _identity(path: Path) -> tuple[int, ...]:
    """A file's inode, size, mtime and ctime; () when it cannot be read or was changed too
    recently for them to vouch for its bytes."""
    try:
        st = path.lstat()
    except OSError:
        return ()
    if not stat.S_ISREG(st.st_mode) or time.time_ns() - max(st.st_mtime_ns,
                                                           st.st_ctime_ns) < _SETTLED_NS:
        return ()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _compress_one(path: Path, size: int, level: int, store: Path, stop: threading.Event,
                  salt: bytes) -> Kept | None:
    """One file's members kept in ``store`` unless they are there already (``_Stopped`` on a
    stop; an OSError leaves the file to the write): what was found, None when nothing."""
    with contextlib.suppress(OSError):
        key = _content_key(path, salt, stop)
        folder = store / key[:2]
        if real_dir(folder) and any(folder.glob(f"{key}.*")):
            return Kept(key)  # kept before: the write checks it
        fd, tmp = _new_entry(folder, key)
        try:
            sink = _Hashing(os.fdopen(fd, "wb"))
            with sink.fh:
                done = _members(path, size, _padded(size), level, stop, sink)
            if done:
                kept = folder / f"{key}.{sink.sha.hexdigest()}"
                os.replace(tmp, kept)
                _sign(store_secret(store, _KEY_FILE), kept, _padded(size))
                return Kept(key, kept, sink.sha.hexdigest())
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return None


class _Hashing:
    """A file being written, and the sha256 of what was written to it."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return self.fh.write(data)


class _Sink:
    """Where a large file's members are copied for the cache: a write that fails (the cache's
    disk is full) stops the copy, never the pack."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.failed = False

    def write(self, data: bytes) -> int:
        if not self.failed:
            try:
                self.fh.write(data)
            except OSError:
                self.failed = True
        return len(data)

    def close(self) -> None:
        try:
            self.fh.close()
        except OSError:
            self.failed = True


def _sig_path(entry: Path) -> Path:
    return entry.with_name(entry.name + SIGNED)


def _signature(secret: bytes, name: str, padded: int) -> bytes:
    return hmac.digest(secret, f"{name}\0{padded}".encode(), "sha256")


def _sign(secret: bytes | None, entry: Path, padded: int) -> None:
    """Vouch for an entry this pack wrote or checked in full (``_holds``): its sidecar holds
    this cache's HMAC of its name (the file's key, the members' digest) and length. Written
    whole or not at all; a cache without a key (it cannot be written) keeps the slow check."""
    if secret is None:
        return
    with contextlib.suppress(OSError):
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=f".{entry.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(_signature(secret, entry.name, padded))
            os.replace(tmp, _sig_path(entry))
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _vouched(fh: BinaryIO, entry: Path, secret: bytes | None, key: str, blob: str, size: int,
             padded: int, salt: bytes, header: bytes) -> bool:
    """Whether an entry holds the members of exactly the file being packed. One this cache
    signed (``_sign``) is checked by its bytes' sha256 alone, the digest its name ends with
    (inflating it all again cost a warm pack more than compressing anew: 1.28 s against
    0.92 s for the small bench model); any other is checked in full (``_holds``), and signed
    when it passes. The append checks the digest again as it copies."""
    if secret is not None:
        sig = open_entry(_sig_path(entry))
        if sig is not None:
            with sig:
                mac = sig.read(33)
            if hmac.compare_digest(mac, _signature(secret, entry.name, padded)):
                digest = hashlib.sha256()
                try:
                    while chunk := fh.read(BLOCK):
                        digest.update(chunk)
                except OSError:
                    return False
                return digest.hexdigest() == blob
    if _holds(fh, blob, size, padded, salt, key, header):
        _sign(secret, entry, padded)
        return True
    return False


def _holds(fh: BinaryIO, blob: str, size: int, padded: int, salt: bytes, key: str,
           header: bytes) -> bool:
    """Whether an entry's bytes are the digest its name ends with (a torn write never is)
    AND are members tritonpack writes that decompress to exactly the file being packed: its
    ``size`` bytes, whose salted sha256 is the ``key`` the file was looked up by, then zeros
    up to ``padded``. Each member must start with ``header`` (gzip's, mtime 0, no name or
    comment: nothing rides along in the archive) and end with the CRC and length of what it
    holds: BLOCK bytes each but the last, none empty, as ``_members`` cuts them (the same
    files cut otherwise would make other archive bytes). An entry renamed from another
    file's, or written by someone else, is a miss.
    Inflated by zlib-ng as a stream, never more than ``padded`` + 1 bytes: a gzip bomb stops
    there.
    (Another deflate level of the same bytes would pass: telling it apart means compressing
    again, the work the store saves; the archive then holds the same files.)"""
    compressed = hashlib.sha256()
    plain = hashlib.sha256(salt)
    out = members = 0
    buf = b""

    def more() -> bool:
        nonlocal buf
        chunk = fh.read(BLOCK)
        compressed.update(chunk)
        buf += chunk
        return bool(chunk)

    try:
        while True:
            while len(buf) < len(header) and more():
                pass
            if not buf:
                break  # the end, between members
            if buf[:len(header)] != header:
                return False
            buf = buf[len(header):]
            inflate, crc, length = zlib_ng.decompressobj(-15), 0, 0
            while not inflate.eof:
                if not buf and not more():
                    return False  # truncated inside a member
                piece = inflate.decompress(buf, padded - out + 1)
                buf = inflate.unconsumed_tail
                if out + len(piece) > padded:
                    return False
                cut = max(0, min(len(piece), size - out))  # the data, then the tar padding
                plain.update(piece[:cut])
                if piece[cut:].strip(tarfile.NUL):
                    return False
                crc, length, out = (zlib_ng.crc32(piece, crc), length + len(piece),
                                    out + len(piece))
            buf = inflate.unused_data + buf
            while len(buf) < 8 and more():
                pass
            if buf[:8] != crc.to_bytes(4, "little") + (length & 0xFFFFFFFF).to_bytes(4, "little"):
                return False
            if not 0 < length <= BLOCK or (out < padded and length != BLOCK):
                return False  # cut otherwise than every BLOCK bytes (or an empty member
                # more): the same files in other archive bytes
            buf, members = buf[8:], members + 1
    except (OSError, INFLATE_ERROR):
        return False
    return (members > 0 and out == padded and plain.hexdigest() == key
            and compressed.hexdigest() == blob)
