"""Repository mode: a directory of model directories, as Triton's --model-repository sees it."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .context import prepare
from .core.diskfull import reclassify
from .core.errors import ModelError, TritonPackError
from .core.progress import NullReporter, Reporter
from .lock.stage import lock_inputs
from .pack.stage import PackOptions
from .pipeline import Guard, package
from .scan.model import CONFIG_NAME, MODEL_FILE, read_config
from .settings import Options


@dataclass(frozen=True)
class Skipped:
    name: str
    why: str  # "backend onnxruntime", "ensemble", ...


def python_models(repo: Path) -> tuple[list[Path], list[Skipped]]:
    """The Python-backend model dirs of a repository, and what is left alone (and why)."""
    if not repo.is_dir():
        raise ModelError(f"{repo}: no such directory")
    models: list[Path] = []
    skipped: list[Skipped] = []
    for entry in sorted(repo.iterdir()):
        config = entry / CONFIG_NAME
        if not entry.is_dir() or not os.path.lexists(config):
            continue
        if not config.is_file():  # a directory, FIFO or dangling link: a failure, not a skip
            models.append(entry)
            continue
        try:
            _, parsed = read_config(config)
        except TritonPackError:
            models.append(entry)  # not left alone: packing it fails, naming the parse error
            continue
        if parsed.platform == "ensemble":
            skipped.append(Skipped(entry.name, "ensemble (its steps are packed on their own)"))
        elif parsed.backend != "python" and not _served_by_python(entry, parsed):
            skipped.append(Skipped(entry.name, f"backend {parsed.backend or parsed.platform or '?'}"))
        else:
            models.append(entry)
    if not models and not skipped:
        raise ModelError(f"{repo}: no model directories (config.pbtxt) in it")
    return models, skipped


def _served_by_python(entry: Path, config: object) -> bool:
    """No backend nor platform, and model.py in a version dir: Triton's Python backend serves
    it (open_model says so in a note)."""
    if getattr(config, "backend", "") or getattr(config, "platform", ""):
        return False
    return any(p.name.isdigit() and (p / MODEL_FILE).is_file() for p in entry.iterdir())


@dataclass(frozen=True)
class Failure:
    name: str
    error: TritonPackError
    stage: str = "pack"  # or "verify": packed, then failed to load or answer


@dataclass
class RepoResult:
    """What packing a whole repository did, model by model."""

    repo: Path
    packed: list[object] = field(default_factory=list)  # PackResult, one per model
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    verified: list[object] = field(default_factory=list)  # VerifyReport
    warnings: list[str] = field(default_factory=list)

    @property
    def builds(self) -> int:
        return sum(1 for r in self.packed if not getattr(r, "cached", False))


def package_repository(repo: Path, opts: Options, reporter: Reporter | None = None, *,
                       pack_options: PackOptions | None = None, use_cache: bool = True,
                       frozen: bool = False, allow_incompatible: bool = False,
                       sbom: bool = False, shared_env: str | None = None,
                       guard: Guard | None = None) -> RepoResult:
    """Pack every Python model; models with identical locks share one build (the cache).

    One model after another: on two cores a build already keeps both busy (parallel gzip,
    uv's installer), and one failing model does not stop the others."""
    rep = reporter or NullReporter()
    models, skipped = python_models(repo)
    result = RepoResult(repo.resolve(), skipped=skipped)
    started = time.time()  # with --no-cache, builds made during this run are still shared
    if shared_env is not None:
        result.warnings.append(
            f"--shared-env {shared_env}: every model points at one environment; a model dir "
            "is no longer self-contained (a cloud model repository that copies one model "
            "dir misses it) and all models must keep the same lock")
        rep.note(result.warnings[-1])
        _same_lock_or_fail(models, opts)
    for model in models:
        rep.note(f"model {model.name}")
        try:
            result.packed.append(package(model, opts, rep, frozen=frozen,
                                         pack_options=pack_options, use_cache=use_cache,
                                         allow_incompatible=allow_incompatible, sbom=sbom,
                                         cache_since=started, output=shared_env,
                                         shared_root=repo if shared_env else None,
                                         guard=guard))
        except TritonPackError as exc:
            result.failed.append(Failure(model.name, reclassify(exc)))
    return result


def _same_lock_or_fail(models: list[Path], opts: Options) -> None:
    """A shared environment serves every model only if they all need exactly the same."""
    inputs = {m.name: lock_inputs(ctx := prepare(m, opts), ctx.options) for m in models}
    first = next(iter(inputs))
    differ = [name for name, value in inputs.items() if value != inputs[first]]
    if differ:
        raise ModelError(
            f"--shared-env needs one lock for all models, but {', '.join(differ)} "
            f"need{'s' if len(differ) == 1 else ''} something else than {first}",
            hint="declare the same requirements (tritonpack.toml) in every model, or give each "
            "model its own environment (the default)",
        )
