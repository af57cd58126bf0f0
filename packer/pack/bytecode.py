"""Hash-checked bytecode for what the model imports, compiled once per source file.

Hash-checked (``unchecked-hash``) ``.pyc`` files are valid whatever the files' mtimes: an
archive that ships them is reproducible and never stale. They are compiled by the
environment's own Python (its compiler and its magic number), with a fixed hash seed
(frozenset constants are marshalled in hash order) and written in marshal format 2, which
has no back-references: formats 3 and 4 flag an object as shared when its reference count
is above one at the moment it is written, which depends on what else the compiling process
holds (one flag bit differed in about 1 build in 10 with 3.10). Any Python 3 reads format 2,
and a file importing takes the same time (numpy: 494 files loaded in 44 ms either way), for
about 35 % more bytes. So a file's ``.pyc`` is a function of three things only: the
interpreter, the source bytes and the name recorded in it (``co_filename``), which is the
file's path inside the environment (``lib/python3.10/json/__init__.py``), not the build dir
it was compiled in. So the result is kept in tritonpack's cache under those three (with its
sha256, so a torn entry is compiled again, never shipped), and the next pack of any lock
with the same Python writes it instead of compiling (the stdlib: 1,500 files, compiled once
per Python build, not once per model). A canonical ``.pyc`` does not depend on what its
process compiled before (checked on the 3.10 stdlib compiled in two orders), so a reused
file is the file a compile would give: archives stay byte-identical, cache or not.

An entry is placed only if it belongs to the file (``_belongs``): the interpreter's magic
number, unchecked-hash flags, the source hash of the file's bytes (computed by the env's
Python, one process per pack) and, where tritonpack's own Python reads its marshal format,
the file's name in its code. That catches an entry swapped from another file or another
interpreter; one forged with a right header and other code is caught by nothing short of
compiling again: the cache is trusted, like pip's or uv's (README). What this cache's own
compile kept, or an entry once those checks passed, is signed with the store's key
(``pyc.key``, ``_mac``: its HMAC of the entry's key and bytes) and placed without them: they
start the env's Python to read every source again (0.6 s of the medium bench model's pack
with the model's cache, all of it for entries this cache wrote itself).

The recorded name shows only where the file loader does not replace it with the real path:
a stdlib frame from ``lib/pythonXY.zip`` names ``lib/python3.X/...`` (the env-relative path,
which the build dir was not either); the source line is still shown.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import importlib.util
import json
import logging
import marshal
import os
import stat
import tempfile
import threading
import time
import types
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from ..core import deadlines, proc, reused
from ..core.cachehome import reuse
from ..core.diskfull import no_space_error
from ..core.errors import PackError, ProcessError
from ..core.storefile import open_entry, store_secret

log = logging.getLogger("tritonpack.bytecode")

# What ships as hash-checked .pyc. "imported" (the default): the source files that importing
# the stub's modules and the model's (scanned) modules loads, which is what a server start
# loads (small model: 320 files of 2,700 in the stdlib and the imported packages; the rest are
# compiled at their first import, if ever); "all": everything (read-only images); "none".
BYTECODE = ("imported", "all", "none")
# What the Python backend's stub imports from the environment beside model.py (pb_stub.cc,
# triton_python_backend_utils.py): at every load, and asyncio at the first request
STUB_IMPORTS = ("numpy", "json", "struct", "asyncio", "threading", "traceback")
COMPILE_CHUNKS = 4  # fixed, not the core count: the same chunks on every machine
# in every cache key: a new canonical form or new compile flags are new entries
CACHE_FORMAT = b"tritonpack-pyc 2 unchecked-hash seed=0 marshal-2"
SOURCE_ONLY = b"source only\n"  # a cache entry saying: this interpreter cannot compile it
HEADER = 16  # magic, flags, source hash (PEP 552)
MAX_ENTRY = 64 << 20  # a bytecode entry larger than this is not read (read whole otherwise)



def targets(root: Path, python: str, mode: str, packages: tuple[str, ...],
            loaded: tuple[str, ...] | None = None) -> list[Path]:
    """What ``mode`` compiles: the whole lib dir (``all``); for ``imported``, the files the
    import check saw loaded (``loaded``, relative to ``root``) and the site-packages
    ``packages`` whole (the model's bundled modules, which are never imported to find out),
    or without that list (the check could not run) the stdlib and ``packages`` whole."""
    lib = root / "lib" / f"python{python}"
    if mode == "none":
        return []
    if mode == "all":
        return [lib]
    site = lib / "site-packages"
    if loaded is not None:
        # the list comes from a process that ran the packages' code: only .py files inside
        # the env are taken from it, so nothing outside is read or written
        inside = Within(root)
        out = [root / rel for rel in loaded
               if rel.endswith(".py") and not PurePosixPath(rel).is_absolute()
               and ".." not in PurePosixPath(rel).parts and inside(root / rel)]
    else:
        out = [p for p in sorted(lib.iterdir())
               if p != site and (p.is_dir() or p.suffix == ".py")]
        packages = (*packages, "numpy")  # the stub imports numpy
    for top in sorted(set(packages)):
        out += [c for c in (site / top, site / f"{top}.py") if c.exists()]
    return out


class Within:
    """Whether paths, links followed, lie inside ``root`` (a name that cannot be a path, with
    a NUL in it, does not; nor does a loop of links). Each folder is resolved once, from its
    parent's resolution and one ``lstat`` of its own: resolving every file whole stats each
    of its parents again (2,800 files, three times a pack, took 0.3 s of medium's)."""

    def __init__(self, root: Path) -> None:
        self.real = os.path.realpath(root)
        self._within = self.real if self.real.endswith("/") else self.real + "/"
        self._dirs: dict[str, str] = {}

    def __call__(self, path: Path | str) -> bool:
        try:
            real = self.resolve(os.fspath(path))
        except (OSError, ValueError, RuntimeError):
            return False
        return real == self.real or real.startswith(self._within)

    def resolve(self, path: str) -> str:
        """``os.path.realpath(path)``, its folders' resolutions remembered; a loop of links
        raises RuntimeError, as ``Path.resolve`` does. Climbs to the nearest folder known (a
        loop, not a recursion: a tree 500 folders deep is a path, not a RecursionError),
        then comes down one ``lstat`` a name, of the name under its folder's resolution
        (``realpath``'s own walk): the unresolved path's ``lstat`` may answer for another
        file, or fail (a link to ``m/../a`` with no ``m``: the kernel looks for ``m``,
        ``realpath`` does not), and a link there would be taken for a plain name."""
        if "\0" in path:
            raise ValueError("embedded null byte")
        if not os.path.isabs(path):
            path = os.path.join(os.getcwd(), path)
        below: list[tuple[str, str]] = []  # (folder, name) from path up to the one known
        at = path
        while (real := self._dirs.get(at)) is None:
            head, name = os.path.split(at)
            if name in ("", ".", "..") or head == at or "/../" in at:
                real = _realpath(at)  # a '..' is resolved from the start, as realpath does
                break
            below.append((at, name))
            at = head
        for at, name in reversed(below):
            real = os.path.join(real, name)
            if os.path.islink(real):
                real = _realpath(real)
            self._dirs[at] = real
        return real


def _realpath(path: str) -> str:
    """``os.path.realpath``, a loop of links a RuntimeError (as ``Path.resolve``), and so is
    a path the kernel cannot follow for a loop that ``realpath`` reads past (``l -> l/..``:
    ``realpath`` gives ``l``'s folder; the kernel says ELOOP, for every path under it too)."""
    real = os.path.realpath(path)
    for name in (path, real):
        try:
            os.stat(name)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RuntimeError(f"symlink loop from {path!r}") from exc
    return real


def cached_pyc(source: Path, python: str) -> Path:
    """Where the file loader looks for ``source``'s bytecode."""
    return source.parent / "__pycache__" / f"{source.stem}.cpython-{python.replace('.', '')}.pyc"


def interpreter_key(root: Path, python: str) -> bytes:
    """The compiler's identity: the bytes of the environment's interpreter and libpython
    (two builds of one version may compile differently; the magic number does not say).
    Hashed once per pack, not once per use (16 MB of libpython, five uses in a pack): kept
    while both files are the same inodes with the same size, mtime and ctime (a file written
    again, in place or replaced, changes one of them), as git trusts its index."""
    parts = (root / "bin" / f"python{python}", root / "lib" / f"libpython{python}.so.1.0")
    seen = tuple(_identity(part) for part in parts)
    known = _INTERPRETERS.get(seen)
    if known is not None:
        return known
    digest = hashlib.sha256(CACHE_FORMAT)
    for part in parts:
        with contextlib.suppress(OSError), part.open("rb") as fh:
            digest.update(part.name.encode() + b"\0")
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    if len(_INTERPRETERS) >= 8:
        _INTERPRETERS.clear()
    if None not in seen and tuple(_identity(part) for part in parts) == seen and all(
            time.time_ns() - max(ident[3:]) > _SETTLED_NS for ident in seen if ident):
        _INTERPRETERS[seen] = digest.digest()  # unchanged while read, and not just written
    return digest.digest()


_INTERPRETERS: dict[tuple[tuple[int, ...] | None, ...], bytes] = {}
# a file's times come from a coarse clock (a few ms): one written in the tick it was read in
# could be written again with the same times; one older than this cannot
_SETTLED_NS = 100_000_000


def _identity(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def files(root: Path, chosen: list[Path]) -> list[Path]:
    """Every .py file ``chosen`` names (a file, or the files under a dir) that lies inside
    ``root`` once links are followed: a package dir linked out of the environment gets no
    ``__pycache__`` written there; nor does a file whose ``.pyc`` name is a folder there
    (``_cache_blocks``)."""
    found: set[Path] = set()
    for t in chosen:
        if t.is_file():
            found.update([t] if not t.is_symlink() else [])
        else:
            found.update(_sources(t))
    inside = Within(root)
    folders: dict[Path, frozenset[str] | None] = {}
    out = []
    for f in found:  # not a link itself: inside when its folder is
        if f.parent not in folders:
            folders[f.parent] = _cache_blocks(inside, f.parent) if inside(f.parent) else None
        blocked = folders[f.parent]
        if blocked is not None and f.stem not in blocked:
            out.append(f)
    return _one_name_each(inside, out)


def _one_name_each(inside: Within, found: list[Path]) -> list[Path]:
    """``found`` with one name for each file: a folder linked to another one inside the
    environment (``foo -> bar``, both chosen) names every file twice, and the two names'
    ``.pyc`` (one file, beside the real one) were written by two compile processes at once,
    the archive taking whichever came last. The name that goes through no link is kept,
    else the first."""
    first: dict[str, Path] = {}
    aliased = []
    for f in found:
        name = os.fspath(f)
        folder, base = os.path.split(name)
        real = os.path.join(inside.resolve(folder), base)  # remembered: files() asked it
        if real == name:
            first[real] = f
        else:
            aliased.append((f, real))
    for f, real in sorted(aliased):
        first.setdefault(real, f)
    return sorted(first.values())


def _sources(top: Path) -> Iterator[Path]:
    """The regular ``.py`` files under ``top``, the folders linked under it not entered (as
    ``rglob`` there): a loop, not a recursion, so a tree a thousand folders deep is walked
    (``rglob`` raised RecursionError, a traceback), and one ``scandir`` a folder, no stat a
    file (its entry's type says file or link)."""
    folders = [top]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError:  # gone, not a folder, unreadable: nothing to compile, as rglob
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                folders.append(folder / entry.name)
            elif entry.name.endswith(".py") and entry.is_file(follow_symlinks=False):
                yield folder / entry.name


def _cache_blocks(inside: Within, folder: Path) -> frozenset[str] | None:
    """The stems of the sources whose ``.pyc`` name in ``folder/__pycache__`` is a folder
    (``--no-prune`` keeps a package's ``__pycache__``: a ``.pyc`` can be neither placed nor
    compiled there, it was a traceback; those files ship as source only); None when no
    ``.pyc`` may be written there: ``__pycache__`` is a link (a package may ship one, it
    would take what is written in it elsewhere), not a folder, or outside the root."""
    cache = folder / "__pycache__"
    try:
        if not stat.S_ISDIR(os.lstat(cache).st_mode) or not inside(cache):
            return None
        with os.scandir(cache) as listing:
            return frozenset(entry.name.rsplit(".", 2)[0] for entry in listing
                             if entry.name.endswith(".pyc")
                             and entry.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return frozenset()  # the compile makes it
    except OSError:
        return None


def _reuse(root: Path, python: str, files: list[Path], store: Path | None,
           into: Path | None = None) -> tuple[set[Path], list[Path], list[str], dict[Path, str]]:
    """Place the store's entries that belong to ``files`` (beside them, or under ``into`` as
    ``-X pycache_prefix`` looks for them): (placed, the files left to compile, the files
    known not to compile, each file's store key)."""
    interp = interpreter_key(root, python) if store is not None else b""
    secret = store_secret(store, KEY_FILE) if store is not None else None
    keys: dict[Path, str] = {}
    todo: list[Path] = []
    source_only: list[str] = []
    hits: dict[Path, bytes] = {}  # unsigned: vetted below
    vouched: dict[Path, bytes] = {}  # signed by this cache: its own compile's bytes
    placed: set[Path] = set()
    for f in files:
        rel = f.relative_to(root).as_posix()
        if store is None:
            todo.append(f)
            continue
        key = _entry_key(interp, rel, f)
        keys[f] = key
        found = _lookup_signed(store, key, secret) if reuse() else None  # --no-cache: compiled
        if found is None:
            todo.append(f)
        elif found[0] == SOURCE_ONLY:
            source_only.append(rel)
        else:
            (vouched if found[1] else hits)[f] = found[0]
    fits = dict.fromkeys(vouched, True)
    if hits:
        magic, hashes, read = _vet(root, python, hits)
        fits.update({f: _belongs(entry, magic, source_hash, f.relative_to(root).as_posix())
                     and (magic == importlib.util.MAGIC_NUMBER or read[f])  # only the env's
                     for (f, entry), source_hash in zip(hits.items(), hashes, strict=True)})
        for f, entry in hits.items():
            if fits[f] and store is not None and secret is not None:  # vetted once: signed,
                _store(store, keys[f], entry, secret)  # the next pack places it unvetted
            else:  # another file's entry, another Python's, or damaged: compiled again
                todo.append(f)
                _drop(store, keys[f], f.relative_to(root).as_posix(), magic, entry)
    for f, entry in (*vouched.items(), *hits.items()):
        if fits[f]:
            _place(entry, cached_pyc(f, python) if into is None else prefixed_pyc(into, f,
                                                                                 python))
            placed.add(f)
    todo.sort()
    return placed, todo, source_only, keys


def _entry_key(interp: bytes, rel: str, source: Path) -> str:
    """A source's store key: the interpreter, its path in the environment, its bytes."""
    return hashlib.sha256(interp + os.fsencode(rel) + b"\0" + source.read_bytes()).hexdigest()


def compiled_ahead(into: Path, root: Path, python: str, chosen: list[Path]) -> set[Path]:
    """The sources under ``chosen`` whose bytecode is under ``into`` (the check's pycache
    prefix): what the store placed there before the check, and what the check itself
    compiled and wrote there (``build.compileahead``), canonical as a compile here writes it."""
    return {f for f in files(root, chosen) if prefixed_pyc(into, f, python).is_file()}


def keep(root: Path, python: str, sources: AbstractSet[Path],
         store: Path | None) -> threading.Thread | None:
    """Keep the bytecode now beside ``sources`` in ``store`` (compiled ahead, moved in): the
    next pack of the same files reuses it, as it reuses what ``compile_bytecode`` compiled.
    Each file is read here, with its key; the entries are written on the thread returned
    (started; the caller joins it): they are for the next pack, and writing 280 of them (the
    small model's) took 0.3 s of this pack's own."""
    if store is None or not sources:
        return None
    interp = interpreter_key(root, python)
    entries = []
    for f in sorted(sources):
        with contextlib.suppress(OSError):
            entries.append((_entry_key(interp, f.relative_to(root).as_posix(), f),
                            cached_pyc(f, python).read_bytes()))
    secret = store_secret(store, KEY_FILE)  # made here: the thread only writes entries
    writer = threading.Thread(target=_store_all, args=(store, entries, secret), daemon=True,
                              name="tritonpack-bytecode-keep")
    writer.start()
    return writer


def _store_all(store: Path, entries: list[tuple[str, bytes]], secret: bytes | None) -> None:
    """``keep``'s thread: a cache that cannot be written only costs the next pack a compile,
    and no error of it ends in a traceback."""
    try:
        for key, data in entries:
            _store(store, key, data, secret)
    except Exception as exc:
        log.debug("keeping bytecode in the store stopped: %s", exc)


def prefixed_pyc(into: Path, source: Path, python: str) -> Path:
    """Where an interpreter run with ``-X pycache_prefix=into`` looks for ``source``'s
    bytecode: the source's absolute folder, under ``into``."""
    folder = into / source.parent.relative_to(source.parent.anchor)
    return folder / f"{source.stem}.cpython-{python.replace('.', '')}.pyc"


def place_cached(root: Path, python: str, chosen: list[Path], store: Path | None,
                 into: Path) -> set[Path]:
    """Place what the store holds for ``chosen`` under ``into`` (a pycache prefix), compile
    nothing: the files placed."""
    return _reuse(root, python, files(root, chosen), store, into)[0] if store is not None else set()


def adopt(into: Path, placed: AbstractSet[Path], python: str) -> set[Path]:
    """Move the bytecode ``place_cached`` put under ``into`` for ``placed`` beside its sources
    (checked against them when placed); the sources whose bytecode is now in place."""
    moved = set()
    for source in placed:
        with contextlib.suppress(OSError):
            out = cached_pyc(source, python)
            out.parent.mkdir(exist_ok=True)
            out.unlink(missing_ok=True)  # a kept .pyc may be a hard link: never written through
            os.replace(prefixed_pyc(into, source, python), out)
            moved.add(source)
    return moved


def compile_bytecode(root: Path, python: str, chosen: list[Path],
                     store: Path | None = None, done: AbstractSet[Path] = frozenset(),
                     ) -> tuple[str, ...]:
    """Compile every ``.py`` under ``chosen`` into ``__pycache__`` but the sources ``done``
    (their bytecode is in place); reuse ``store`` (a cache dir) for files compiled before by
    the same interpreter.

    The files to compile are sorted and cut into COMPILE_CHUNKS fixed chunks, each compiled
    by one process, run in parallel. Returns the files that are not Python ``python`` (torch
    ships a file of 3.12 syntax for its tests): they could never be imported there, so they
    ship as source only, as pip leaves them. Any other failure (a crash, a traceback) is an
    error."""
    found = [f for f in files(root, chosen) if f not in done]
    if not found:
        return ()
    placed, todo, source_only, keys = _reuse(root, python, found, store)
    compiled_source_only = _compile(root, python, todo) if todo else []
    # what has bytecode now: a file that is not this Python's ships none (as a warm pack
    # counts it, whose store says so: it was "compiled" cold and nothing warm)
    reused.bytecode(len(placed), len(todo) - len(compiled_source_only))
    if todo:
        source_only += compiled_source_only
        if store is not None:
            secret = store_secret(store, KEY_FILE)
            skipped = set(compiled_source_only)
            for f in todo:
                rel = f.relative_to(root).as_posix()
                out = cached_pyc(f, python)
                data = SOURCE_ONLY if rel in skipped else (
                    out.read_bytes() if out.is_file() else None)
                if data is not None:
                    _store(store, keys[f], data, secret)
    return tuple(sorted(source_only))


def loaded_key(root: Path, python: str, modules: tuple[str, ...]) -> str:
    """Where the files the last import check of ``modules`` loaded are remembered: by the
    interpreter, the modules and the installed distributions' names. Only a hint (``recall``):
    the check still runs; what it loads decides what ships."""
    site = root / "lib" / f"python{python}" / "site-packages"
    names = sorted(p.name for p in (*site.glob("*.dist-info"), *root.glob("conda-meta/*.json")))
    listed = json.dumps([sorted(modules), names]).encode()
    return hashlib.sha256(b"loaded files 1\0" + interpreter_key(root, python) + listed).hexdigest()


def recall(store: Path | None, key: str) -> tuple[str, ...] | None:
    """The list ``remember`` kept under ``key``, or None."""
    data = _lookup(store, key) if store is not None and reuse() else None
    try:
        listed = json.loads(data) if data is not None else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(listed, list) or not all(isinstance(x, str) and "\0" not in x
                                               for x in listed):
        return None
    return tuple(listed)


def remember(store: Path | None, key: str, loaded: tuple[str, ...]) -> None:
    if store is not None:
        _store(store, key, json.dumps(list(loaded)).encode())


def _lookup(store: Path, key: str) -> bytes | None:
    """The cached entry: SOURCE_ONLY or a ``.pyc``'s bytes; None when not cached, not a
    regular file of the store (a symlink is never followed), or when the entry does not match
    the digest it starts with (a torn write: compiled again). Whether a ``.pyc`` belongs to
    the file is ``_belongs``'s question."""
    found = _lookup_signed(store, key, None)
    return None if found is None else found[0]


def _lookup_signed(store: Path, key: str, secret: bytes | None) -> tuple[bytes, bool] | None:
    """``_lookup``'s entry, and whether it is signed: its first 32 bytes are this cache's
    HMAC of its key and bytes (``_mac``), not their sha256. A signed entry holds what this
    cache's own compile wrote for exactly this key (the interpreter, the path, the source's
    bytes) or what passed the vet once: it is placed as it is. Another key's entry, even one
    signed, is neither (a miss)."""
    path = store / key[:2] / key
    fh = open_entry(path)
    if fh is None:
        return None
    try:
        with fh:  # read(n) allocates n bytes first: 64 MiB per entry took 35 us each
            size = os.fstat(fh.fileno()).st_size
            raw = fh.read(size + 1) if size <= MAX_ENTRY else b""
    except OSError:
        return None
    if not raw or len(raw) > MAX_ENTRY:  # no module compiles to this: planted (a miss)
        return None
    digest, data = raw[:32], raw[32:]
    signed = secret is not None and hmac.compare_digest(digest, _mac(secret, key, data))
    if (not signed and hashlib.sha256(data).digest() != digest) or (
            data != SOURCE_ONLY and len(data) <= HEADER):
        return None
    with contextlib.suppress(OSError):
        os.utime(path, follow_symlinks=False)  # last use, for `tritonpack cache prune`
    return data, signed


KEY_FILE = "pyc.key"  # the bytecode store's signing key (``core.storefile.store_secret``)


def _mac(secret: bytes, key: str, data: bytes) -> bytes:
    """A signed entry's first 32 bytes: this cache's HMAC of the entry's key and bytes."""
    return hmac.digest(secret, b"tritonpack-pyc entry\0" + key.encode() + b"\0" + data, "sha256")


# Run by the environment's Python, once per pack that finds entries in the store: its magic
# number and, for each file, the hash its compiler writes into a hash-based .pyc (SipHash-2-4
# up to 3.10, SipHash-1-3 from 3.11: tritonpack's own Python cannot compute a 3.10 one), and
# (used where its marshal format is not tritonpack's) whether the entry kept for the file
# (a span of one blob) has this magic, unchecked-hash flags and the file's source hash, and
# unmarshals to a code object named for the file: a damaged entry would otherwise be placed,
# and every later run of that Python (compiling, the import check, the stub) would fail
# reading it ("bad marshal data"), the store keeping it for every pack. The header is checked
# before the code is read: marshal reads no entry kept for another file or another Python.
_VET = r"""
import importlib.util as u, json, marshal, sys, types
names, spans = json.load(open(sys.argv[1], encoding="utf-8"))
blob = open(sys.argv[2], "rb").read()
hashes = [u.source_hash(open(n, "rb").read()) for n in names]
head = u.MAGIC_NUMBER + (1).to_bytes(4, "little")
def ok(start, size, rel, source_hash):
    if blob[start:start + 16] != head + source_hash:
        return False
    try:
        code = marshal.loads(blob[start + 16:start + size])
    except Exception:
        return False
    return isinstance(code, types.CodeType) and code.co_filename == rel
answers = [ok(*span, h) for span, h in zip(spans, hashes)]
print(json.dumps([u.MAGIC_NUMBER.hex(), [h.hex() for h in hashes], answers]))
"""


def _vet(root: Path, python: str, entries: dict[Path, bytes],
         ) -> tuple[bytes, list[bytes], dict[Path, bool]]:
    """The environment interpreter's magic number, each file's source hash and whether it
    reads each entry as the file's code: one process for all of them (it was two, each an
    interpreter start on every warm pack)."""
    with tempfile.TemporaryDirectory(prefix="tritonpack-vet-") as tmp:
        spans, offset = [], 0
        with open(Path(tmp) / "blob", "wb") as blob:
            for f, entry in entries.items():
                blob.write(entry)
                spans.append([offset, len(entry), f.relative_to(root).as_posix()])
                offset += len(entry)
        (Path(tmp) / "vet.json").write_text(
            json.dumps([[str(f) for f in entries], spans]), encoding="utf-8")
        try:
            out = proc.run([root / "bin" / f"python{python}", "-I", "-B", "-X", "utf8", "-c",
                            _VET, Path(tmp) / "vet.json", Path(tmp) / "blob"],
                           env=proc.clean_env(), cwd=root, timeout=deadlines.SOURCE_HASHES)
            magic, hashes, answers = json.loads(out.strip().splitlines()[-1])
            read = {f: bool(a) for f, a in zip(entries, answers, strict=True)}
            return bytes.fromhex(magic), [bytes.fromhex(h) for h in hashes], read
        except (ProcessError, ValueError, IndexError, TypeError) as exc:
            raise PackError("hashing the sources with the environment's Python failed",
                            detail=getattr(exc, "detail", str(exc))) from exc


def _drop(store: Path | None, key: str, rel: str, magic: bytes, entry: bytes) -> None:
    """Remove a store entry that cannot be used for ``rel``, saying so when it was damaged
    (right header, unreadable code) rather than another file's or another Python's."""
    if store is None or entry[:4] != magic:
        return
    with contextlib.suppress(OSError):
        (store / key[:2] / key).unlink()
    log.warning("dropped the damaged bytecode-store entry %s (%s): compiled again",
                store / key[:2] / key, rel)


UNCHECKED_HASH = 0b01  # PEP 552 flags: hash-based, source not checked at import


def _belongs(data: bytes, magic: bytes, source_hash: bytes, rel: str) -> bool:
    """Whether a cached ``.pyc`` was compiled from this source, at this path, by this
    interpreter: its header's magic, flags and source hash (what CPython itself would check
    for a checked-hash .pyc), and the name its code records. An entry swapped from another
    file fails here; one forged with the right header and other code does not (the cache is
    trusted as a whole: README)."""
    if (data[:4] != magic or int.from_bytes(data[4:8], "little") != UNCHECKED_HASH
            or data[8:16] != source_hash):
        return False
    if magic != importlib.util.MAGIC_NUMBER:
        # marshal's format is this Python's own: another version's code objects cannot be
        # read here; the source hash above already ties the entry to this file's bytes
        return True
    try:
        code = marshal.loads(data[HEADER:])  # noqa: S302  # header checked just above
    except (EOFError, ValueError, TypeError):
        return False
    return isinstance(code, types.CodeType) and code.co_filename == rel


def _place(data: bytes, out: Path) -> None:
    """A new file, with the mode compileall gives (0o666 less the umask). A ``.pyc`` already
    there (``--no-prune`` keeps ``__pycache__``) may be a hard link into the build prefix and
    from there into a package cache: it is unlinked, never written through."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def store_entry(store: Path, key: str, data: bytes) -> None:
    """Keep ``data`` under ``key`` in a store laid out as this one (the import check's
    answers are kept beside the bytecode)."""
    _store(store, key, data)


def _store(store: Path, key: str, data: bytes, secret: bytes | None = None) -> None:
    """Keep one entry, its digest first (with ``secret``: signed, ``_mac``, for the bytecode
    of this tritonpack's own compile or of one vetted); a cache that cannot be written only
    costs the next pack a compile."""
    folder = store / key[:2]
    head = _mac(secret, key, data) if secret is not None else hashlib.sha256(data).digest()
    with contextlib.suppress(OSError):
        if folder.is_symlink():  # debris: the store's folders are its own
            folder.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(head + data)
            os.replace(tmp, folder / key)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _compile(root: Path, python: str, files: list[Path]) -> list[str]:
    size = -(-len(files) // COMPILE_CHUNKS)
    chunks = [files[i:i + size] for i in range(0, len(files), size)]
    with tempfile.TemporaryDirectory(prefix="tritonpack-compile-") as tmp:
        lists = []
        for n, chunk in enumerate(chunks):
            lists.append(Path(tmp) / f"chunk-{n}.json")
            lists[-1].write_text(json.dumps([f.relative_to(root).as_posix() for f in chunk]),
                                 encoding="utf-8")
        with ThreadPoolExecutor(max_workers=min(len(chunks), os.cpu_count() or 1)) as pool:
            outcomes = list(pool.map(lambda listing: _compile_listed(root, python, listing), lists))
    return [f for skipped in outcomes for f in skipped]


# Run by the environment's Python in the env root, on a listing of env-relative paths: each
# file's hash-checked .pyc (what py_compile writes for --invalidation-mode unchecked-hash,
# with the env-relative path as its name, as compileall -s gives) in marshal format 2. A
# file this Python cannot compile (a SyntaxError, as compileall reports it) is listed.
_COMPILE = r"""
import sys
sys.path[:] = [p for p in sys.path if p not in ("", ".")]  # nothing from the cwd
import importlib.util, json, marshal, os, tempfile
head = importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little")
tag = sys.implementation.cache_tag
mask = os.umask(0)
os.umask(mask)
root, skipped = sys.argv[1], []
with open(sys.argv[2], encoding="utf-8") as listing:
    names = json.load(listing)
for rel in names:
    with open(os.path.join(root, rel), "rb") as fh:
        source = fh.read()
    try:
        code = compile(source, rel, "exec", dont_inherit=True)
    except Exception:  # what compileall reports as "Error compiling"
        skipped.append(rel)
        continue
    folder, name = os.path.split(os.path.join(root, rel))
    cache = os.path.join(folder, "__pycache__")
    os.makedirs(cache, exist_ok=True)
    # a new file of a name no one chose (O_EXCL): never written through a link left there
    fd, tmp = tempfile.mkstemp(dir=cache, prefix="." + name, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(head + importlib.util.source_hash(source) + marshal.dumps(code, 2))
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, os.path.join(cache, name[:-3] + "." + tag + ".pyc"))
sys.stdout.write("\n@@TRITONPACK@@" + json.dumps(skipped))
"""


def _compile_listed(root: Path, python: str, listing: Path) -> tuple[str, ...]:
    # -S: no site, so no .pth file runs; -s: no user site. Not -I: it would ignore
    # PYTHONHASHSEED; the environment is tritonpack's clean one and the cwd the env root.
    env = {k: v for k, v in proc.clean_env({"PYTHONHASHSEED": "0"}).items()
           if not k.startswith("PYTHON") or k == "PYTHONHASHSEED"}
    try:
        # -B: the driver's own imports leave no .pyc in the tree it compiles (they would ship
        # only when something had to be compiled: archives would depend on the cache)
        out = proc.run([root / "bin" / f"python{python}", "-S", "-s", "-B", "-X", "utf8", "-c",
                        _COMPILE, root, listing], env=env, cwd=listing.parent,
                       timeout=deadlines.COMPILE)
        # the marker after a newline: JSON writes a name's newline as \n, so a file named
        # 'x@@TRITONPACK@@.py' (skipped, listed) is not taken for it
        _, marker, payload = out.rpartition("\n@@TRITONPACK@@")
        if not marker:
            raise ValueError("no report")
        return tuple(str(name) for name in json.loads(payload))
    except (ProcessError, ValueError, TypeError) as exc:
        detail = getattr(exc, "detail", str(exc))
        full = no_space_error(detail, within=root)  # the .pyc are written into the env root
        if full is not None:
            raise full from exc
        raise PackError("compiling bytecode failed: the environment's Python did not finish "
                        "its compile",
                        hint="its output follows with --verbose; a .pyc it names as bad comes "
                        "from tritonpack's bytecode store: `tritonpack cache prune --all` "
                        "empties it", detail=detail) from exc
