"""What goes in: conda-pack stages the built prefix into a relocated directory, which is then
checked for Triton's layout, pruned (the scanned modules must still import) and compiled.

conda-pack is the authority on what a relocatable environment holds (its file list, prefix
rewriting, activate scripts); how that directory is then written (tar, gzip, stamp) is
``archive``'s business and its bytecode ``bytecode``'s, as conda-pack splits ``core`` from
``formats``.
"""

from __future__ import annotations

import ast
import codecs
import dataclasses
import errno
import os
import shutil
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..archive import writer as archive
from ..build import checkcache, importcheck
from ..build.prefix import Prefix
from ..core import reused
from ..core.atomic import atomic_write_bytes
from ..core.cachehome import cache_dir
from ..core.errors import CacheError, PackError
from ..core.progress import NullReporter, Reporter
from . import bytecode, sitezip, stdlibzip, strip
from .prune import PruneReport, largest_packages, prune, restore, unmatched

if TYPE_CHECKING:
    from .stage import PackOptions

_TEXT_PROBE = 1 << 16  # bytes read at a time to tell text from binary


def required_paths(python: str) -> tuple[str, ...]:
    return (
        "bin/activate",
        "bin/python3",
        f"lib/libpython{python}.so.1.0",
        f"lib/python{python}/site-packages/numpy/__init__.py",
    )


def check_layout(root: Path, python: str) -> None:
    """What Triton's Python backend needs at the top of an environment."""
    missing = [p for p in required_paths(python) if not (root / p).exists()]
    if missing:
        raise PackError(
            f"the environment lacks {', '.join(missing)}: Triton's Python backend needs them",
            hint="numpy comes from the lock; bin/activate from conda-pack; python from the channel",
        )


def is_text(path: Path) -> bool:
    """conda-pack's test (the whole file decodes as UTF-8), stopping at the first byte that
    does not: an ELF library is known binary after its first 64 KiB, not after all of it."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_TEXT_PROBE):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


# -- the adapter over conda-pack ----------------------------------------------------------------
# conda-pack's documented API (CondaEnv.from_prefix, exclude, files) decides what goes in and
# how prefixes are rewritten; tritonpack keeps that. Two things it does not do are added here,
# by subclassing its no-archive writer and its Packer, which are not public API (hence the
# `<0.10` bound in pyproject.toml):
# * NoArchive picks hard link or copy ONCE, from the first file, then uses that for every
#   file: with the env on one file system and conda-pack's own activate scripts on another
#   (a tmpfs /tmp) the first link fails with EXDEV, or a later one does and the directory is
#   left incomplete. Reported upstream: conda/conda-pack#478 (fix proposed in #497). Here
#   each file is linked, else copied.
# * Packer reads every byte of each pip-installed file ("unknown" mode) to tell text from
#   binary, then hands it back unchanged; here the same test stops at the first non-UTF-8 byte
#   and the file is linked (torch: 650 MB not read twice and copied).
# _CONTRACT names every conda-pack internal the adapter touches; conda_pack_drift() checks
# them (before each pack, and in tests/test_condapack_adapter.py), so a conda-pack whose
# insides changed is refused in one sentence instead of failing inside a pack.
_CONTRACT: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    # (module, class, method, its first parameters)
    ("conda_pack.formats", "NoArchive", "__init__", ("self", "output", "arcroot")),
    ("conda_pack.formats", "NoArchive", "_absolute_path", ("self", "path")),
    ("conda_pack.formats", "NoArchive", "_add", ("self", "source", "target")),
    ("conda_pack.formats", "NoArchive", "_add_bytes", ("self", "source", "sourcebytes", "target")),
    ("conda_pack.core", "Packer", "__init__", ("self", "prefix", "archive")),
    ("conda_pack.core", "Packer", "add", ("self", "file")),
    ("conda_pack.core", "Packer", "finish", ("self",)),
    ("conda_pack.core", "File", "__init__", ("self", "source", "target")),
)
_PACKER_STATE = ("prefix", "archive", "has_dest", "prefixes")  # read by OnePass.add
_FILE_STATE = ("source", "target", "file_mode")


def conda_pack_drift(contract: tuple[tuple[str, str, str, tuple[str, ...]], ...] = _CONTRACT,
                     ) -> list[str]:
    """What of conda-pack's insides the adapter relies on is gone or changed (empty: none)."""
    import importlib
    import inspect

    drift = []
    for module, cls, method, params in contract:
        owner = getattr(importlib.import_module(module), cls, None)
        func = getattr(owner, method, None)
        if func is None:
            drift.append(f"{module}.{cls}.{method} is gone")
            continue
        have = tuple(inspect.signature(func).parameters)[:len(params)]
        if have != params:
            drift.append(f"{module}.{cls}.{method} takes ({', '.join(have)}), "
                         f"not ({', '.join(params)})")
    from conda_pack.core import BIN_DIR, File, Packer

    packer = Packer("", None)
    drift += [f"conda_pack.core.Packer has no {name}" for name in _PACKER_STATE
              if not hasattr(packer, name)]
    entry = File("", "")
    drift += [f"conda_pack.core.File has no {name}" for name in _FILE_STATE
              if not hasattr(entry, name)]
    if BIN_DIR != "bin":
        drift.append(f"conda_pack.core.BIN_DIR is {BIN_DIR!r}, not 'bin'")
    return drift


def _refuse_drift() -> None:
    drift = conda_pack_drift()
    if drift:
        from importlib.metadata import version

        raise PackError(f"conda-pack {version('conda-pack')} is not the one tritonpack's staging "
                        f"was written for: {drift[0]}",
                        hint="install conda-pack<0.10 (the bound in tritonpack's requirements)",
                        detail="\n".join(drift))


def _writer(out: Path) -> Any:
    from conda_pack.formats import NoArchive

    class LinkUnchanged(NoArchive):  # type: ignore[misc]  # conda-pack ships no type hints
        """conda-pack's ``no-archive`` writer, linking what conda-pack hands back unchanged."""

        def __init__(self, output: str, arcroot: str) -> None:
            super().__init__(output, arcroot)
            self.made: set[str] = set()  # conda-pack's makedirs per file (5,900): 0.4 s

        def _ensure_parent(self, path: str) -> None:
            parent = os.path.dirname(path)
            if parent not in self.made:
                os.makedirs(parent, exist_ok=True)
                self.made.add(parent)

        def _add(self, source: str, target: str) -> None:
            """A hard link per file, else a copy. conda-pack 0.9 picks link-or-copy once, from
            its first file, then fails with EXDEV on its own activate scripts when tritonpack's
            install and $TMPDIR are on different file systems (a tmpfs /tmp: exit 70, seen;
            conda/conda-pack#478)."""
            target_abspath = self._absolute_path(target)
            self._ensure_parent(target_abspath)
            if not (os.path.isfile(source) or os.path.islink(source)):
                os.mkdir(target_abspath)
                self.made.add(target_abspath)
                return
            try:
                os.link(source, target_abspath, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                    raise
                shutil.copy2(source, target_abspath, follow_symlinks=False)

        def _add_bytes(self, source: str, sourcebytes: bytes, target: str) -> None:
            path = Path(source)
            st = path.lstat()
            if (stat.S_ISREG(st.st_mode) and st.st_size == len(sourcebytes)
                    and path.read_bytes() == sourcebytes):
                self._add(source, target)  # a hard link on one device, else a copy
            else:
                super()._add_bytes(source, sourcebytes, target)

    return LinkUnchanged(str(out), "")


def _packer(prefix: str, archive: Any) -> Any:
    from conda_pack.core import BIN_DIR, Packer

    class OnePass(Packer):  # type: ignore[misc]  # conda-pack ships no type hints
        """conda-pack's ``Packer``, without its read of every byte of a file it hands back
        unchanged. A file of unknown mode outside ``bin/`` (every pip-installed file) is read
        by conda-pack only to tell text (listed for ``conda-unpack``) from binary, then
        written as it was: the same decision, from a read that stops at the first non-UTF-8
        byte, and a hard link (torch's 650 MB of libraries were read twice, then compared)."""

        def add(self, file: Any) -> None:
            if (file.file_mode == "unknown" and not self.has_dest
                    and not file.target.startswith(BIN_DIR)
                    and stat.S_ISREG(os.lstat(file.source).st_mode)):
                if is_text(Path(file.source)):
                    self.prefixes.append((file.target, self.prefix, "text"))
                self.archive.add(file.source, file.target)
                return
            super().add(file)

    return OnePass(prefix, archive)


def stage(prefix: Prefix, work: Path) -> Path:
    """conda-pack the prefix into a relocated directory ``work/packed``.

    conda-pack's own file list, prefix handling and activate scripts, written by its
    ``Packer`` into a ``no-archive`` directory, with one change: a file conda-pack hands back
    unchanged (every pip-installed file) is hard-linked like its managed files, not copied
    (torch: 650 MB not written twice), and read only as far as telling text from binary.
    """
    from conda_pack.core import CondaEnv, CondaPackException  # imported when a pack runs

    _refuse_drift()
    out = work / "packed"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    try:
        env = CondaEnv.from_prefix(str(prefix.path), on_missing_cache="ignore")
        env = env.exclude("CACHEDIR.TAG").exclude("conda-meta/history")
        packer = _packer(env.prefix, _writer(out))
        for file in env.files:
            packer.add(file)
        packer.finish()
    except CondaPackException as exc:
        raise PackError(f"conda-pack refused the environment: {exc}", detail=str(exc)) from exc
    return out


def cache_store(section: str) -> Path | None:
    """Where a pack keeps work for the next (``STORES``); None without a usable cache: the
    work is then done every time, nothing fails for it."""
    try:
        return cache_dir(section)
    except CacheError:
        return None


def prepare_tree(prefix: Prefix, options: PackOptions, reporter: Reporter | None = None,
                 imports: tuple[str, ...] = (), modules: tuple[str, ...] = (),
                 also: tuple[str, ...] = (), locked: tuple[str, ...] = (),
                 early: list[archive.Ahead] | None = None,
                 ) -> tuple[Path, PruneReport, list[tuple[str, int]]]:
    """conda-pack the prefix, check Triton's layout, prune, import ``modules`` (or the
    ``imports``) with the env's Python (pruning must break nothing; what the imports load, with
    the stub's modules and ``also``, the model's other imports, gets bytecode), compile
    bytecode. An archive's native and large files are compressed meanwhile (``archive.ahead``):
    given ``early``, that work is handed to the caller there, still running, for the write
    (the caller halts it); else it is halted here."""
    if options.bytecode not in bytecode.BYTECODE:
        raise PackError(f"unknown bytecode mode {options.bytecode!r}",
                        hint=f"use one of {', '.join(bytecode.BYTECODE)}")
    removals: list[threading.Thread] = []
    halts: list[Callable[[], None]] = []
    try:
        return _prepare(prefix, options, reporter, (modules or imports), imports, also,
                        locked, removals, halts, early)
    finally:
        for halt in halts:
            halt()
        for removal in removals:
            removal.join()


def _prepare(prefix: Prefix, options: PackOptions, reporter: Reporter | None,
             modules: tuple[str, ...], imports: tuple[str, ...], also: tuple[str, ...],
             locked: tuple[str, ...], removals: list[threading.Thread],
             halts: list[Callable[[], None]], early: list[archive.Ahead] | None = None,
             ) -> tuple[Path, PruneReport, list[tuple[str, int]]]:
    rep = reporter or NullReporter()  # each step says when it starts: the bench times them
    staged = stage(prefix, prefix.path.parent)
    # uv's files against their RECORD, checked while this staged them: before the import
    # check runs them, --strip rewrites them or anything is written
    prefix.verified()
    check_layout(staged, prefix.python)
    if options.strip:  # before the import check, which then imports the stripped files
        rep.start("pack", "stripping debug sections")
        _note_strip(rep, strip.strip_tree(staged, prefix.python))
    checked = (*modules, "numpy")
    load = (*bytecode.STUB_IMPORTS, *(m for m in also if m.split(".")[0] not in _NOT_LOADED))
    loaded: tuple[str, ...] | None = None
    report = PruneReport()
    store = cache_store("bytecode")
    hinted = prefix.path.parent / "pycache-hint"  # what the last such check loaded, compiled
    placed: set[Path] = set()  # the sources whose bytecode the hint placed there
    hint = ""  # the hint's key, taken once from the pruned tree the check is asked about
    hints = options.bytecode == "imported" and store is not None
    ahead = options.bytecode != "none"  # the check's imports compiled once, for the archive
    if options.prune:
        rep.start("pack", "pruning")
        holding = prefix.path.parent / "pruned"
        removal = threading.Thread(target=shutil.rmtree, args=(holding,),
                                   kwargs={"ignore_errors": True}, daemon=True)
        removals.append(removal)
        try:
            report = prune(staged, prefix.python, options.keep, holding,
                           tuple({m.split('.')[0] for m in (*modules, *imports)}), locked)
            if options.format != "dir":  # the large files' members, on the idle core
                compressing = archive.ahead(staged, options.level, cache_store("gzip"))
                if early is None:
                    halts.append(compressing.halt)
                else:
                    early.append(compressing)
            if report.held:
                rep.start("pack", "importing the model's packages after pruning")
                hint = _hint_key(staged, prefix.python, checked, load) if hints else ""
                report, loaded = still_imports(
                    staged, prefix.python, checked, report, holding, load, hinted, ahead,
                    _hinting(placed, staged, prefix.python, hint, store, hinted))
        finally:  # removed while the rest runs (361 dirs took 0.5 s here), joined below
            removal.start()
        report = dataclasses.replace(report, held=())
        for note in report.notes:
            rep.note(note)
        for pattern in unmatched(options.keep, report):
            rep.note(f"--keep {pattern!r} kept nothing: no file the pruning removes matches it")
    check_layout(staged, prefix.python)  # a --keep-less prune never removes these
    if options.bytecode == "imported" and loaded is None:
        rep.start("pack", "importing the model's packages")
        fresh = hints and not hint  # else the check after pruning had the hint placed
        if fresh:
            hint = _hint_key(staged, prefix.python, checked, load)
        loaded = loaded_files(staged, prefix.python, checked, load, hinted, ahead,
                              _hinting(placed, staged, prefix.python, hint, store, hinted)
                              if fresh else None)
    whole = prefix.bundled if loaded is not None else (*imports, *prefix.bundled)
    chosen = bytecode.targets(staged, prefix.python, options.bytecode, whole, loaded)
    # what the hint placed (checked against its source then) or the check compiled and
    # wrote, for what ships with bytecode: moved in; the check's kept in the store
    ready = (bytecode.compiled_ahead(hinted, staged, prefix.python, chosen)
             if chosen and hinted.is_dir() else set())  # absent: the check's answer was kept
    done = bytecode.adopt(hinted, ready, prefix.python) if ready else set()
    reused.bytecode(len(done & placed), len(done - placed), "with the import check")
    writer = bytecode.keep(staged, prefix.python, done - placed, store)  # joined at the end
    if writer is not None:
        removals.append(writer)
    shutil.rmtree(hinted, ignore_errors=True)
    if loaded is not None and hint:
        bytecode.remember(store, hint, loaded)
    if chosen:
        rep.start("pack", "compiling bytecode")
    source_only = (bytecode.compile_bytecode(staged, prefix.python, chosen, store, done)
                   if chosen else ())
    if source_only:
        rep.note(f"bytecode: {len(source_only)} file(s) are not Python {prefix.python} "
                 f"and ship as source only: {', '.join(source_only[:3])}"
                 + (", ..." if len(source_only) > 3 else ""))
    present = _present(staged, prefix.python, checked)  # before the zip takes some away
    if options.zips_stdlib:
        rep.start("pack", "zipping the standard library")
        stdlibzip.zip_stdlib(staged, prefix.python)
    if options.zips_site:
        rep.start("pack", "zipping the pure-Python packages")
        zip_site(staged, prefix.python, rep, present, load, loaded,
                 prefix.path.parent / "site-held")
    drop_gone_records(staged)
    return staged, report, largest_packages(staged, prefix.python)


def zip_site(root: Path, python: str, rep: Reporter, checked: tuple[str, ...],
             load: tuple[str, ...], loaded: tuple[str, ...] | None, holding: Path) -> None:
    """``sitezip``, then the model's modules imported from the zipped layout (when the check
    before loaded a zipped file, or did not run): a module that no longer imports puts every
    file back, so a wrong guess costs the zip's speed, never the server."""
    shutil.rmtree(holding, ignore_errors=True)
    try:
        report = sitezip.zip_site(root, python, holding)
        if not report.tops:
            return
        site = f"lib/python{python}/site-packages/"
        touched = loaded is None or any(
            sitezip.zipped_module(f[len(site):].removesuffix(".py").replace("/", "."), report)
            for f in loaded if f.startswith(site))
        if not touched or not checked:
            return
        try:
            # kept like the first check's answer (its own question): a warm pack of a tree
            # whose zip holds what the model loads imports nothing (torch's: seconds)
            failed = checkcache.run(root, python, checked, load, cache_store("bytecode"),
                                    layout="site zipped").failed
        except importcheck.CheckFailed as exc:
            failed = {"the import check": f"did not finish ({exc})"}
        if failed:
            name = sorted(failed)[0]
            sitezip.unzip(root, python, report, holding)
            rep.note(f"{name} does not import with the pure-Python packages zipped "
                     f"({failed[name]}): they ship as files")
    finally:
        shutil.rmtree(holding, ignore_errors=True)


def _note_strip(rep: Reporter, report: strip.StripReport) -> None:
    rep.note(f"--strip: debug sections out of {len(report.files)} ELF file(s) of wheels, "
             f"{report.saved / 1e6:.1f} MB")
    if report.signed:
        rep.note(f"--strip: {', '.join(report.signed)} left as signed (RECORD.jws/.p7s)")


_RECORDS = b"\n_prefix_records = [\n"


def drop_gone_records(root: Path) -> None:
    """``bin/conda-unpack`` rewrites the prefix in each file conda-pack listed and stops at the
    first one missing: the files pruned since are taken off its list (a user who runs it on
    the unpacked environment, as conda-pack's documentation says, gets exit 0, not a
    FileNotFoundError on a pruned ``.pyi``). Read and written as bytes: conda-pack writes it
    in the locale's encoding; every other byte stays as it was."""
    script = root / "bin" / "conda-unpack"
    if script.is_symlink() or not script.is_file():
        return
    text = script.read_bytes()
    start = text.find(_RECORDS)
    end = text.find(b"\n]\n", start)
    if start < 0 or end < 0:
        return
    kept = []
    for line in text[start + len(_RECORDS):end].split(b"\n"):
        if not _gone(root, line):
            kept.append(line)  # there, or not a record this reads: left as it is
    new = text[:start + len(_RECORDS)] + b"\n".join(kept) + text[end:]
    if new != text:
        atomic_write_bytes(script, new, mode=stat.S_IMODE(script.stat().st_mode))


def _gone(root: Path, line: bytes) -> bool:
    """Whether a line of conda-unpack's list is a record of a file no longer in ``root``.
    The line is in the locale's encoding (UTF-8, else read byte for byte as Latin-1), and
    the file is looked for under the same bytes."""
    try:
        encoding, text = "utf-8", line.decode("utf-8")
    except UnicodeDecodeError:
        encoding, text = "latin-1", line.decode("latin-1")
    try:
        record = ast.literal_eval(text.rstrip(","))
        path = record[0] if isinstance(record, tuple) and record else None
        if not isinstance(path, str):
            return False
        return not os.path.lexists(os.fsencode(root) + b"/" + path.encode(encoding))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False  # UnicodeEncodeError and a NUL in the name are ValueErrors


def _hinting(placed: set[Path], root: Path, python: str, key: str, store: Path | None,
             into: Path) -> Callable[[], None]:
    """``_place_hint``, adding to ``placed``, for the import check to call only when it runs:
    a kept answer imports nothing, and the bytecode step places the same entries beside
    their sources once (placing them under the check's prefix first, then moving them in,
    took 0.15 s of medium's pack with the model's cache)."""
    def place() -> None:
        placed.update(_place_hint(root, python, key, store, into))
    return place


def _hint_key(root: Path, python: str, checked: tuple[str, ...], load: tuple[str, ...]) -> str:
    return bytecode.loaded_key(root, python, (*_present(root, python, checked), "|", *load))


def _place_hint(root: Path, python: str, key: str, store: Path | None,
                into: Path) -> set[Path]:
    """Before the import check: the bytecode the store holds for the files the last check of
    the same modules and distributions loaded, under ``into``, the check's pycache prefix,
    so that it reads them instead of compiling them in memory (torch: thousands). Outside the
    tree and only a hint: what this check loads decides what ships."""
    if not key or store is None:
        return set()
    hint = bytecode.recall(store, key)
    if not hint:
        return set()
    return bytecode.place_cached(root, python,
                                 bytecode.targets(root, python, "imported", (), hint), store, into)


# stdlib modules the model may import that are not imported here: they act when imported
# (open a browser, print) or need a display; their files get no bytecode, nothing else changes
_NOT_LOADED = frozenset({"antigravity", "this", "__hello__", "__phello__", "turtle",
                         "turtledemo", "tkinter", "idlelib", "__main__"})


def _present(root: Path, python: str, modules: tuple[str, ...]) -> tuple[str, ...]:
    site = root / f"lib/python{python}/site-packages"
    return tuple(sorted({m for m in modules if _installed(site, m.split(".")[0])}))


def loaded_files(root: Path, python: str, modules: tuple[str, ...],
                 load: tuple[str, ...], pycache: Path | None = None,
                 ahead: bool = False, before: Callable[[], object] | None = None,
                 ) -> tuple[str, ...] | None:
    """The source files importing ``load`` and ``modules`` loads (nothing was pruned); None
    when the check cannot run to its end. A module another package needs and the environment
    lacks raises ``importcheck.MissingAtImport``."""
    try:
        outcome = checkcache.run(root, python, _present(root, python, modules), load,
                                 cache_store("bytecode"), pycache=pycache, ahead=ahead,
                                 before=before)
    except importcheck.CheckFailed:
        return None
    importcheck.refuse_missing(outcome.failed)  # never shipped: the caller adds it and rebuilds
    return outcome.loaded


def still_imports(root: Path, python: str, modules: tuple[str, ...], report: PruneReport,
                  holding: Path, load: tuple[str, ...] = (), pycache: Path | None = None,
                  ahead: bool = False, before: Callable[[], object] | None = None,
                  ) -> tuple[PruneReport, tuple[str, ...] | None]:
    """Import the scanned modules in the pruned tree (one subprocess); a module that fails
    gets its package's pruned files back, then, if it still fails, everything pruned. Also
    returns the source files the imports loaded (None when the check did not finish)."""
    site = f"lib/python{python}/site-packages"
    present = _present(root, python, modules)
    try:
        first = checkcache.run(root, python, present, load, cache_store("bytecode"),
                               pycache=pycache, ahead=ahead, before=before)
    except importcheck.CheckFailed as exc:
        return restore(root, holding, report, None,
                       f"the import check after pruning did not finish ({exc}): nothing pruned"
                       ), None
    failed, loaded = first.failed, set(first.loaded)
    if not failed:
        return report, first.loaded
    tops = tuple(sorted({f"{site}/{m.split('.')[0]}" for m in failed}))
    report = restore(root, holding, report, tops, "")
    try:
        second = importcheck.run(root, python, tuple(sorted(failed)))
        again, loaded = second.failed, loaded | set(second.loaded)
    except importcheck.CheckFailed:
        again = failed
    fixed = sorted(set(failed) - set(again))
    notes = [f"{m} stopped importing after pruning ({failed[m]}): its package keeps its "
             "pruned files" for m in fixed]
    if again:
        report = restore(root, holding, report, None, "")
        importcheck.refuse_missing(again)  # a module nothing provides, pruned or not
        name = sorted(again)[0]
        notes.append(f"{name} does not import in the built environment ({again[name]}): nothing "
                     "was pruned; verify will show whether it loads in Triton")
    return dataclasses.replace(report, notes=(*report.notes, *notes)), tuple(sorted(loaded))


def _installed(site: Path, top: str) -> bool:
    return (site / top).is_dir() or (site / f"{top}.py").is_file() or any(site.glob(f"{top}.*.so"))
