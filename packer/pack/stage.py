"""Pack the environment: the stage's one entry point, ``pack``, and what it returns.

Each job has its module, as conda-pack splits ``core`` (what goes in) from ``formats`` (how
it is written):

* ``output``: where the environment goes and what it may replace;
* ``staging``: what goes in (conda-pack's file list and relocation, Triton's layout, pruning,
  then ``bytecode``, ``stdlibzip`` and ``sitezip``);
* ``envcheck``: the compatibility gate, before anything is written;
* ``archive``: how it is written (a reproducible tar, gzip'd by ``targz``, stamped);
  ``--format dir`` is the staged tree itself, copied and sealed read-only (the cache links
  its files into every model of the same lock).

Everything is written beside its destination and put in place by ``Staged.commit``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..archive import targz
from ..archive.writer import DEFAULT_LEVEL, Ahead, check_tree, entries, write_stamp, write_targz
from ..build.prefix import Prefix
from ..core import reused
from ..core.atomic import atomic_write_bytes, replace_dir, temp_beside
from ..core.errors import PackError
from ..core.integrity import manifest, record_path, render_record, seal
from ..core.progress import NullReporter, Reporter, plural
from ..core.reused import Reused
from ..envcheck.inspect import check_compatible
from ..resolve.target import Target
from . import sitezip, stdlibzip
from .output import FORMATS
from .prune import RULES as PRUNE_RULES
from .prune import PruneReport, tree_size


@dataclass(frozen=True)
class EnvArchive:
    """The packed environment as written into the model directory."""

    path: Path
    format: str
    size: int  # bytes on disk (archive) or total file bytes (dir)
    files: int
    sha256: str  # of the archive; "" for a directory
    python: str
    pruned: PruneReport = field(default_factory=PruneReport)
    largest: tuple[tuple[str, int], ...] = ()
    findings: tuple[tuple[str, str], ...] = ()  # (level, message) from inspect
    manifest: tuple[tuple[str, str], ...] = ()  # a directory env: (file, sha256) of each file
    unpacked: int = 0  # bytes of the files once unpacked (0: not known, an older cache entry)

    def record(self) -> bytes:
        """The sha256 record written beside it (``integrity``)."""
        if self.format == "dir":
            return render_record(self.path.name, files=dict(self.manifest))
        return render_record(self.path.name, self.sha256)


@dataclass(frozen=True)
class PackOptions:
    """How the environment is written: part of the cache key."""

    format: str = "tar.gz"
    level: int = DEFAULT_LEVEL
    prune: bool = True
    keep: tuple[str, ...] = ()
    bytecode: str = "imported"  # hash-checked .pyc for: imported | all | none (bytecode.BYTECODE)
    stdlib_zip: bool = True  # the pure-Python stdlib in lib/pythonXY.zip (stdlibzip)
    strip: bool = False  # debug sections out of the wheels' ELF files (pack.strip)
    zip_packages: bool = True  # pure-Python distributions in site-packages' zip (sitezip)

    def key(self) -> dict[str, object]:
        return {"format": self.format, "level": self.level, "prune": self.prune,
                "keep": sorted(self.keep), "bytecode": self.bytecode,
                "rules": repr(PRUNE_RULES),  # new pruning rules: new archives
                "pyc_names": "env-relative",  # co_filename: the path in the env (bytecode)
                "pyc_for": "loaded",  # "imported": the files the import check loads
                **({"stdlib_zip": stdlibzip.RULES} if self.zips_stdlib else {}),
                **({"site_zip": sitezip.RULES} if self.zips_site else {}),
                **({"strip": "debug"} if self.strip else {}),
                # the archive's bytes depend on the deflate's version too: an entry another
                # zlib (or zlib-ng) wrote is not the archive this pack writes
                **({"gzip": targz.IDENTITY} if self.format != "dir" else {})}

    @property
    def zips_stdlib(self) -> bool:
        """Only archives: a directory env is never extracted, so files are cheaper there."""
        return self.stdlib_zip and self.format != "dir"

    @property
    def zips_site(self) -> bool:
        """Archives only, like the stdlib zip."""
        return self.zip_packages and self.format != "dir"


@dataclass(frozen=True)
class Staged:
    """A packed environment written beside its destination, not yet in place."""

    tmp: Path
    archive: EnvArchive
    reused: Reused = field(default_factory=Reused)  # what the stores gave this pack (``core.reused``)

    def commit(self) -> None:
        """Put it in place: one rename (an existing directory env is swapped out last), then
        its sha256 record beside it."""
        if self.archive.format == "dir":
            replace_dir(self.tmp, self.archive.path)
        else:
            os.replace(self.tmp, self.archive.path)
        atomic_write_bytes(record_path(self.archive.path), self.archive.record(), mode=0o644)


def du_mb(path: Path) -> float:
    return tree_size(path)[1] / 1e6


def du_mb_meanwhile(path: Path) -> Callable[[], float]:
    """``du_mb(path)`` walked on a thread started now; the function returned waits for it. The
    pack's summary gives its rate in megabytes of the environment as built, which nothing in
    a pack changes: walked while the pack runs, not after it (0.15 s of the small model's)."""
    found: list[float] = []
    walker = threading.Thread(target=lambda: found.append(du_mb(path)), daemon=True,
                              name="tritonpack-du")
    walker.start()

    def result() -> float:
        walker.join()
        return found[0] if found else 0.0

    return result


@contextlib.contextmanager
def pack(
    prefix: Prefix,
    dest: Path,
    options: PackOptions | None = None,
    *,
    reporter: Reporter | None = None,
    target: Target | None = None,
    allow_incompatible: bool = False,
    lock_hash: str = "",
    imports: tuple[str, ...] = (),
    modules: tuple[str, ...] = (),
    also: tuple[str, ...] = (),
    locked: tuple[str, ...] = (),
    bundled: tuple[tuple[str, str], ...] = (),
) -> Iterator[Staged]:
    """Pack ``prefix`` beside ``dest``; the caller commits it. Removed if not committed."""
    rep = reporter or NullReporter()
    opts = options or PackOptions()
    if opts.format not in FORMATS:
        raise PackError(f"unknown format {opts.format!r}", hint="use tar.gz or dir")

    t0 = time.monotonic()
    env_mb = du_mb_meanwhile(prefix.path)
    early: list[Ahead] = []  # the native and large files' members, compressed meanwhile
    try:
        with reused.counting() as counted, _written(
                prefix, dest, opts, rep, early, imports, modules, also, locked, bundled, target,
                allow_incompatible, lock_hash) as (tmp, result):
            for compressing in early:
                compressing.halt()  # done, or not needed (a dir env)
            took = time.monotonic() - t0
            reused.log_members(counted.frozen())
            rep.done("pack", f"{plural(result.files, 'file')} ({result.unpacked / 1e6:.0f} MB)"
                     f" -> {dest.name}"
                     + (f", {result.size / 1e6:.1f} MB" if opts.format != "dir" else "")
                     + (f" (pruned {plural(result.pruned.files, 'file')}, "
                        f"{result.pruned.bytes / 1e6:.1f} MB)" if result.pruned.files else "")
                     + f", {env_mb() / max(took, 1e-3):.0f} MB/s of environment", took)
            yield Staged(tmp, result, counted.frozen())
    finally:  # a failed check, a refused tree, Ctrl-C: nothing compressed on, nothing left
        for compressing in early:
            compressing.halt()


@contextlib.contextmanager
def _written(prefix: Prefix, dest: Path, opts: PackOptions, rep: Reporter, early: list[Ahead],
             imports: tuple[str, ...], modules: tuple[str, ...], also: tuple[str, ...],
             locked: tuple[str, ...], bundled: tuple[tuple[str, str], ...],
             target: Target | None, allow_incompatible: bool, lock_hash: str,
             ) -> Iterator[tuple[Path, EnvArchive]]:
    """``pack``'s work: the tree prepared (its native and large files compressed into the
    gzip store meanwhile, ``early``, on until the write has them all), then written beside
    ``dest``: the temporary file or dir and what it holds."""
    from .staging import cache_store, prepare_tree  # conda-pack: imported when a pack runs

    rep.start("pack", "conda-pack: relocating the environment")
    tree, pruned, largest = prepare_tree(prefix, opts, rep, imports, modules, also, locked,
                                         early)
    findings: tuple[tuple[str, str], ...] = ()
    if target:
        rep.start("pack", "checking the environment against the target")
        findings = check_compatible(tree, target, allow_incompatible, rep)
    if lock_hash:
        write_stamp(tree, lock_hash, target, bundled)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with temp_beside(dest, directory=opts.format == "dir") as tmp:
        if opts.format == "dir":
            files = entries(tree)
            check_tree(tree, files)
            size = sum(p.lstat().st_size for p in files if p.is_file() and not p.is_symlink())
            tmp.rmdir()
            shutil.copytree(tree, tmp, symlinks=True)
            seal(tmp)  # read-only: the cache links these very files into other models
            result = EnvArchive(dest, opts.format, size, len(files), "", prefix.python,
                                pruned, tuple(largest), findings,
                                tuple(sorted(manifest(tmp).items())), unpacked=size)
        else:
            rep.start("pack", f"writing {dest.name}")
            total = du_mb(tree)
            sha, size, count = write_targz(
                tree, tmp, opts.level,
                progress=lambda n: rep.progress(f"writing {dest.name}", n / 1e6, total, "MB"),
                store=cache_store("gzip"), early=early[0] if early else None)
            tmp.chmod(0o644)
            result = EnvArchive(dest, opts.format, size, count, sha, prefix.python,
                                pruned, tuple(largest), findings, unpacked=int(total * 1e6))
        yield tmp, result
