"""The pipeline, one stage a function: scan -> resolve -> lock -> build -> pack -> patch.

Each function takes plain values and returns a frozen result; the CLI only
parses options, calls these and renders what they return.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .build import provides
from .build.prefix import build, bundle_digest
from .build.runlock import key_lock, model_lock
from .core.atomic import ensure_writable, temp_beside
from .core.debris import sweep, tagged
from .core.errors import (
    ConfigPatchError,
    LockError,
    PackError,
    ResolveError,
    TargetError,
    TritonPackError,
)
from .core.fsguard import not_regular, writable_file
from .core.integrity import record_path
from .core.journal import Commit, recover
from .core.progress import NullReporter, Reporter, plural
from .core.signals import AfterCommit, signals_held
from .core.version import __version__
from .lock import conda, pychannel
from .lock.lockfile import LOCK_NAME, Lockfile, changes, needs_write, read_lock, write_lock
from .lock.pypi import DEFAULT_INDEX, Indexes, IndexUnreachable, NoSolutionError, compile_pins
from .pack import envcache, remote
from .pack.archive import read_stamp
from .pack.envcheck import enforce
from .pack.output import ARCHIVE_NAME, DIR_NAME, output_path
from .pack.pack import EnvArchive, PackOptions, Staged
from .pack.pack import pack as pack_env
from .pack.sbom import render as render_sbom
from .pack.sbom import sbom_path
from .patch.config import PatchResult, PlannedPatch, check_patch, env_value
from .resolve import forgotten
from .resolve.recipebook import Recipes, load
from .resolve.requirements import Requirements, resolve, toml_key
from .resolve.target import Target, resolve_target, torch_index
from .scan.declared import Declared, load_all
from .scan.imports import ImportReport, Kind, scan
from .scan.model import CONFIG_NAME, TOKEN, ModelDir, open_model
from .settings import Options as Options  # its home is settings; callers import it here too
from .settings import effective


@dataclass(frozen=True)
class Context:
    """A model read and understood: what every later stage starts from."""

    model: ModelDir
    recipes: Recipes
    target: Target
    declared: Declared
    report: ImportReport
    requirements: Requirements
    options: Options = field(default_factory=Options)

    @property
    def lock_path(self) -> Path:
        return self.model.path / LOCK_NAME

    @property
    def warnings(self) -> tuple[str, ...]:
        return (*self.model.warnings(), *self.report.notes, *self.requirements.warnings)


def _with_origin(exc: TargetError, sources: dict[str, str], model_dir: Path) -> TargetError:
    """Say which file a refused target setting came from, when the user did not type it."""
    about = next((key for start, key in (("--torch", "torch"), ("Triton release", "triton"),
                                         ("--python", "python"), ("Python", "python"),
                                         ("platform", "platform")) if exc.message.startswith(start)),
                 None)  # the setting the message is about, when it says
    keys = (about,) if about else ("triton", "python", "platform", "torch")
    files = sorted({sources[k] for k in keys
                    if sources.get(k) not in (None, "command line", "default")})
    if not files:
        return exc
    shown = ", ".join(str(model_dir / f) for f in files)
    return TargetError(f"{exc.message} (set in {shown})", hint=exc.hint, detail=exc.detail)


def prepare(path: Path, opts: Options, reporter: Reporter | None = None) -> Context:
    """Open the model, pick the target, scan (AST only) and map imports to distributions."""
    rep = reporter or NullReporter()
    t0 = time.monotonic()
    model = open_model(path, opts.version)
    opts, sources = effective(opts, model.path)
    recipes = load(opts.recipes)
    try:
        target = resolve_target(recipes, opts.triton, python=opts.python,
                                platform=opts.platform, torch=opts.torch)
    except TargetError as exc:
        raise _with_origin(exc, sources, model.path) from exc
    report = scan(model.path, model.version_dir, model.model_py, python=target.python,
                  stdlib=recipes.stdlib[target.python], src=opts.src)
    declared = load_all(model.path, model.version_dir, recipes.conda_to_pypi)
    reqs = resolve(report, declared, recipes, target)
    forgotten.check(model.path, reqs)  # a package of the user's, left out: before any lock
    ctx = Context(model, recipes, target, declared, report, reqs, opts)
    for warning in ctx.warnings:
        rep.note(warning)
    rep.done("scan", f"{plural(len(report.files), 'file')}, "
             f"{plural(len(reqs.pypi), 'requirement')}",
             time.monotonic() - t0)
    return ctx


def lock_indexes(ctx: Context, opts: Options) -> Indexes:
    """The user's indexes, plus the PyTorch index for the target's CUDA when torch is wanted."""
    indexes = declared_indexes(ctx.declared, opts)
    extra = torch_index(ctx.recipes, ctx.target, ctx.requirements.pypi)
    if extra is None or extra in indexes.extra_index_urls:
        return indexes
    return dataclasses.replace(indexes, extra_index_urls=(extra, *indexes.extra_index_urls))


def declared_indexes(declared: Declared, opts: Options) -> Indexes:
    """Index lines of a requirements.txt add to the options' (a command-line --index-url wins)."""
    ours = opts.indexes
    index_url = ours.index_url
    if declared.index_url and "index-url" not in opts.explicit and index_url == DEFAULT_INDEX:
        index_url = declared.index_url
    return Indexes(index_url,
                   tuple(dict.fromkeys([*ours.extra_index_urls, *declared.extra_index_urls])),
                   tuple(dict.fromkeys([*ours.find_links, *declared.find_links])))


def lock_inputs(ctx: Context, opts: Options) -> dict[str, Any]:
    """What a lock is made from; its hash decides whether a lock is fresh."""
    imports = sorted(
        f"{r.key}={r.distribution}" for r in ctx.requirements.rows
        if r.distribution and (r.required or r.distribution in ctx.requirements.pypi)
    )
    declared_from = {line: src for line, src in ctx.requirements.origins
                     if line in ctx.requirements.pypi}
    return {
        "imports": imports,
        "requirements": list(ctx.requirements.pypi),
        **({"declared_from": [f"{k} ({v})" for k, v in sorted(declared_from.items())]}
           if ctx.declared.files else {}),
        "conda_specs": list(ctx.requirements.conda),
        "target": ctx.target.as_dict(),
        "channels": list(opts.channels),
        **({"declared_channels": list(declared_channels(ctx.declared))}
           if declared_channels(ctx.declared) else {}),
        "indexes": lock_indexes(ctx, opts).as_dict(),
        **({"src": src_inputs(ctx.model.path, opts.src)} if opts.src else {}),
        **({"index_options": index_options(opts)} if index_options(opts) else {}),
    }


def index_options(opts: Options) -> dict[str, Any]:
    """The index settings the user chose (command line or [options]), remembered by the lock
    apart from the indexes that requirements files and the PyPI torch rule add."""
    ours = opts.indexes
    out: dict[str, Any] = {}
    if ours.index_url != DEFAULT_INDEX:
        out["index-url"] = ours.index_url
    if ours.extra_index_urls:
        out["extra-index-url"] = list(ours.extra_index_urls)
    if ours.find_links:
        out["find-links"] = list(ours.find_links)
    return out


def src_inputs(model_dir: Path, src: tuple[Path, ...]) -> list[str]:
    """--src roots as the lock remembers them: relative to the model dir, so that a later run
    or check without --src (another machine, another checkout path) bundles the same code."""
    return [Path(os.path.relpath(root.resolve(), model_dir.resolve())).as_posix() for root in src]


def stale(ctx: Context, lock: Lockfile) -> list[str]:
    """What changed since ``lock`` was made (empty: the lock is fresh)."""
    want = lock_inputs(ctx, ctx.options)
    fell = lock.inputs.get("torch_index_unreachable")
    if fell and fell in want["indexes"]["extra_index_urls"]:  # locked without the PyTorch index
        want["indexes"] = {**want["indexes"], "extra_index_urls": [
            u for u in want["indexes"]["extra_index_urls"] if u != fell]}
        want["torch_index_unreachable"] = fell
    return changes(lock.inputs, want)


def torch_fallback(ctx: Context, opts: Options, exc: IndexUnreachable, rep: Reporter) -> Indexes:
    """The PyTorch index is unreachable: the configured indexes instead, when their torch is a
    build for the target (PyPI's Linux x86_64 torch is a CUDA 12 build); else the choices."""
    url = torch_index(ctx.recipes, ctx.target, ctx.requirements.pypi)
    if url is None or exc.url != url or url in opts.indexes.extra_index_urls:
        raise exc  # not the index tritonpack added: the user's own, named
    pypi = ctx.recipes.torch.get("pypi", {})
    build = str(pypi.get("cuda", ""))
    target = ctx.target
    if not (build and target.torch.startswith("cu") and target.cuda.split(".")[0] == build
            and target.platform in pypi.get("platforms", [])):
        raise ResolveError(
            f"the PyTorch index {url} is unreachable, and the configured indexes hold no torch "
            f"known to match Triton {target.release} (CUDA {target.cuda}, --torch "
            f"{target.torch}): PyPI's Linux x86_64 torch is a CUDA {build} build",
            hint="choose: --torch cpu or --torch cuXYZ (another PyTorch index), or --torch none "
                 "with --index-url/--find-links of a mirror or wheelhouse that holds torch",
            detail=exc.detail)
    indexes = declared_indexes(ctx.declared, opts)
    rep.note(f"the PyTorch index {url} is unreachable: torch comes from the configured indexes "
             f"({indexes.index_url}) instead, as on PyPI a CUDA {build} build, compatible with "
             f"Triton {target.release}'s CUDA {target.cuda}")
    return indexes


def _python_source(opts: Options) -> str:
    """Where pip-tools finds the target's Python: ``--python-from`` (a prefix), else auto."""
    return opts.python_from or "auto"


def _channel_sources(ctx: Context, opts: Options, rep: Reporter) -> list[str | Path]:
    """The channels to solve against; a local python channel when none is reachable."""
    if opts.channels and not opts.offline and opts.python_from is None:
        return list(opts.channels)
    source = opts.python_from
    if source is None and not opts.offline:
        declared = list(declared_channels(ctx.declared))  # environment.yml's
        wanted: list[str | Path] = [*declared] if declared else [conda.CONDA_FORGE]
        unreachable = [str(c) for c in wanted if not conda.reachable(str(c))]
        if not unreachable:
            return wanted
        shown = unreachable if declared else ["conda-forge"]
        rep.note(f"{', '.join(shown)} {'is' if len(shown) == 1 else 'are'} unreachable: using "
                 "a local Python (--python-from auto)")
        source = "auto"
    install = pychannel.find_python(ctx.target.python, source or "auto")
    t0 = time.monotonic()
    rep.start("python", f"packaging Python {install.version} from {install.prefix}")
    channel = pychannel.local_channel(install, ctx.target.platform)
    rep.done("python", f"Python {install.version} from {install.prefix}", time.monotonic() - t0)
    return [channel, *opts.channels]


def declared_channels(declared: Declared) -> tuple[str, ...]:
    """environment.yml's channels (names or URLs, as ``--channel`` takes them); ``defaults``
    (Anaconda's own repository, under its own terms) is left out."""
    return tuple(c for c in declared.channels if c != "defaults")


def _missing_error(exc: NoSolutionError, ctx: Context) -> ResolveError:
    for name in exc.missing:
        rows = ctx.requirements.rows_for(name)
        if rows:
            row = rows[0]
            return ResolveError(
                f"import {row.key!r} ({row.locations[0]}) needs distribution {name!r}, "
                "which the package index does not have",
                hint=f"if {row.key!r} is your own code, pass --src DIR; if its distribution has "
                f"another name, declare it in tritonpack.toml: [imports] {toml_key(row.key)} "
                '= "NAME"',
                detail=exc.detail,
            )
        origin = next((src for line, src in ctx.requirements.origins
                       if canonicalize_name(Requirement(line).name) == name), None)
        if origin is None and ctx.declared.path is not None:
            origin = ctx.declared.path.name
        if origin is not None:
            return ResolveError(
                f"declared requirement {name!r} ({origin}) "
                "is not on the package index",
                hint=f"check its spelling and version in {origin}",
                detail=exc.detail,
            )
    return exc


@dataclass(frozen=True)
class LockResult:
    lock: Lockfile
    path: Path
    written: bool
    reused: bool
    context: Context


def make_lock(ctx: Context, opts: Options, reporter: Reporter | None = None) -> Lockfile:
    rep = reporter or NullReporter()
    sources = _channel_sources(ctx, opts, rep)
    channels = [c.as_uri() if isinstance(c, Path) else c for c in sources]
    local = [c for c in sources if isinstance(c, Path)]
    t0 = time.monotonic()
    rep.start("resolve", f"resolving {plural(len(ctx.requirements.pypi), 'requirement')} with "
                             f"{opts.resolver}")
    fallback: Indexes | None = None
    try:
        pins = compile_pins(opts.resolver, ctx.requirements.pypi, ctx.target,
                            lock_indexes(ctx, opts), _python_source(opts))
    except NoSolutionError as exc:
        raise _missing_error(exc, ctx) from exc
    except IndexUnreachable as exc:
        fallback = torch_fallback(ctx, opts, exc, rep)
        try:
            pins = compile_pins(opts.resolver, ctx.requirements.pypi, ctx.target, fallback,
                                _python_source(opts))
        except NoSolutionError as again:
            raise _missing_error(again, ctx) from again
    rep.done("resolve", f"{plural(len(pins), 'PyPI package')} ({opts.resolver})",
             time.monotonic() - t0)
    t0 = time.monotonic()
    rep.start("solve", f"solving python {ctx.target.python}.* on {', '.join(channels)}")
    packages = conda.solve(ctx.target, channels, ctx.requirements.conda)
    for channel in local:  # recorded by logical name and sha256, no machine path
        packages = tuple(pychannel.logical(p, channel) for p in packages)
    rep.done("solve", f"{plural(len(packages), 'conda package')}", time.monotonic() - t0)
    inputs = lock_inputs(ctx, opts)
    if fallback is not None:  # the lock says where torch really came from
        inputs["torch_index_unreachable"] = torch_index(ctx.recipes, ctx.target,
                                                        ctx.requirements.pypi)
        inputs["indexes"] = fallback.as_dict()
    return Lockfile(
        inputs=inputs,
        target=ctx.target.as_dict(),
        resolver=opts.resolver,
        conda=packages,
        pypi=pins,
    )


def lock(path: Path, opts: Options, reporter: Reporter | None = None, *,
         upgrade: bool = False) -> LockResult:
    """Reuse ``tritonpack.lock`` when fresh, else resolve and write it."""
    rep = reporter or NullReporter()
    ctx = prepare(path, opts, rep)
    opts = ctx.options  # with tritonpack.toml [options] and the lock's target
    with model_lock(ctx.model.path, wait=opts.wait, on_wait=rep.note):
        _recover(ctx, rep)
        return _lock(ctx, opts, rep, upgrade)


def _recover(ctx: Context, rep: Reporter) -> None:
    """Finish or roll back what a killed run left mid-commit (under the model's lock)."""
    done = recover(ctx.model.path)
    if done is not None:
        rep.note(done)


def _lock(ctx: Context, opts: Options, rep: Reporter, upgrade: bool) -> LockResult:
    writable_file(ctx.lock_path, LockError, "lock file")
    with _output_errors(ctx.lock_path, LockError):  # before resolving, not after
        ensure_writable(ctx.lock_path.parent)
    if not upgrade:
        found = _fresh_or_new_lock(ctx, opts, rep)
        if found.reused:
            return found
        new = found.lock
    else:
        new = make_lock(ctx, opts, rep)
    with signals_held(), _output_errors(ctx.lock_path, LockError):
        written = write_lock(ctx.lock_path, new)
    rep.done("lock", f"{'wrote' if written else 'unchanged'} {ctx.lock_path.name}", 0.0)
    return LockResult(new, ctx.lock_path, written=written, reused=False, context=ctx)


@dataclass(frozen=True)
class CheckResult:
    path: Path
    fresh: bool
    problems: tuple[str, ...]


def check_lock(path: Path, opts: Options, reporter: Reporter | None = None) -> CheckResult:
    """Is the lock fresh for the model as it is now? No network, no build."""
    ctx = prepare(path, opts, reporter)
    opts = ctx.options  # with tritonpack.toml [options] and the lock's target
    diff = stale(ctx, read_lock(ctx.lock_path))
    return CheckResult(ctx.lock_path, not diff, tuple(diff))


@dataclass(frozen=True)
class PackResult:
    """What ``tritonpack MODEL_DIR`` did."""

    context: Context
    lock: LockResult
    archive: EnvArchive
    config: PatchResult
    bundled: tuple[str, ...]
    skipped: tuple[str, ...]
    seconds: float
    cached: bool = False
    sbom: Path | None = None


def frozen_lock(ctx: Context, opts: Options) -> LockResult:
    """``--frozen``: use the lock as it is; refuse when missing or stale."""
    existing = read_lock(ctx.lock_path)
    diff = stale(ctx, existing)
    if diff:
        raise LockError(
            f"{ctx.lock_path.name} is stale (--frozen): " + "; ".join(diff),
            hint="run tritonpack lock and commit the new lock",
        )
    return LockResult(existing, ctx.lock_path, written=False, reused=True, context=ctx)


def package(
    path: Path,
    opts: Options,
    reporter: Reporter | None = None,
    *,
    frozen: bool = False,
    pack_options: PackOptions | None = None,
    output: str | None = None,
    use_cache: bool = True,
    allow_incompatible: bool = False,
    sbom: bool = False,
    cache_since: float | None = None,
    shared_root: Path | None = None,
) -> PackResult:
    """... ``use_cache=False`` reuses no environment made before ``cache_since`` (default: now),
    so models packed together in one run still share a build."""
    rep = reporter or NullReporter()
    t0 = time.monotonic()
    since = None if use_cache else (cache_since if cache_since is not None else time.time())
    ctx = prepare(path, opts, rep)
    opts = ctx.options  # with tritonpack.toml [options] and the lock's target
    with model_lock(ctx.model.path, wait=opts.wait, on_wait=rep.note):
        _recover(ctx, rep)
        return _package(ctx, opts, rep, t0, frozen=frozen, popts=pack_options or PackOptions(),
                        output=output, since=since, allow=allow_incompatible, sbom=sbom,
                        shared_root=shared_root)


def _package(ctx: Context, opts: Options, rep: Reporter, t0: float, *, frozen: bool,
             popts: PackOptions, output: str | None, since: float | None, allow: bool,
             sbom: bool, shared_root: Path | None = None) -> PackResult:
    """Everything is made beside its destination first; the lock, the environment and
    config.pbtxt are then committed together with SIGINT/SIGTERM held back."""
    dest = output_path(ctx.model.path, output, popts.format, shared_root)
    remote_refs(opts)  # a malformed oci:// reference fails before any work
    writable_file(ctx.lock_path, LockError, "lock file")
    if popts.format != "dir":
        writable_file(dest, PackError, "environment archive")
    with _output_errors(dest):  # a bad or unwritable destination fails before lock and build
        ensure_writable(_existing_ancestor(dest.parent))
    left = [f".{n}." for n in (dest.name, LOCK_NAME, CONFIG_NAME, sbom_path(dest).name,
                               ARCHIVE_NAME, DIR_NAME)]
    for where in {ctx.model.path, dest.parent}:  # what a killed run left (packer.core.debris)
        sweep(where, left)
    locked = frozen_lock(ctx, opts) if frozen else _fresh_or_new_lock(ctx, opts, rep)
    with _output_errors(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        ensure_writable(dest.parent)
        result = _build_and_commit(ctx, locked, rep, t0, dest, popts, since, allow, sbom)
    _remove_previous(ctx, dest, rep)
    return result


def _remove_previous(ctx: Context, dest: Path, rep: Reporter) -> None:
    """The environment config.pbtxt pointed at before, when tritonpack made it (its stamp)
    and it is not the new one: switching --format or --output leaves no second copy."""
    value = ctx.model.env_path()  # as read before the patch
    if not value or not value.startswith(TOKEN + "/"):
        return
    old = Path(os.path.normpath(ctx.model.path / value[len(TOKEN) + 1:]))
    if old == dest or not old.is_relative_to(ctx.model.path) or old.is_symlink():
        return
    if (old.is_dir() or not_regular(old) is None) and read_stamp(old) is not None:
        with contextlib.suppress(OSError):
            # renamed away first: a run killed while deleting leaves a temporary name the next
            # run sweeps (packer.core.debris), never a half-deleted environment in its place
            doomed = old.with_name(tagged(f".{old.name}.") + "old")
            old.rename(doomed)
            record_path(old).unlink(missing_ok=True)  # its sha256 record goes with it
            shutil.rmtree(doomed) if doomed.is_dir() else doomed.unlink()
            rep.note(f"removed the previous environment {old.name}")


def _existing_ancestor(path: Path) -> Path:
    """The nearest directory that exists: where ``mkdir -p path`` would first write."""
    while not path.is_dir() and path != path.parent:
        path = path.parent
    return path


@contextlib.contextmanager
def _output_errors(dest: Path, error: type[TritonPackError] = PackError) -> Iterator[None]:
    """Turn a full disk, a read-only file system or a permission problem into one message."""
    try:
        yield
    except OSError as exc:
        why = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
               errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied"}.get(exc.errno or 0)
        if why is None:
            raise
        raise error(f"cannot write to {dest.parent}: {why}",
                        hint="nothing in the model directory was changed",
                        detail=str(exc)) from exc


def _build_and_commit(ctx: Context, locked: LockResult, rep: Reporter, t0: float, dest: Path,
                      popts: PackOptions, since: float | None, allow_incompatible: bool,
                      sbom: bool) -> PackResult:
    value = env_value(Path(os.path.relpath(dest, ctx.model.path)).as_posix())
    plan = check_patch(ctx.model.config_path, value)  # refuse before building, not after
    if not sbom and sbom_path(dest).is_file():  # a bill of materials is never left stale
        rep.note(f"{sbom_path(dest).name} is there from an earlier --sbom: refreshing it")
        sbom = True
    key = envcache.cache_key(locked.lock.content_hash, popts, bundle_digest(ctx.report))
    hit = envcache.lookup(key, since)
    pulls, pushes = remote_refs(ctx.options)
    transfers: list[remote.Transfer] = []
    if hit is None and since is None and pulls and remote.fetch(pulls, key, rep, transfers):
        hit = envcache.lookup(key)
    committed = None
    if hit is not None:
        enforce(hit.archive_at(dest).findings, ctx.target, allow_incompatible, rep)
        with temp_beside(dest, directory=popts.format == "dir") as tmp:
            envcache.place(hit.path, tmp, popts.format)
            if envcache.intact(hit, tmp):
                staged = Staged(tmp, hit.archive_at(dest))
                rep.done("cache", f"reused the environment for this lock ({key[:12]})",
                         time.monotonic() - t0)
                licenses = {str(k): str(v) for k, v in hit.meta.get("licenses", [])}
                files = tuple((str(a), str(b)) for a, b in hit.meta.get("bundled_files", []))
                sbom_file = _sbom(ctx, locked, dest, licenses, files) if sbom else None
                committed = _commit(ctx, locked, staged, plan, value, sbom_file)
            else:
                rep.note(f"the cached environment for this lock ({key[:12]}) differs from the "
                         "sha256 recorded when it was made: dropped, rebuilding")
                envcache.evict(key)
                hit = None
    if committed is not None and hit is not None:
        written, patched = committed
        bundled = tuple(hit.meta.get("bundled", ()))
        skipped = tuple(hit.meta.get("skipped", ()))
    else:
        with key_lock(key):
            prefix = build(locked.lock, ctx.report, rep, key=key,
                           python_from=ctx.options.python_from)
            bundled, skipped = prefix.bundled, prefix.skipped
            try:
                provides.check(prefix.site_packages, ctx.requirements.rows,
                               (p.name for p in locked.lock.pypi))
                with pack_env(prefix, dest, popts, reporter=rep, target=ctx.target,
                              allow_incompatible=allow_incompatible,
                              lock_hash=locked.lock.content_hash,
                              imports=tuple(sorted({u.top for u in ctx.report.of_kind(
                                  Kind.THIRD_PARTY)})),
                              modules=tuple(sorted({u.module for u in ctx.report.of_kind(
                                  Kind.THIRD_PARTY) if not u.optional}))) as staged:
                    envcache.store(key, staged.tmp, staged.archive,
                                   {"bundled": list(bundled), "skipped": list(skipped),
                                    "licenses": [list(x) for x in prefix.licenses],
                                    "bundled_files": [list(x) for x in prefix.bundled_files]},
                                   replace_older_than=since)
                    sbom_file = (_sbom(ctx, locked, dest, dict(prefix.licenses),
                                       prefix.bundled_files) if sbom else None)
                    written, patched = _commit(ctx, locked, staged, plan, value, sbom_file)
            finally:
                shutil.rmtree(prefix.path.parent, ignore_errors=True)
    if pushes and (entry := envcache.lookup(key)) is not None:
        remote.publish(pushes, key, entry.path, entry.meta, _annotations(ctx, locked),
                       rep, transfers)
    if transfers:
        remote.record(transfers)
    if not locked.reused:
        rep.done("lock", f"{'wrote' if written else 'unchanged'} {ctx.lock_path.name}", 0.0)
        locked = LockResult(locked.lock, locked.path, written, False, ctx)
    rep.done("config", f"EXECUTION_ENV_PATH = {patched.value}"
             + ("" if patched.changed else " (unchanged)"), 0.0)
    return PackResult(ctx, locked, staged.archive, patched, bundled, skipped,
                      time.monotonic() - t0, cached=hit is not None,
                      sbom=sbom_path(dest) if sbom else None)


def remote_refs(opts: Options) -> tuple[tuple[remote.RemoteRef, ...], tuple[remote.RemoteRef, ...]]:
    """The ``--cache-from`` and ``--cache-to`` registries (checked before any work)."""
    return (remote.refs_from(opts.cache_from, opts.insecure_registries),
            remote.refs_from(opts.cache_to, opts.insecure_registries))


def _annotations(ctx: Context, locked: LockResult) -> dict[str, str]:
    return {"lock-hash": locked.lock.content_hash, "triton": ctx.target.release,
            "python": ctx.target.python, "platform": ctx.target.platform,
            "tritonpack-version": __version__}


def _sbom(ctx: Context, locked: LockResult, dest: Path, licenses: dict[str, str],
          bundled: tuple[tuple[str, str], ...] = ()) -> tuple[Path, bytes]:
    return sbom_path(dest), render_sbom(locked.lock, ctx.model.name, licenses, bundled)


def _commit(ctx: Context, locked: LockResult, staged: Staged, plan: PlannedPatch,
            value: str, sbom_file: tuple[Path, bytes] | None = None) -> tuple[bool, PatchResult]:
    """The lock, the environment, its record, its SBOM and config.pbtxt, together or not at
    all (``journal``), SIGINT/SIGTERM held back from the journal to the end."""
    commit = Commit(ctx.model.path)
    try:
        written = not locked.reused and needs_write(ctx.lock_path, locked.lock)
        if written:
            commit.add_bytes(ctx.lock_path, locked.lock.render().encode("utf-8"), 0o644)
        dest = staged.archive.path
        commit.add_staged(dest, staged.tmp, staged.archive.format == "dir")
        commit.add_bytes(record_path(dest), staged.archive.record(), 0o644)
        if sbom_file is not None:
            commit.add_bytes(sbom_file[0], sbom_file[1], 0o644)
        target = plan.target or ctx.model.config_path
        changed = plan.new != plan.original
        if changed:
            commit.add_bytes(target, plan.new, expect=plan.original)
        elif target.read_bytes() != plan.original:
            raise ConfigPatchError(f"{ctx.model.config_path} changed while tritonpack ran; left "
                                   "as it is now (nothing in the model directory was changed)",
                                   hint="run tritonpack again")
    except BaseException:
        commit.discard()
        raise
    try:
        with signals_held():
            commit.run()
    except KeyboardInterrupt as exc:  # held through the commit, delivered after it
        raise AfterCommit(f"interrupted ({exc}) after the commit: the new environment, lock "
                          "and config.pbtxt are all in place") from exc
    return written, PatchResult(ctx.model.config_path, value, changed=changed)


def _fresh_or_new_lock(ctx: Context, opts: Options, rep: Reporter) -> LockResult:
    """The existing lock when fresh, else a new one (not written yet)."""
    if ctx.lock_path.is_file():
        existing = read_lock(ctx.lock_path)  # a corrupt lock is refused, never silently replaced
        if not stale(ctx, existing):
            rep.done("lock", f"{LOCK_NAME} is fresh", 0.0)
            return LockResult(existing, ctx.lock_path, written=False, reused=True, context=ctx)
    return LockResult(make_lock(ctx, opts, rep), ctx.lock_path, written=False, reused=False,
                      context=ctx)
