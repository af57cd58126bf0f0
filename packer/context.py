"""Open a model and understand it: the scan (AST only) and the resolve stage, with the
effective settings. Every later stage starts from the ``Context`` this returns; ``tritonpack
scan`` needs nothing more, so this module imports no stage after resolve."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .core.errors import TargetError
from .core.progress import NullReporter, Reporter, plural
from .lock.lockfile import LOCK_NAME
from .resolve import forgotten, learned
from .resolve.recipebook import Recipes, load
from .resolve.requirements import Requirements, resolve
from .resolve.target import Target, resolve_target
from .scan.declared import Declared, load_all
from .scan.imports import ImportReport, scan
from .scan.model import ModelDir, open_model
from .settings import Options, effective


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
    target_from: str = "default"  # where the release came from: command line, a file, default

    @property
    def lock_path(self) -> Path:
        return self.model.path / LOCK_NAME

    @property
    def warnings(self) -> tuple[str, ...]:
        return (*self.model.warnings(), *self.model.notes, *self.report.notes,
                *self.requirements.warnings)


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


TARGET_FROM = {"command line": "from --triton", "tritonpack.toml": "from tritonpack.toml",
               LOCK_NAME: f"from {LOCK_NAME}",
               "default": "the newest known release, by default (pin one with --triton)"}


def target_line(target: Target, origin: str) -> str:
    """What a run targets and where that came from: the first line of every command, so a
    release chosen by default is never a surprise found at the end."""
    return (f"Triton {target.release} (Python {target.python}, {target.platform}): "
            f"{TARGET_FROM.get(origin, origin)}")


def prepare(path: Path, opts: Options, reporter: Reporter | None = None, *,
            refuse: Callable[[ModelDir, Target], None] | None = None) -> Context:
    """Open the model, pick the target, scan (AST only) and map imports to distributions.

    ``refuse`` may reject the model dir for its target (``--verify``: a directory Triton would
    not load it from) as soon as both are known, with config.pbtxt's other checks: before the
    scan, and before any index is asked or anything is locked."""
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
    rep.done("target", target_line(target, sources["triton"]), 0.0)
    if refuse is not None:
        refuse(model, target)
    report = scan(model.path, model.version_dir, model.model_py, python=target.python,
                  stdlib=recipes.stdlib[target.python], src=opts.src)
    declared = load_all(model.path, model.version_dir, recipes.conda_to_pypi)
    reqs = resolve(report, declared, recipes, target, learned.from_lock(model.path / LOCK_NAME))
    forgotten.check(model.path, reqs)  # a package of the user's, left out: before any lock
    ctx = Context(model, recipes, target, declared, report, reqs, opts, sources["triton"])
    for warning in ctx.warnings:
        rep.note(warning)
    rep.done("scan", f"{plural(len(report.files), 'file')}, "
             f"{plural(len(reqs.pypi), 'requirement')}",
             time.monotonic() - t0)
    return ctx
