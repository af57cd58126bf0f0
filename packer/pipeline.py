"""Orchestration of a pack: open the model (``packer.context.prepare``), take its run lock, lock
(``packer.lock.stage``), build, pack, patch config.pbtxt, and commit them together.

Each function takes plain values and returns a frozen result; the CLI only
parses options, calls these and renders what they return.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import relearn
from .archive.writer import read_stamp
from .build import importcheck, provides
from .build.prefix import build, bundle_digest, bundle_plan
from .build.runlock import key_lock, model_lock
from .caches import envs as envcache
from .caches import remote
from .context import Context, prepare
from .core import network
from .core.atomic import ensure_writable, temp_beside
from .core.cachehome import distrusted
from .core.debris import sweep, tagged
from .core.errors import ConfigPatchError, LockError, PackError, UsageError
from .core.fsguard import not_regular, writable_file
from .core.integrity import record_path
from .core.journal import Commit, recover
from .core.outputs import existing_ancestor, output_errors
from .core.progress import NullReporter, Reporter
from .core.reused import Reused
from .core.signals import AfterCommit, signals_held
from .core.version import __version__
from .envcheck.inspect import enforce
from .lock import stage
from .lock.lockfile import LOCK_NAME, Lockfile, needs_write
from .lock.stage import CheckResult, LockResult
from .pack.output import ARCHIVE_NAME, DIR_NAME, is_tritonpack_output, output_path
from .pack.sbom import render as render_sbom
from .pack.sbom import sbom_path
from .pack.stage import EnvArchive, PackOptions, Staged
from .pack.stage import pack as pack_env
from .patch.config import PatchResult, PlannedPatch, check_patch, env_value
from .resolve.target import Target
from .scan.model import CONFIG_NAME, TOKEN, ModelDir
from .settings import Options

__all__ = ["CheckResult", "LockResult", "PackResult", "check_lock", "lock", "package"]


def lock(path: Path, opts: Options, reporter: Reporter | None = None, *,
         upgrade: bool = False, packages: tuple[str, ...] = ()) -> LockResult:
    """Reuse ``tritonpack.lock`` when fresh, else resolve and write it."""
    rep = reporter or NullReporter()
    ctx = prepare(path, opts, rep)
    opts = ctx.options  # with tritonpack.toml [options] and the lock's target
    with model_lock(ctx.model.path, wait=opts.wait, on_wait=rep.note):
        _recover(ctx, rep)
        result = stage.write(ctx, opts, rep, upgrade, packages)
    return dataclasses.replace(result, next_step=after_lock(ctx, result.lock.content_hash))


def after_lock(ctx: Context, lock_hash: str) -> str:
    """The command that brings the environment to the lock, or "" when it was packed from
    it: ``check`` fails until then, and "re-pack" alone does not say how."""
    where = ctx.model.env_location()
    if where.fault is None and where.path is not None:
        stamp = read_stamp(where.path)
        if stamp is not None and stamp.get("lock") == lock_hash:
            return ""
        why = "its environment was packed from another lock"
    else:
        why = "no environment is packed from it yet"
    return f"tritonpack {ctx.model.path}   ({why}: this builds and packs it)"

def _recover(ctx: Context, rep: Reporter) -> None:
    """Finish or roll back what a killed run left mid-commit (under the model's lock)."""
    done = recover(ctx.model.path, is_tritonpack_output)
    if done is not None:
        rep.note(done)

def check_lock(path: Path, opts: Options, reporter: Reporter | None = None) -> CheckResult:
    """Is the lock fresh for the model as it is now? No network, no build."""
    ctx = prepare(path, opts, reporter)
    return stage.check(ctx)

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
    reused: Reused = field(default_factory=Reused)  # a build: what the stores gave it

@dataclass(frozen=True)
class Guard:
    """Refusals a caller adds to a pack (``--verify``: can the runtime run it?), each asked as
    early as what it needs is known: ``model`` once the model dir is read and the target chosen,
    with config.pbtxt's other checks (``packer.context.prepare``: a misnamed model dir is no
    reason to wait for a solve); ``lock`` before anything is built or written (the numpy the
    lock pins)."""

    model: Callable[[ModelDir, Target], None]
    lock: Callable[[Context, Lockfile], None]


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
    guard: Guard | None = None,
) -> PackResult:
    """... ``use_cache=False`` reuses no environment made before ``cache_since`` (default: now),
    so models packed together in one run still share a build. ``guard`` may refuse the model
    before anything is resolved, and its lock before anything is built or written (``--verify``:
    can the runtime run it?)."""
    rep = reporter or NullReporter()
    t0 = time.monotonic()
    since = None if use_cache else (cache_since if cache_since is not None else time.time())
    ctx = prepare(path, opts, rep, refuse=guard.model if guard is not None else None)
    opts = ctx.options  # with tritonpack.toml [options] and the lock's target
    with model_lock(ctx.model.path, wait=opts.wait, on_wait=rep.note):
        _recover(ctx, rep)
        return _package(ctx, opts, rep, t0, frozen=frozen, popts=pack_options or PackOptions(),
                        output=output, since=since, allow=allow_incompatible, sbom=sbom,
                        shared_root=shared_root, guard=guard)


def _package(ctx: Context, opts: Options, rep: Reporter, t0: float, *, frozen: bool,
             popts: PackOptions, output: str | None, since: float | None, allow: bool,
             sbom: bool, shared_root: Path | None = None,
             guard: Guard | None = None) -> PackResult:
    """Everything is made beside its destination first; the lock, the environment and
    config.pbtxt are then committed together with SIGINT/SIGTERM held back."""
    if opts.strip and not popts.strip:  # --strip, [options] or the lock's remembered choice
        popts = dataclasses.replace(popts, strip=True)
    if not opts.zip_packages and popts.zip_packages:  # the same three places
        popts = dataclasses.replace(popts, zip_packages=False)
    if popts.strip:  # refused before anything is built, not after
        from .pack.strip import tool

        tool()
    dest = output_path(ctx.model.path, output, popts.format, shared_root)
    remote_refs(opts)  # a malformed oci:// reference fails before any work
    writable_file(ctx.lock_path, LockError, "lock file")
    if popts.format != "dir":
        writable_file(dest, PackError, "environment archive")
    with output_errors(dest):  # a bad or unwritable destination fails before lock and build
        ensure_writable(existing_ancestor(dest.parent))
    left = [f".{n}." for n in (dest.name, LOCK_NAME, CONFIG_NAME, sbom_path(dest).name,
                               ARCHIVE_NAME, DIR_NAME)]
    for where in {ctx.model.path, dest.parent}:  # what a killed run left (packer.core.debris)
        sweep(where, left)
    locked = stage.frozen(ctx, opts) if frozen else stage.fresh_or_new(ctx, opts, rep)
    if guard is not None:
        guard.lock(ctx, locked.lock)
    with output_errors(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        ensure_writable(dest.parent)
        tried = relearn.Tried()
        retake = True
        while True:
            try:
                result = _build_and_commit(ctx, locked, rep, t0, dest, popts, since, allow, sbom,
                                           retake)
                break
            except BuiltMeanwhile:
                retake = False  # the entry is there now: the next pass reuses it
            except (provides.Unprovided, importcheck.MissingAtImport) as exc:
                # what only a build shows: locked again with the fix (remembered in the lock)
                fixed = None if frozen else relearn.fix(ctx, exc, tried,
                                                        tuple(p.name for p in locked.lock.pypi))
                if fixed is None:
                    raise
                ctx, note = fixed
                rep.note(note)
                locked = LockResult(stage.make_lock(ctx, opts, rep), ctx.lock_path,
                                    written=False, reused=False, context=ctx)
                if guard is not None:
                    guard.lock(ctx, locked.lock)
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


class BuiltMeanwhile(Exception):
    """The environment this run waited to build was stored by the run it waited for: the
    caller starts again and takes it from the cache (once: ``retake``)."""


def _build_and_commit(ctx: Context, locked: LockResult, rep: Reporter, t0: float, dest: Path,
                      popts: PackOptions, since: float | None, allow_incompatible: bool,
                      sbom: bool, retake: bool = True) -> PackResult:
    value = env_value(Path(os.path.relpath(dest, ctx.model.path)).as_posix())
    plan = check_patch(ctx.model.config_path, value)  # refuse before building, not after
    if not sbom and sbom_path(dest).is_file():  # a bill of materials is never left stale
        rep.note(f"{sbom_path(dest).name} is there from an earlier --sbom: refreshing it")
        sbom = True
    key = envcache.cache_key(locked.lock.content_hash, popts,
                             bundle_digest(ctx.report, frozenset(ctx.options.allow_secrets)))
    hit = envcache.lookup(key, since)
    pulls, pushes = remote_refs(ctx.options)
    transfers: list[remote.Transfer] = []
    expect = remote.Expect(ctx.target, locked.lock.content_hash, allow_incompatible)
    if hit is None and since is None and pulls and remote.fetch(pulls, key, rep, transfers,
                                                                expect):
        hit = envcache.lookup(key)
    committed = None
    if hit is not None:
        enforce(hit.archive_at(dest).findings, ctx.target, allow_incompatible, rep)
        with temp_beside(dest, directory=popts.format == "dir") as tmp:
            kept = envcache.holds(hit, dest)  # an unchanged re-run: nothing to copy again
            if kept or (envcache.place(hit.path, tmp, popts.format)
                        and envcache.intact(hit, tmp)):
                staged = Staged(tmp, hit.archive_at(dest))
                rep.done("cache", f"reused the environment for this lock ({key[:12]})"
                         + (f"; {dest.name} already held it" if kept else ""),
                         time.monotonic() - t0)
                sbom_file = (_sbom(ctx, locked, dest, dict(hit.meta.licenses),
                                   hit.meta.bundled_files) if sbom else None)
                committed = _commit(ctx, locked, staged, plan, value, sbom_file, kept)
            else:
                rep.note(f"the cached environment for this lock ({key[:12]}) differs from the "
                         "sha256 recorded when it was made: dropped, rebuilding")
                envcache.evict(key)
                hit = None
    if committed is not None and hit is not None:
        written, patched = committed
        # what this run left out: the entry's list is of the run that made it (the key
        # hashes only what is bundled, so another --src with other secrets shares it)
        bundled = hit.meta.bundled
        skipped = bundle_plan(ctx.report, frozenset(ctx.options.allow_secrets)).skipped
    else:  # --no-cache (since): the stores are written, not read (storefile.distrusted)
        waited: list[bool] = []

        def waiting() -> None:  # the same environment, being built by another run
            waited.append(True)
            rep.note(f"waiting for another tritonpack run building this environment "
                     f"({key[:12]})")

        with key_lock(key, waiting), distrusted(since is not None):
            if retake and waited and since is None and envcache.lookup(key) is not None:
                raise BuiltMeanwhile  # the run we waited for stored it: take it, build nothing
            prefix = build(locked.lock, ctx.report, rep, key=key,
                           python_from=ctx.options.python_from,
                           credentials=(*stage.lock_indexes(ctx, ctx.options).urls(),
                                        *ctx.options.channels),
                           allow=frozenset(ctx.options.allow_secrets))
            bundled, skipped = prefix.bundled, prefix.skipped
            try:
                provides.check(prefix.site_packages, ctx.requirements.rows,
                               (p.name for p in locked.lock.pypi))
                with pack_env(prefix, dest, popts, reporter=rep, target=ctx.target,
                              allow_incompatible=allow_incompatible,
                              lock_hash=locked.lock.content_hash,
                              locked=tuple(p.name for p in locked.lock.pypi),
                              bundled=prefix.bundled_files,
                              **ctx.report.to_import()) as staged:
                    envcache.store(key, staged.tmp, envcache.describe(
                        staged.archive, bundled=tuple(bundled), skipped=tuple(skipped),
                        licenses=tuple(prefix.licenses),
                        bundled_files=tuple(prefix.bundled_files)), replace_older_than=since)
                    sbom_file = (_sbom(ctx, locked, dest, dict(prefix.licenses),
                                       prefix.bundled_files) if sbom else None)
                    written, patched = _commit(ctx, locked, staged, plan, value, sbom_file)
            finally:
                prefix.settled()  # the RECORD check reads the prefix removed here
                shutil.rmtree(prefix.path.parent, ignore_errors=True)
    if pushes and (entry := envcache.lookup(key)) is not None:  # after the commit: a Ctrl-C
        remote.publish(pushes, key, entry.path, entry.meta,  # here says so (signals)
                       _annotations(ctx, locked), rep, transfers)
    if transfers:
        remote.record(transfers)
    if not locked.reused:
        rep.done("lock", f"{'wrote' if written else 'unchanged'} {ctx.lock_path.name}", 0.0)
        locked = LockResult(locked.lock, locked.path, written, False, ctx)
    rep.done("config", f"EXECUTION_ENV_PATH = {patched.value}"
             + ("" if patched.changed else " (unchanged)"), 0.0)
    return PackResult(ctx, locked, staged.archive, patched, bundled, skipped,
                      time.monotonic() - t0, cached=hit is not None,
                      sbom=sbom_path(dest) if sbom else None, reused=staged.reused)


def remote_refs(opts: Options) -> tuple[tuple[remote.RemoteRef, ...], tuple[remote.RemoteRef, ...]]:
    """The ``--cache-from`` and ``--cache-to`` registries (checked before any work); none
    may be asked under ``--offline``."""
    if network.offline() and (opts.cache_from or opts.cache_to):
        raise UsageError("--offline cannot use a remote cache (--cache-from/--cache-to, "
                         "TRITONPACK_CACHE_FROM/TO): a registry is reached over the network",
                         hint="drop --offline, or the remote cache for this run")
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
            value: str, sbom_file: tuple[Path, bytes] | None = None,
            kept: bool = False) -> tuple[bool, PatchResult]:
    """The lock, the environment (unless ``kept``: its destination already holds these
    bytes), its record, its SBOM and config.pbtxt, together or not at all (``journal``),
    SIGINT/SIGTERM held back from the first new file to the end (a signal between a new
    file's creation and its listing would leave it behind)."""
    try:
        with signals_held():
            commit, written, changed = _prepare(ctx, locked, staged, plan, sbom_file, kept)
            commit.run()
    except KeyboardInterrupt as exc:  # held through the commit, delivered after it; what it
        raise AfterCommit(*exc.args) from exc  # says: what was committed (signals.interrupted)
    return written, PatchResult(ctx.model.config_path, value, changed=changed)


def _prepare(ctx: Context, locked: LockResult, staged: Staged, plan: PlannedPatch,
             sbom_file: tuple[Path, bytes] | None,
             kept: bool = False) -> tuple[Commit, bool, bool]:
    """Every new file written beside its destination, listed in one ``Commit``; on any
    failure none is left."""
    commit = Commit(ctx.model.path)
    try:
        written = not locked.reused and needs_write(ctx.lock_path, locked.lock)
        if written:
            commit.add_bytes("lock", ctx.lock_path, locked.lock.render().encode("utf-8"), 0o644)
        dest = staged.archive.path
        if not kept:
            commit.add_staged(dest, staged.tmp, staged.archive.format == "dir")
        commit.add_bytes("record", record_path(dest), staged.archive.record(), 0o644)
        if sbom_file is not None:
            commit.add_bytes("sbom", sbom_file[0], sbom_file[1], 0o644)
        target = plan.target or ctx.model.config_path
        changed = plan.new != plan.original
        if changed:
            commit.add_bytes("config", target, plan.new, expect=plan.original)
        elif target.read_bytes() != plan.original:
            raise ConfigPatchError(f"{ctx.model.config_path} changed while tritonpack ran; left "
                                   "as it is now (nothing in the model directory was changed)",
                                   hint="run tritonpack again")
    except BaseException:
        commit.discard()
        raise
    return commit, written, changed

