"""Pack the environment: conda-pack decides what goes in; tritonpack writes it atomically.

conda-pack's ``no-archive`` format writes the relocated environment as a
directory (its file list, its prefix rewriting, its ``bin/activate``). That
directory is the ``--format dir`` output as it is, or tritonpack writes it as
a gzip'd tar (what Triton's libarchive reads) with sorted entries, uid/gid 0,
no user names and a zero gzip timestamp, mode 0644, renamed into place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import stat
import struct
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..build import importcheck
from ..build.prefix import Prefix
from ..core import proc
from ..core.atomic import atomic_write_bytes, replace_dir, temp_beside
from ..core.errors import PackError, ProcessError
from ..core.fsguard import not_regular
from ..core.integrity import manifest, record_path, render_record
from ..core.progress import NullReporter, Reporter, plural
from ..resolve.target import Target
from . import pyc, zipstd
from .archivefs import check_entries, escapes_dir
from .envcheck import inspect_env
from .prune import RULES as PRUNE_RULES
from .prune import PruneReport, largest_packages, prune, restore, tree_size
from .targz import ParallelGzipWriter

ARCHIVE_NAME = "tritonpack-env.tar.gz"
DIR_NAME = "tritonpack-env"
FORMATS = ("tar.gz", "dir")
# What ships as hash-checked .pyc. "imported" (the default): the stdlib and the packages the
# scan found imported, measured best for time to READY (small model 1.17 s -> 0.85 s, medium
# 3.9 s -> 2.9 s) for ~7 % more archive; "all": everything (read-only images); "none".
BYTECODE = ("imported", "all", "none")
COMPILE_CHUNKS = 4  # fixed, not the core count: the same chunks on every machine
DEFAULT_LEVEL = 4  # the knee measured by bench/: level 6 took 2.2x longer for 3.6 % less
EPOCH = 315532800  # 1980-01-01: every entry's mtime (bytecode is pruned or hash-checked)


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


def default_name(fmt: str) -> str:
    return DIR_NAME if fmt == "dir" else ARCHIVE_NAME


# What an --output may never name: the model's own files (Triton's or tritonpack's inputs).
RESERVED = {"config.pbtxt": "the model's configuration", "model.py": "the model's code",
            "tritonpack.lock": "the lock", "tritonpack.toml": "tritonpack's settings",
            "requirements.txt": "the model's declared requirements",
            "environment.yml": "the model's declared requirements"}


def output_path(model_dir: Path, name: str | None, fmt: str,
                shared_root: Path | None = None) -> Path:
    """Where the environment goes: inside the model dir, so $$TRITON_MODEL_DIRECTORY reaches it
    (or, for --shared-env, anywhere inside the repository ``shared_root``). It may replace
    only an environment tritonpack wrote (its stamp says so): never a version dir, a numeric
    name, the model's files or anything else the user wrote (``_refuse_to_replace``)."""
    if shared_root is not None and name is not None:
        dest = (shared_root / name).resolve()
        if not dest.is_relative_to(shared_root.resolve()) or dest.parent == shared_root.resolve():
            raise PackError(f"--shared-env {name}: must be a path in a directory of the "
                            f"repository {shared_root}, e.g. _envs/common.tar.gz")
        if fmt == "tar.gz" and not dest.name.endswith(".tar.gz"):
            raise PackError(f"--shared-env {name}: an archive name must end in .tar.gz")
        _refuse_to_replace("--shared-env", name, dest, shared_root.resolve())
        return dest
    rel = Path(name or default_name(fmt))
    dest = (model_dir / rel).resolve() if not rel.is_absolute() else rel.resolve()
    if not dest.is_relative_to(model_dir) or dest == model_dir:
        raise PackError(
            f"--output {name}: must be a path inside the model directory {model_dir}",
            hint="Triton finds the environment through $$TRITON_MODEL_DIRECTORY/<path>",
        )
    if fmt == "tar.gz" and not dest.name.endswith(".tar.gz"):
        raise PackError(f"--output {name}: an archive name must end in .tar.gz",
                        hint="Triton reads gzip'd tar only")
    if dest.parent.is_relative_to(model_dir) and dest.parent.name.isdigit() and (
        dest.parent.parent == model_dir
    ):
        raise PackError(f"--output {name}: not inside a version dir",
                        hint="Triton would load every file there as part of the model version")
    _refuse_to_replace("--output", name or dest.name, dest, model_dir)
    return dest


def _refuse_to_replace(option: str, name: str, dest: Path, root: Path) -> None:
    """Refuse, before any work, a destination that is not tritonpack's to write."""
    parts = dest.relative_to(root).parts
    if any(part.isdigit() for part in parts):
        raise PackError(f"{option} {name}: a numeric name is a model version dir to Triton",
                        hint="choose a name that is not a number, e.g. tritonpack-env")
    if dest.name in RESERVED:
        raise PackError(f"{option} {name}: {dest.name} is {RESERVED[dest.name]}: tritonpack "
                        "never writes over it", hint="choose another name")
    if dest.name.endswith((".sha256", ".cdx.json")):
        raise PackError(f"{option} {name}: {dest.name} is the name of a record tritonpack "
                        "writes beside an environment", hint="choose another name")
    if (dest.exists() or dest.is_symlink()) and not is_tritonpack_output(dest):
        what = "a symbolic link" if dest.is_symlink() else not_regular(dest) or "a file"
        raise PackError(f"{option} {name}: {dest.name} exists ({what}) and is not an "
                        "environment tritonpack wrote: tritonpack replaces only its own output",
                        hint="choose another name, or move it away yourself")


def is_tritonpack_output(path: Path) -> bool:
    """An environment tritonpack wrote: a real file or dir carrying its stamp."""
    return not path.is_symlink() and read_stamp(path) is not None


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


def check_tree(root: Path, paths: list[Path]) -> None:
    """Refuse a tree whose entries, replayed in archive order, would write or point outside
    the environment (through chains of links too: ``archivefs``), or that holds anything but
    files, directories and symlinks; symlinks are also resolved by real path."""
    entries: list[tuple[str, str, str]] = []
    for path in paths:
        rel = path.relative_to(root).as_posix()
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            if escapes_dir(root, path):
                raise PackError(f"unsafe entry {rel}: symlink to {os.readlink(path)} leaves the "
                                "environment", hint="Triton 26.06+ refuses such archives")
            entries.append((rel, "symlink", os.readlink(path)))
        elif stat.S_ISREG(mode) or stat.S_ISDIR(mode):
            entries.append((rel, "dir" if stat.S_ISDIR(mode) else "file", ""))
        else:
            raise PackError(f"unsafe entry {rel}: not a file, directory or symlink")
    problems = check_entries(entries)
    if problems:
        raise PackError(f"unsafe entry: {problems[0]}", hint="Triton 26.06+ refuses such archives",
                        detail="\n".join(problems))


STAMP = "tritonpack.json"  # the archive's first entry: which lock it was packed from


def _entries(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        out += [base / d for d in dirnames]
        out += [base / f for f in sorted(filenames)]
    # sorted, with the stamp first so `tritonpack check` reads one entry, not the archive
    return sorted(out, key=lambda p: (p.name != STAMP or p.parent != root,
                                      p.relative_to(root).as_posix()))


def du_mb(path: Path) -> float:
    return tree_size(path)[1] / 1e6


def write_stamp(root: Path, lock_hash: str, target: Target | None = None) -> None:
    """The lock it was packed from and the target it was packed for (``inspect`` reads it)."""
    recorded = ({"target": {"release": target.release, "python": target.python,
                            "platform": target.platform}} if target is not None else {})
    (root / STAMP).write_text(json.dumps({"lock": lock_hash, "format": 1, **recorded},
                                         sort_keys=True) + "\n",
                              encoding="utf-8")


def read_stamp(env: Path) -> dict[str, Any] | None:
    """The stamp of an archive (its first entry) or a directory env; None if it has none."""
    try:
        if env.is_dir():
            return dict(json.loads((env / STAMP).read_text(encoding="utf-8")))
        if not_regular(env) is not None:  # a FIFO would block the reader
            return None
        with tarfile.open(env, "r:gz") as tar:
            first = tar.next()
            if first is None or first.name != STAMP:
                return None
            fh = tar.extractfile(first)
            return dict(json.loads(fh.read())) if fh else None
    except (OSError, ValueError, tarfile.TarError, EOFError):
        return None


def _tarinfo(root: Path, path: Path) -> tarfile.TarInfo:
    st = path.lstat()
    info = tarfile.TarInfo(path.relative_to(root).as_posix())
    info.mtime = EPOCH  # fixed: the same lock gives the same bytes
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        info.mode = 0o777
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.type = tarfile.REGTYPE
        info.size = st.st_size
        info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    return info


def write_targz(root: Path, dest: Path, level: int = DEFAULT_LEVEL,
                threads: int | None = None,
                progress: Callable[[int], None] | None = None) -> tuple[str, int, int]:
    """Write ``root`` as a reproducible .tar.gz at ``dest``; return (sha256, size, files)."""
    entries = _entries(root)
    check_tree(root, entries)
    with dest.open("wb") as raw:
        gz = ParallelGzipWriter(raw, level, threads, progress)
        try:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                for path in entries:
                    info = _tarinfo(root, path)
                    if info.type == tarfile.REGTYPE:
                        with path.open("rb") as fh:
                            tar.addfile(info, fh)
                    else:
                        tar.addfile(info)
            gz.close()
        except BaseException:
            gz.abort()
            raise
        raw.flush()
        os.fsync(raw.fileno())
    return gz.sha.hexdigest(), gz.size, len(entries)


@dataclass(frozen=True)
class PackOptions:
    """How the environment is written: part of the cache key."""

    format: str = "tar.gz"
    level: int = DEFAULT_LEVEL
    prune: bool = True
    keep: tuple[str, ...] = ()
    bytecode: str = "imported"  # hash-checked .pyc for: imported | all | none (BYTECODE)
    stdlib_zip: bool = True  # the pure-Python stdlib in lib/pythonXY.zip (packer/zipstd.py)

    def key(self) -> dict[str, object]:
        return {"format": self.format, "level": self.level, "prune": self.prune,
                "keep": sorted(self.keep), "bytecode": self.bytecode,
                "rules": repr(PRUNE_RULES),  # new pruning rules: new archives
                **({"stdlib_zip": zipstd.RULES} if self.zips_stdlib else {})}

    @property
    def zips_stdlib(self) -> bool:
        """Only archives: a directory env is never extracted, so files are cheaper there."""
        return self.stdlib_zip and self.format != "dir"


@dataclass(frozen=True)
class Staged:
    """A packed environment written beside its destination, not yet in place."""

    tmp: Path
    archive: EnvArchive

    def commit(self) -> None:
        """Put it in place: one rename (an existing directory env is swapped out last), then
        its sha256 record beside it."""
        if self.archive.format == "dir":
            replace_dir(self.tmp, self.archive.path)
        else:
            os.replace(self.tmp, self.archive.path)
        atomic_write_bytes(record_path(self.archive.path), self.archive.record(), mode=0o644)


_NOT_COMPILED = re.compile(r"^\*\*\* Error compiling '(.+)'\.\.\.$", re.M)


def bytecode_targets(root: Path, python: str, mode: str, imports: tuple[str, ...]) -> list[Path]:
    """What ``mode`` compiles: the whole lib dir, or the stdlib and the imported packages."""
    lib = root / "lib" / f"python{python}"
    if mode == "none":
        return []
    if mode == "all":
        return [lib]
    site = lib / "site-packages"
    out = [p for p in sorted(lib.iterdir()) if p != site and (p.is_dir() or p.suffix == ".py")]
    for top in sorted({*imports, "numpy"}):  # the stub imports numpy
        out += [c for c in (site / top, site / f"{top}.py") if c.exists()]
    return out


def compile_bytecode(root: Path, python: str, targets: list[Path]) -> tuple[str, ...]:
    """Hash-checked .pyc: valid whatever the files' mtimes, so reproducible and never stale.

    Reproducible: a fixed hash seed (frozenset constants are marshalled in hash order), and
    the sorted file list cut into COMPILE_CHUNKS fixed chunks, each compiled in order by one
    process (marshal's output depends on what the process compiled before), run in parallel.
    Returns the files that are not Python ``python`` (torch ships a file of 3.12 syntax for
    its tests): they could never be imported there, so they ship as source only, as pip
    leaves them. Any other failure (a crash, a traceback) is an error."""
    files = sorted({str(f) for t in targets for f in ([t] if t.is_file() else t.rglob("*.py"))
                    if f.is_file() and not f.is_symlink()})
    if not files:
        return ()
    size = -(-len(files) // COMPILE_CHUNKS)
    chunks = [files[i:i + size] for i in range(0, len(files), size)]
    with tempfile.TemporaryDirectory(prefix="tritonpack-compile-") as tmp:
        lists = []
        for n, chunk in enumerate(chunks):
            lists.append(Path(tmp) / f"chunk-{n}.txt")
            lists[-1].write_text("\n".join(chunk) + "\n", encoding="utf-8")
        with ThreadPoolExecutor(max_workers=min(len(chunks), os.cpu_count() or 1)) as pool:
            outcomes = list(pool.map(lambda listing: _compile_listed(root, python, listing), lists))
    # marshal flags objects by their reference count at write time: canonical bytes instead
    tag = f"cpython-{python.replace('.', '')}"
    for f in files:
        source = Path(f)
        cached = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        if cached.is_file():
            with contextlib.suppress(pyc.PycError, IndexError, struct.error):
                pyc.canonicalize_file(cached, int(python.split(".")[1]))
    return tuple(sorted(f for skipped in outcomes for f in skipped))


def _compile_listed(root: Path, python: str, listing: Path) -> tuple[str, ...]:
    try:
        # Not -I: it would ignore PYTHONHASHSEED; the environment is tritonpack's clean one
        # and the cwd the env root instead.
        proc.run([root / "bin" / f"python{python}", "-s", "-m", "compileall", "-q", "-j", "1",
                  "--invalidation-mode", "unchecked-hash", "-i", listing],
                 env=proc.clean_env({"PYTHONHASHSEED": "0"}), cwd=root, timeout=1800)
    except ProcessError as exc:
        skipped = _NOT_COMPILED.findall(exc.output)
        if exc.returncode != 1 or not skipped or "Traceback (most recent call last)" in exc.output:
            raise PackError("compiling bytecode failed", detail=exc.detail) from exc
        return tuple(Path(f).relative_to(root).as_posix() for f in skipped)
    return ()


def prepare_tree(prefix: Prefix, options: PackOptions, reporter: Reporter | None = None,
                 imports: tuple[str, ...] = (), modules: tuple[str, ...] = (),
                 ) -> tuple[Path, PruneReport, list[tuple[str, int]]]:
    """conda-pack the prefix, check Triton's layout, prune (then import ``modules``, or the
    ``imports``, with the env's Python: pruning must break nothing), compile bytecode."""
    if options.bytecode not in BYTECODE:
        raise PackError(f"unknown bytecode mode {options.bytecode!r}",
                        hint=f"use one of {', '.join(BYTECODE)}")
    from .staging import stage  # conda-pack, imported when a pack runs, not at start-up

    staged = stage(prefix, prefix.path.parent)
    check_layout(staged, prefix.python)
    report = PruneReport()
    if options.prune:
        holding = prefix.path.parent / "pruned"
        try:
            report = prune(staged, prefix.python, options.keep, holding)
            if report.held:
                report = still_imports(staged, prefix.python,
                                       (*(modules or imports), "numpy"), report, holding)
        finally:
            shutil.rmtree(holding, ignore_errors=True)
        report = dataclasses.replace(report, held=())
        for note in report.notes:
            if reporter is not None:
                reporter.note(note)
    check_layout(staged, prefix.python)  # a --keep-less prune never removes these
    targets = bytecode_targets(staged, prefix.python, options.bytecode,
                               (*imports, *prefix.bundled))
    if targets:
        source_only = compile_bytecode(staged, prefix.python, targets)
        if source_only and reporter is not None:
            reporter.note(f"bytecode: {len(source_only)} file(s) are not Python {prefix.python} "
                          f"and ship as source only: {', '.join(source_only[:3])}"
                          + (", ..." if len(source_only) > 3 else ""))
    if options.zips_stdlib:
        zipstd.zip_stdlib(staged, prefix.python)
    return staged, report, largest_packages(staged, prefix.python)


def still_imports(root: Path, python: str, modules: tuple[str, ...], report: PruneReport,
                  holding: Path) -> PruneReport:
    """Import the scanned modules in the pruned tree (one subprocess); a module that fails
    gets its package's pruned files back, then, if it still fails, everything pruned."""
    site = f"lib/python{python}/site-packages"
    present = tuple(sorted({m for m in modules if _installed(root / site, m.split(".")[0])}))
    try:
        failed = importcheck.failures(root, python, present)
    except importcheck.CheckFailed as exc:
        return restore(root, holding, report, None,
                       f"the import check after pruning did not finish ({exc}): nothing pruned")
    if not failed:
        return report
    tops = tuple(sorted({f"{site}/{m.split('.')[0]}" for m in failed}))
    report = restore(root, holding, report, tops, "")
    try:
        again = importcheck.failures(root, python, tuple(sorted(failed)))
    except importcheck.CheckFailed:
        again = failed
    fixed = sorted(set(failed) - set(again))
    notes = [f"{m} stopped importing after pruning ({failed[m]}): its package keeps its "
             "pruned files" for m in fixed]
    if again:
        report = restore(root, holding, report, None, "")
        name = sorted(again)[0]
        notes.append(f"{name} does not import in the built environment ({again[name]}): nothing "
                     "was pruned; verify will show whether it loads in Triton")
    return dataclasses.replace(report, notes=(*report.notes, *notes))


def _installed(site: Path, top: str) -> bool:
    return (site / top).is_dir() or (site / f"{top}.py").is_file() or any(site.glob(f"{top}.*.so"))


def check_compatible(tree: Path, target: Target, allow: bool,
                     rep: Reporter) -> tuple[tuple[str, str], ...]:
    """What `tritonpack inspect` says, before anything is written: refuse, or warn when allowed."""
    findings = tuple((f.level, f.message) for f in inspect_env(tree, target).findings)
    enforce(findings, target, allow, rep)
    return findings


def enforce(findings: tuple[tuple[str, str], ...], target: Target, allow: bool,
            rep: Reporter) -> None:
    for level, message in findings:
        if level == "warning" or allow:
            rep.note(message)
    errors = [m for level, m in findings if level == "error"]
    if errors and not allow:
        raise PackError(
            f"the environment would fail in Triton {target.release}: {errors[0]}",
            hint="pass --allow-incompatible to pack it anyway",
            detail="\n".join(errors),
        )


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
) -> Iterator[Staged]:
    """Pack ``prefix`` beside ``dest``; the caller commits it. Removed if not committed."""
    rep = reporter or NullReporter()
    opts = options or PackOptions()
    if opts.format not in FORMATS:
        raise PackError(f"unknown format {opts.format!r}", hint="use tar.gz or dir")
    t0 = time.monotonic()
    rep.start("pack", "conda-pack: relocating the environment")
    tree, pruned, largest = prepare_tree(prefix, opts, rep, imports, modules)
    findings = check_compatible(tree, target, allow_incompatible, rep) if target else ()
    if lock_hash:
        write_stamp(tree, lock_hash, target)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with temp_beside(dest, directory=opts.format == "dir") as tmp:
        if opts.format == "dir":
            files = _entries(tree)
            check_tree(tree, files)
            size = sum(p.lstat().st_size for p in files if p.is_file() and not p.is_symlink())
            tmp.rmdir()
            shutil.copytree(tree, tmp, symlinks=True)
            result = EnvArchive(dest, opts.format, size, len(files), "", prefix.python,
                                pruned, tuple(largest), findings,
                                tuple(sorted(manifest(tmp).items())), unpacked=size)
        else:
            rep.start("pack", f"writing {dest.name}")
            total = du_mb(tree)
            sha, size, count = write_targz(
                tree, tmp, opts.level,
                progress=lambda n: rep.progress(f"writing {dest.name}", n / 1e6, total, "MB"))
            tmp.chmod(0o644)
            result = EnvArchive(dest, opts.format, size, count, sha, prefix.python,
                                pruned, tuple(largest), findings, unpacked=int(total * 1e6))
        took = time.monotonic() - t0
        rep.done("pack", f"{plural(result.files, 'file')}, {result.size / 1e6:.1f} MB -> {dest.name}"
                 + (f" (pruned {plural(pruned.files, 'file')}, {pruned.bytes / 1e6:.1f} MB)"
                    if pruned.files else "")
                 + f", {du_mb(prefix.path) / max(took, 1e-3):.0f} MB/s of environment", took)
        yield Staged(tmp, result)
