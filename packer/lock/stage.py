"""The lock stage: resolve the PyPI requirements (uv or pip-tools), solve the conda part
(py-rattler) and write ``tritonpack.lock``; or tell whether the lock on disk is still fresh.

It starts from a ``packer.context.Context``; ``packer.pipeline`` opens the model, takes the
model's run lock and calls ``write`` or ``check``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..core.atomic import ensure_writable
from ..core.errors import LockError, ModelError, ResolveError, UsageError
from ..core.fsguard import writable_file
from ..core.outputs import output_errors
from ..core.progress import NullReporter, Reporter, plural
from ..core.redact import strip
from ..core.signals import LOCK_OUTPUT, committed, signals_held
from ..resolve.requirements import guess_note, resolve, toml_key
from ..resolve.target import torch_index
from ..scan.declared import Declared
from ..scan.model import CONFIG_NAME, require_dir
from . import conda, pychannel
from .backend import Prefer
from .lockfile import LOCK_NAME, Lockfile, changes, read_lock, write_lock
from .pypi import (
    DEFAULT_INDEX,
    RESOLVERS,
    Indexes,
    IndexUnreachable,
    NoSolutionError,
    compile_pins,
    passed_over,
    wheel_of_version,
)

if TYPE_CHECKING:  # the stages before: a Context is made by packer.context
    from ..context import Context
    from ..settings import Options


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
        "channels": [strip(c) for c in opts.channels],  # no credentials in a lock
        **({"declared_channels": [strip(c) for c in declared_channels(ctx.declared)]}
           if declared_channels(ctx.declared) else {}),
        "indexes": lock_indexes(ctx, opts).as_dict(),
        **({"src": src_inputs(ctx.model.path, opts.src)} if opts.src else {}),
        **({"index_options": index_options(opts)} if index_options(opts) else {}),
        **({"pack_options": pack_options(opts)} if pack_options(opts) else {}),
        **({"learned": ctx.requirements.learned.as_dict()} if ctx.requirements.learned else {}),
    }


def pack_options(opts: Options) -> dict[str, bool]:
    """How the environment is packed, where it is not the default: the lock remembers it
    (``check`` then sees a change) and the next pack of the lock does it again."""
    return {**({"strip": True} if opts.strip else {}),
            **({"zip_packages": False} if not opts.zip_packages else {})}


def index_options(opts: Options) -> dict[str, Any]:
    """The index settings the user chose (command line or [options]), remembered by the lock
    apart from the indexes that requirements files and the PyPI torch rule add."""
    ours = opts.indexes
    out: dict[str, Any] = {}
    if ours.index_url != DEFAULT_INDEX:
        out["index-url"] = strip(ours.index_url)
    if ours.extra_index_urls:
        out["extra-index-url"] = [strip(u) for u in ours.extra_index_urls]
    if ours.find_links:
        out["find-links"] = [strip(u) for u in ours.find_links]
    return out


def src_inputs(model_dir: Path, src: tuple[Path, ...]) -> list[str]:
    """--src roots as the lock remembers them: relative to the model dir, so that a later run
    or check without --src (another machine, another checkout path) bundles the same code."""
    return [Path(os.path.relpath(root.resolve(), model_dir.resolve())).as_posix() for root in src]


def _one_spelling(inputs: dict[str, Any]) -> dict[str, Any]:
    """Distribution names compared as PEP 503 does (PyYAML and pyyaml are one distribution):
    a lock made when a name was spelt otherwise is not stale for that alone."""
    out = dict(inputs)
    imports = out.get("imports")
    if isinstance(imports, list):
        out["imports"] = sorted(
            f"{k}={canonicalize_name(v)}" if isinstance(x, str) and "=" in x else x
            for x in imports for k, _, v in [str(x).partition("=")])
    reqs = out.get("requirements")
    if isinstance(reqs, list):
        out["requirements"] = sorted(_canonical_line(x) for x in reqs)
    return out


def _canonical_line(line: object) -> object:
    if not isinstance(line, str):
        return line
    try:
        req = Requirement(line)
    except InvalidRequirement:
        return line
    req.name = canonicalize_name(req.name)
    return str(req)


def stale(ctx: Context, lock: Lockfile) -> list[str]:
    """What changed since ``lock`` was made (empty: the lock is fresh)."""
    want = lock_inputs(ctx, ctx.options)
    fell = lock.inputs.get("torch_index_unreachable")
    if fell and fell in want["indexes"]["extra_index_urls"]:  # locked without the PyTorch index
        want["indexes"] = {**want["indexes"], "extra_index_urls": [
            u for u in want["indexes"]["extra_index_urls"] if u != fell]}
        want["torch_index_unreachable"] = fell
    diff = changes(_one_spelling(lock.inputs), _one_spelling(want))
    old = next((p.file_name for p in lock.conda if p.url.startswith(conda.LOCAL_PYTHON)
                and not p.file_name.endswith(f"-{pychannel.BUILD}.conda")), None)
    if old is not None:  # made by an older tritonpack: made again
        diff.append(f"the local Python package {old} is of an older format "
                    f"({pychannel.BUILD} now)")
    return diff


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
    rep.note(local_python_warning(install.version))
    return [channel, *opts.channels]


def local_python_warning(version: str) -> str:
    """What a lock whose Python is this machine's (no conda channel) costs: said at lock time,
    not found out on a CI runner or in an image build stage."""
    return (f"warning: this lock's Python is the local CPython {version}, not a conda "
            f"channel's: it builds only where CPython {version} is installed (pyenv, or "
            "--python-from PREFIX), not on a runner or build stage without it; lock where "
            "conda-forge is reachable to build anywhere")


def declared_channels(declared: Declared) -> tuple[str, ...]:
    """environment.yml's channels (names or URLs, as ``--channel`` takes them); ``defaults``
    (Anaconda's own repository, under its own terms) is left out."""
    return tuple(c for c in declared.channels if c != "defaults")


def _did_you_mean(key: str, ctx: Context) -> str:
    """A known top-level module spelt nearly like ``key`` (nmupy: numpy), as a question."""
    import difflib

    known = {k.split(".")[0] for k in (*ctx.recipes.imports, *ctx.recipes.table.providers)}
    close = difflib.get_close_matches(key, sorted(known - {key}), n=1, cutoff=0.8)
    return f": did you mean {close[0]!r}?" if close else ""


def _missing_error(exc: NoSolutionError, ctx: Context) -> ResolveError:
    for name in exc.missing:
        rows = ctx.requirements.rows_for(name)
        if rows:
            row = rows[0]
            guessed = " (guessed from its name)" if row.source == "guess" else ""
            return ResolveError(
                f"import {row.key!r} ({row.locations[0]}) needs distribution {name!r}"
                f"{guessed}, which the package index does not have"
                + _did_you_mean(row.key, ctx),
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
    next_step: str = ""  # what to run once the lock is written: the env is packed from it


def _pickled_versions(ctx: Context, opts: Options, rep: Reporter) -> Context:
    """A version a pickle records is locked when it installs for the target (a wheel for its
    Python and platform); else the lock learns so (``learned.unavailable``) and takes the
    newest, with one sentence."""
    recorded = {str(canonicalize_name(d)): (v, f) for d, v, f in ctx.report.pickled}
    gone: list[tuple[str, str, str]] = []
    for line in ctx.requirements.pypi:
        req = Requirement(line)
        name = str(canonicalize_name(req.name))
        if name not in recorded or str(req.specifier) != f"=={recorded[name][0]}":
            continue
        version, shown = recorded[name]
        if wheel_of_version(name, version, lock_indexes(ctx, opts), ctx.target.pypi_platform,
                            ctx.target.python) is False:
            gone.append((name, version, shown))
    if not gone:
        return ctx
    learned = ctx.requirements.learned
    for pin, version, _ in gone:
        learned = learned.with_unavailable(f"{pin}=={version}")
    reqs = resolve(ctx.report, ctx.declared, ctx.recipes, ctx.target, learned)
    for pin, version, shown in gone:
        rep.note(f"{shown} was pickled with {pin} {version}, which has no wheel for Python "
                 f"{ctx.target.python} on {ctx.target.platform}: locking a newer {pin} (it may "
                 "warn when the pickle is loaded, or fail)")
    return dataclasses.replace(ctx, requirements=reqs)


def make_lock(ctx: Context, opts: Options, reporter: Reporter | None = None,
              prefer: Prefer = None) -> Lockfile:
    rep = reporter or NullReporter()
    RESOLVERS[opts.resolver]()  # a resolver that is not installed is refused before any work
    ctx = _pickled_versions(ctx, opts, rep)
    sources = _channel_sources(ctx, opts, rep)
    channels = [c.as_uri() if isinstance(c, Path) else c for c in sources]
    local = [c for c in sources if isinstance(c, Path)]
    t0 = time.monotonic()
    rep.start("resolve", f"resolving {plural(len(ctx.requirements.pypi), 'requirement')} with "
                             f"{opts.resolver}")
    fallback: Indexes | None = None
    try:
        pins = compile_pins(opts.resolver, ctx.requirements.pypi, ctx.target,
                            lock_indexes(ctx, opts), _python_source(opts), prefer)
    except NoSolutionError as exc:
        raise _missing_error(exc, ctx) from exc
    except IndexUnreachable as exc:
        fallback = torch_fallback(ctx, opts, exc, rep)
        try:
            pins = compile_pins(opts.resolver, ctx.requirements.pypi, ctx.target, fallback,
                                _python_source(opts), prefer)
        except NoSolutionError as again:
            raise _missing_error(again, ctx) from again
    for guess in ctx.requirements.guesses:  # said once, now that the index was asked
        rep.note(guess_note(guess, found=True))
    for note in passed_over(pins, fallback or lock_indexes(ctx, opts)):
        rep.note(note)
    rep.done("resolve", f"{plural(len(pins), 'PyPI package')} ({opts.resolver})",
             time.monotonic() - t0)
    for pin in (p for p in pins if p.sdist):  # no wheel published: built once, cached
        tools = ", ".join(b.split(" ", 1)[0] for b in pin.build_requires)  # pinned, hashed
        rep.note(f"{pin.name}=={pin.version} has no wheel: built from source ({pin.sdist})"
                 + (f" with {tools}" if tools else ""))
    t0 = time.monotonic()
    rep.start("solve", f"solving python {ctx.target.python}.* on {', '.join(channels)}")
    packages = conda.solve(ctx.target, channels, ctx.requirements.conda,
                           pip=not any(canonicalize_name(p.name) == "pip" for p in pins))
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


def _upgrading(ctx: Context, names: tuple[str, ...]) -> Prefer:
    """``lock --upgrade-package NAME``: the lock's PyPI pins, kept as the resolver's
    preferences, and the names it may move; a name the lock does not hold is refused."""
    if not names:
        return None
    if not ctx.lock_path.is_file():
        raise UsageError(f"--upgrade-package: {ctx.model.name} has no {ctx.lock_path.name} to "
                         "keep pinned", hint=f"lock it first: tritonpack lock {ctx.model.path}")
    old = read_lock(ctx.lock_path)
    held = {canonicalize_name(p.name): p for p in old.pypi}
    for name in names:
        if canonicalize_name(name) not in held:
            raise UsageError(f"--upgrade-package {name}: {ctx.lock_path} has no PyPI package "
                             f"of that name (it holds {', '.join(sorted(held)) or 'none'})")
    return (tuple(f"{p.name}=={p.version}" for p in old.pypi), tuple(names))


def write(ctx: Context, opts: Options, rep: Reporter, upgrade: bool = False,
          packages: tuple[str, ...] = ()) -> LockResult:
    """Reuse the lock when fresh (unless ``upgrade``), else resolve and write it; with
    ``packages``, re-resolve keeping every other PyPI pin where it is."""
    writable_file(ctx.lock_path, LockError, "lock file")
    with output_errors(ctx.lock_path, LockError):  # before resolving, not after
        ensure_writable(ctx.lock_path.parent)
    prefer = _upgrading(ctx, packages)
    if prefer is not None:
        new = make_lock(ctx, opts, rep, prefer)
        before = {canonicalize_name(line.split("==")[0]): line.split("==")[1]
                  for line in prefer[0]}
        for pin in new.pypi:
            was = before.get(canonicalize_name(pin.name))
            if was != pin.version:
                rep.note(f"{pin.name} {was or '(new)'} -> {pin.version}")
    elif not upgrade:
        found = fresh_or_new(ctx, opts, rep)
        if found.reused:
            return found
        new = found.lock
    else:
        new = make_lock(ctx, opts, rep)
    with signals_held(), output_errors(ctx.lock_path, LockError):
        written = write_lock(ctx.lock_path, new)
        if written:
            committed(ctx.model.path, LOCK_OUTPUT)
    rep.done("lock", f"{'wrote' if written else 'unchanged'} {ctx.lock_path.name}", 0.0)
    return LockResult(new, ctx.lock_path, written=written, reused=False, context=ctx)


@dataclass(frozen=True)
class CheckResult:
    path: Path
    fresh: bool
    problems: tuple[str, ...]


def check(ctx: Context) -> CheckResult:
    """Is the lock fresh for the model as it is now? No network, no build."""
    diff = stale(ctx, read_lock(ctx.lock_path))
    return CheckResult(ctx.lock_path, not diff, tuple(diff))


def frozen(ctx: Context, opts: Options) -> LockResult:
    """``--frozen``: use the lock as it is; refuse when missing or stale."""
    existing = read_lock(ctx.lock_path)
    diff = stale(ctx, existing)
    if diff:
        raise LockError(
            f"{ctx.lock_path.name} is stale (--frozen): " + "; ".join(diff),
            hint="run tritonpack lock and commit the new lock",
        )
    return LockResult(existing, ctx.lock_path, written=False, reused=True, context=ctx)


def fresh_or_new(ctx: Context, opts: Options, rep: Reporter) -> LockResult:
    """The existing lock when fresh, else a new one (not written yet)."""
    if ctx.lock_path.is_file():
        existing = read_lock(ctx.lock_path)  # a corrupt lock is refused, never silently replaced
        if not stale(ctx, existing):
            rep.done("lock", f"{LOCK_NAME} is fresh", 0.0)
            return LockResult(existing, ctx.lock_path, written=False, reused=True, context=ctx)
    return LockResult(make_lock(ctx, opts, rep), ctx.lock_path, written=False, reused=False,
                      context=ctx)


def exported(path: Path) -> Lockfile:
    """The lock of the model at ``path``, for ``tritonpack export``: a directory that is no
    model is named as such, not as one whose lock is missing."""
    require_dir(path)
    if not os.path.lexists(path / CONFIG_NAME):
        raise ModelError(f"{path.resolve()}: no {CONFIG_NAME}",
                         hint="a Triton model directory holds config.pbtxt and numeric version "
                         "dirs (1/model.py)")
    return read_lock(path / LOCK_NAME)
