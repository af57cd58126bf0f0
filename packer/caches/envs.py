"""The content-addressed store of packed environments.

Key: the lock's content hash + the pack options + the bundled modules' bytes +
tritonpack's format version. A re-run with an unchanged lock does no solve, no
install and no pack: the cached env is put into place and what was placed is checked
against the sha256 recorded when the entry was made before it is used; a damaged entry is
dropped and rebuilt. Models with identical locks share one entry.

An archive is cloned (reflink) or copied, never hard-linked (a model's archive must not
share an inode with the entry: damaging one would damage the other). A directory env's
files are hard-linked where the cache and the model share a file system (a copy where not,
file by file): a repository of models with one lock holds one environment on disk, not one
per model. Those files are read-only (``integrity.seal``), and the check before each reuse
hashes every file of the entry, so a linked file someone wrote into in place drops the
entry instead of reaching another model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..core.cachehome import SECTIONS, STORES, TAG, cache_dir, cache_root, owned
from ..core.debris import sweep, tagged
from ..core.errors import CacheError
from ..core.integrity import (
    clone_or_copy,
    link_or_copy,
    manifest,
    regular_sha256,
    seal,
    sha256_file,
)
from ..core.storefile import SIGNED, open_entry, real_dir
from ..pack.prune import PruneReport, tree_size
from ..pack.stage import EnvArchive, PackOptions
from . import meta as entrymeta
from .meta import EntryMeta, MetaError

FORMAT = 8  # bump when what an archive holds for a given lock changes (8: typed metadata)
ARCHIVE = "env.tar.gz"
DIRECTORY = "env"


def cache_key(lock_hash: str, options: PackOptions, bundled_digest: str) -> str:
    blob = json.dumps({"format": FORMAT, "lock": lock_hash, "pack": options.key(),
                       "bundled": bundled_digest}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    key: str
    path: Path  # the archive file or the env directory
    meta: EntryMeta

    def archive_at(self, dest: Path) -> EnvArchive:
        m = self.meta
        pruned = PruneReport({rule: (n, b) for rule, n, b in m.pruned}, m.kept)
        return EnvArchive(dest, m.format, m.size, m.files, m.sha256, m.python, pruned,
                          m.largest, m.findings, m.manifest, unpacked=m.unpacked)


def _entry_dir(key: str) -> Path:
    return cache_dir("envs") / key


def lookup(key: str, since: float | None = None) -> Entry | None:
    """The entry for ``key``; with ``since``, only one made at or after that time.

    Nothing is read through a symlink: ``envs/KEY/env.tar.gz -> /etc/shadow`` (with a
    matching sha256 in meta.json) would copy a file its planter cannot read into the model
    directory. The entry, its meta.json and its archive must be the cache's own."""
    envs = cache_root() / "envs"
    if not (real_dir(envs) and real_dir(envs / key)):
        return None
    base = _entry_dir(key)
    fh = open_entry(base / "meta.json")
    if fh is None:
        return None
    try:
        with fh:
            meta = entrymeta.read(fh.read(entrymeta.LIMIT + 1))
    except OSError:
        return None
    except MetaError:
        evict(key)  # not metadata tritonpack writes: dropped, the lock is built again
        return None
    if since is not None and meta.created < since:
        return None
    path = base / (DIRECTORY if meta.format == "dir" else ARCHIVE)
    if meta.format == "dir":
        if not real_dir(path):
            return None
    else:
        archive = open_entry(path)
        if archive is None:
            return None
        archive.close()
    with contextlib.suppress(OSError):
        os.utime(base / "meta.json", follow_symlinks=False)  # last use, for `cache prune`
    return Entry(key, path, meta)


def place(src: Path, tmp: Path, fmt: str) -> bool:
    """Put a cached env at ``tmp`` (beside its destination): an archive as a new inode
    (reflink or copy), a directory env's files hard-linked (sealed read-only; copied where
    a link is refused). False when an entry file stopped being a regular file since
    ``lookup`` checked it (a swap for a symlink or a FIFO): a damaged entry, like one whose
    bytes changed (``intact`` is the check that follows)."""
    try:
        if fmt == "dir":
            tmp.rmdir()
            shutil.copytree(src, tmp, symlinks=True, copy_function=link_or_copy)
            seal(tmp)  # an entry made before entries were sealed: its files, shared now
        else:
            tmp.unlink()
            clone_or_copy(src, tmp)
    except (OSError, shutil.Error):
        return False
    return True


def holds(entry: Entry, dest: Path) -> bool:
    """Whether ``dest`` already is a copy of the archive entry: a regular file (a symlink is
    not followed) of the entry's size and sha256, hashed here, never taken from the record
    beside it. A re-run on an unchanged lock then writes nothing: copying the archive again
    was most of its time (a hash reads at memory speed, a copy writes at the disk's)."""
    m = entry.meta
    if m.format == "dir" or not m.sha256:
        return False
    try:
        if dest.lstat().st_size != m.size:  # most changes: no need to read it
            return False
    except OSError:
        return False
    return regular_sha256(dest) == m.sha256


def intact(entry: Entry, placed: Path) -> bool:
    """Whether ``placed`` (the entry, linked or copied) holds exactly the bytes recorded for
    it: for a directory env, every file hashed again (a linked file written in place since
    the entry was made changed the entry itself)."""
    m = entry.meta
    if m.format == "dir":
        want = dict(m.manifest)
        return bool(want) and manifest(placed) == want
    return bool(m.sha256) and sha256_file(placed) == m.sha256


def evict(key: str) -> None:
    """Drop a damaged entry (the next store makes it again)."""
    shutil.rmtree(cache_root() / "envs" / key, ignore_errors=True)


def describe(archive: EnvArchive, *, bundled: tuple[str, ...] = (),
             skipped: tuple[str, ...] = (), licenses: tuple[tuple[str, str], ...] = (),
             bundled_files: tuple[tuple[str, str], ...] = ()) -> EntryMeta:
    """The metadata of an entry for ``archive`` (what a cache hit needs besides the env)."""
    return EntryMeta(
        format=archive.format, size=archive.size, files=archive.files, sha256=archive.sha256,
        python=archive.python, unpacked=archive.unpacked,
        pruned=tuple((k, v[0], v[1]) for k, v in archive.pruned.removed.items()),
        kept=tuple(archive.pruned.kept), largest=tuple(archive.largest),
        findings=tuple(archive.findings), manifest=tuple(archive.manifest), bundled=bundled,
        skipped=skipped, licenses=licenses, bundled_files=bundled_files, created=time.time())


def store(key: str, staged_path: Path, meta: EntryMeta,
          replace_older_than: float | None = None) -> None:
    """Add a freshly packed env to the store (atomically; a concurrent twin is fine). A
    directory env's files are linked, not copied, and sealed read-only: the model's files
    are the entry's."""
    final = cache_root() / "envs" / key
    if final.exists():
        if replace_older_than is None or lookup(key, since=replace_older_than) is not None:
            return
        shutil.rmtree(final, ignore_errors=True)  # --no-cache: this run's build replaces it
    sweep(cache_dir("envs"), [".partial-"])  # left by a killed run
    work = Path(tempfile.mkdtemp(prefix=tagged(".partial-"), dir=cache_dir("envs")))
    try:
        if meta.format == "dir":
            shutil.copytree(staged_path, work / DIRECTORY, symlinks=True,
                            copy_function=link_or_copy)
            seal(work / DIRECTORY)
        else:
            clone_or_copy(staged_path, work / ARCHIVE)
        (work / "meta.json").write_bytes(meta.render())
        work.chmod(0o755)
        os.replace(work, final)
    except OSError:
        pass  # a cache that cannot be written is only a slower next run
    finally:
        shutil.rmtree(work, ignore_errors=True)


def adopt(key: str, pulled: Path, meta: EntryMeta) -> None:
    """Move an environment pulled from a remote cache (already verified) into the store."""
    final = cache_root() / "envs" / key
    if final.exists():
        return
    work = Path(tempfile.mkdtemp(prefix=".partial-", dir=cache_dir("envs")))
    try:
        name = DIRECTORY if pulled.is_dir() else ARCHIVE
        os.replace(pulled, work / name)
        if name == DIRECTORY:
            seal(work / name)
        (work / "meta.json").write_bytes(replace(meta, created=time.time()).render())
        work.chmod(0o755)
        os.replace(work, final)
    except OSError:
        pass  # a twin adopted it first, or the cache is read-only: lookup() says which
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass(frozen=True)
class CacheInfo:
    root: str
    sections: dict[str, tuple[int, int]]  # name -> (entries, bytes)


def info() -> CacheInfo:
    root = cache_root()
    sections = {}
    for name in (n for n in SECTIONS if n != "tmp"):
        base = root / name
        entries = ([p for p in base.iterdir() if not p.name.startswith(".")]
                   if real_dir(base) else [])
        if name in STORES:  # entries lie one folder down, by their key's first two digits
            entries = [p for d in entries if real_dir(d) for p in d.iterdir()
                       if not p.name.endswith(SIGNED)]  # a sidecar is part of its entry
        sections[name] = (len(entries), tree_size(base)[1] if real_dir(base) else 0)
    return CacheInfo(str(root), sections)


_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def prune_cache(older_than_days: float | None, everything: bool) -> tuple[int, int]:
    """Remove env entries unused for ``older_than_days`` (or everything); (entries, bytes).

    Nothing under the cache is followed through a symlink: whoever can write the cache can
    plant ``bytecode/zz -> /home/you``, and prune would delete there. A symlink anywhere
    prune looks is debris: the link itself is removed, never its target. Folders are opened
    with O_NOFOLLOW and their entries removed relative to that descriptor, so a folder
    swapped for a link after it was checked is not entered either."""
    root = cache_root()
    if not owned(root):
        raise CacheError(
            f"{root} is not a cache tritonpack made (no {TAG} from tritonpack in it): "
            "tritonpack prunes only its own cache",
            hint="point TRITONPACK_CACHE at a directory of its own (tritonpack tags it when it "
            "makes it)")
    removed = freed = 0
    if everything:
        for name in SECTIONS:
            base = root / name
            if base.is_symlink():
                with contextlib.suppress(OSError):
                    base.unlink()
                    removed += 1
            elif real_dir(base):
                freed += _freed_by_removing(base)
                removed += sum(1 for _ in base.iterdir())
                shutil.rmtree(base, ignore_errors=True)  # never follows a link inside
        return removed, freed
    cutoff = time.time() - 86400 * (older_than_days if older_than_days is not None else 30)
    base = root / "envs"
    if base.is_symlink():
        with contextlib.suppress(OSError):
            base.unlink()
            removed += 1
    elif real_dir(base):
        for entry in base.iterdir():
            if entry.is_symlink():
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed += 1
                continue
            if not real_dir(entry):
                continue
            try:
                last = (entry / "meta.json").lstat().st_mtime
            except OSError:
                last = 0
            if last < cutoff:
                freed += _freed_by_removing(entry)
                removed += 1
                shutil.rmtree(entry, ignore_errors=True)
    for name in STORES:  # a pack's reusable work (bytecode, gzip members), by last use
        n, size = _prune_store(root / name, cutoff)
        removed += n
        freed += size
    return removed, freed


def _freed_by_removing(tree: Path) -> int:
    """The bytes removing ``tree`` gives back: a file counts once all its hard links are in
    it. A ``--format dir`` entry's files are the packed models' files too (linked): pruning
    it frees nothing of them, and ``cache prune --all`` said 514 MB freed for 2 MB. Nothing
    is followed through a symlink (os.walk; a link's own size counts)."""
    links: dict[tuple[int, int], list[int]] = {}  # inode -> [size, links seen, links in all]
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, name))
                seen = links.setdefault((st.st_dev, st.st_ino), [st.st_size, 0, st.st_nlink])
                seen[1] += 1
    return sum(size for size, seen, nlink in links.values() if seen >= nlink)


def _prune_store(base: Path, cutoff: float) -> tuple[int, int]:
    """A store's entries (one folder down) last used before ``cutoff``, and every symlink."""
    removed = freed = 0
    if base.is_symlink():
        with contextlib.suppress(OSError):
            base.unlink()
            return 1, 0
    try:
        top = os.open(base, _DIR)
    except OSError:
        return 0, 0
    try:
        for folder in os.listdir(top):
            try:
                if stat.S_ISLNK(os.stat(folder, dir_fd=top, follow_symlinks=False).st_mode):
                    os.unlink(folder, dir_fd=top)
                    removed += 1
                    continue
                fd = os.open(folder, _DIR, dir_fd=top)
            except OSError:
                continue  # a file, or gone
            try:
                for name in os.listdir(fd):
                    with contextlib.suppress(OSError):
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                        if stat.S_ISLNK(st.st_mode) or (stat.S_ISREG(st.st_mode)
                                                        and st.st_mtime < cutoff):
                            os.unlink(name, dir_fd=fd)
                            freed += 0 if stat.S_ISLNK(st.st_mode) else st.st_size
                            removed += 1
            finally:
                os.close(fd)
    finally:
        os.close(top)
    return removed, freed
