"""``lock --check``, ``scan`` and ``export`` over a whole model repository: the one-model stage
for each Python model, one failure not stopping the others. Release pipelines run them on a
fresh clone, where nothing but the committed files (locks, configs, sources) is there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .context import Context, prepare
from .core.errors import ExitCode, LockError, TritonPackError
from .core.progress import Reporter
from .lock.lockfile import requirements_txt
from .lock.pypi import Pin
from .lock.stage import CheckResult, exported
from .pipeline import check_lock
from .repository import Failure, python_models
from .settings import Options


@dataclass(frozen=True)
class LockChecks:
    """``lock --check REPO``: one result per Python model, and the models whose lock could
    not be judged (none, unreadable, a model that does not open)."""

    repo: Path
    results: tuple[CheckResult, ...]
    failed: tuple[Failure, ...] = ()

    @property
    def fresh(self) -> bool:
        return not self.failed and all(r.fresh for r in self.results)

    @property
    def exit_code(self) -> int:
        """1 for a stale, missing or unreadable lock; for a model that does not open (a broken
        config.pbtxt) that error's own code, 3, as ``check`` and ``scan`` give it."""
        unreadable = [f for f in self.failed if not isinstance(f.error, LockError)]
        if unreadable:
            return int(unreadable[0].error.exit_code)
        return 0 if self.fresh else int(ExitCode.CHECK_FAILED)


def check_locks(repo: Path, opts: Options, reporter: Reporter | None = None) -> LockChecks:
    results, failed = [], []
    for model in python_models(repo)[0]:
        try:
            results.append(check_lock(model, opts, reporter))
        except TritonPackError as exc:
            failed.append(Failure(model.name, exc, "lock"))
    return LockChecks(repo, tuple(results), tuple(failed))


@dataclass(frozen=True)
class Scans:
    """``scan REPO``: each Python model's scan, and the models that could not be scanned."""

    contexts: tuple[Context, ...]
    failed: tuple[Failure, ...]

    @property
    def exit_code(self) -> int:
        return int(self.failed[0].error.exit_code) if self.failed else 0


def scan_all(repo: Path, opts: Options, reporter: Reporter | None = None) -> Scans:
    contexts, failed = [], []
    for model in python_models(repo)[0]:
        try:
            contexts.append(prepare(model, opts, reporter))
        except TritonPackError as exc:
            failed.append(Failure(model.name, exc, "scan"))
    return Scans(tuple(contexts), tuple(failed))


@dataclass(frozen=True)
class Export:
    """``export REPO``: every model's PyPI pins in one requirements file (a pin shared by
    several models once, its hashes joined)."""

    pins: tuple[Pin, ...]
    models: tuple[str, ...]

    def requirements_txt(self) -> str:
        return requirements_txt(self.pins)


def export_all(repo: Path) -> Export:
    """One requirements file for the repository; two models pinning one package at two
    versions cannot share one, and are named."""
    chosen: dict[str, tuple[Pin, str]] = {}
    models = []
    for model in python_models(repo)[0]:
        lock = exported(model)
        models.append(model.name)
        for pin in lock.pypi:
            seen = chosen.get(pin.name)
            if seen is None:
                chosen[pin.name] = (pin, model.name)
            elif seen[0].version != pin.version:
                raise LockError(
                    f"{seen[1]} pins {seen[0].line()} and {model.name} pins {pin.line()}: one "
                    "requirements file cannot hold both",
                    hint=f"export one model at a time: tritonpack export {model}")
            else:
                hashes = tuple(dict.fromkeys([*seen[0].hashes, *pin.hashes]))
                chosen[pin.name] = (Pin(pin.name, pin.version, hashes, seen[0].sdist,
                                        seen[0].build_requires), seen[1])
    return Export(tuple(p for p, _ in sorted(chosen.values(), key=lambda v: v[0].name)),
                  tuple(models))
