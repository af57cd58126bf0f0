"""``tritonpack bench MODEL_OR_REPO``: verify each model and, in the same server, measure what
it costs to serve; then the totals, the advice and, when asked, the chart.

A repository is measured model by model (each in its own server, as ``--verify`` does), one
failure not stopping the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core.errors import TritonPackError
from .core.progress import NullReporter, Reporter
from .cost import chart
from .cost.advice import Totals, advice, totals
from .cost.levels import BenchOptions
from .cost.measure import ModelCost, measure
from .repository import python_models
from .scan.model import is_repository

if TYPE_CHECKING:
    from .settings import Options
    from .verify.stage import VerifyReport


@dataclass(frozen=True)
class Failed:
    name: str
    error: TritonPackError


@dataclass(frozen=True)
class BenchResult:
    target: Path
    repository: bool
    costs: tuple[ModelCost, ...]
    reports: tuple[VerifyReport, ...]
    failed: tuple[Failed, ...] = field(default=())
    chart: Path | None = None

    @property
    def totals(self) -> Totals:
        return totals(self.costs)

    @property
    def advice(self) -> list[str]:
        return advice(self.costs)

    @property
    def exit_code(self) -> int:
        return int(self.failed[0].error.exit_code) if self.failed else 0


def verify_and_measure(path: Path, opts: Options, rep: Reporter, options: BenchOptions,
                       verify_args: dict[str, Any]) -> VerifyReport:
    """verify (local runtime) with the measurement hooked in before the server stops."""
    from .verify.stage import verify

    return verify(path, opts, rep, **{**verify_args, "runtime": "local", "docker": None},
                  measure=lambda session: measure(session, options, rep))


def verify_with_bench(path: Path, opts: Options, reporter: Reporter | None,
                      options: BenchOptions, verify_args: dict[str, Any]) -> VerifyReport:
    """``tritonpack verify --bench``: one model, its cost in the report's ``measured``."""
    from .verify.extras import require

    rep = reporter or NullReporter()
    require("local")
    if options.chart is not None:
        chart.require()
    report = verify_and_measure(path, opts, rep, options, verify_args)
    if options.chart is not None:
        chart.write([report.measured], options.chart)
    return report


def bench(path: Path, opts: Options, reporter: Reporter | None, options: BenchOptions,
          verify_args: dict[str, Any]) -> BenchResult:
    """Measure the model at ``path``, or every Python model of the repository at ``path``."""
    from .verify.extras import require

    rep = reporter or NullReporter()
    require("local")
    if options.chart is not None:
        chart.require()
    reports: list[VerifyReport] = []
    failed: list[Failed] = []
    repository = is_repository(path)
    if not repository:
        reports.append(verify_and_measure(path, opts, rep, options, verify_args))
    else:
        models, _ = python_models(path)
        per_model = {**verify_args, "inputs": None, "expect": None}  # --inputs is one model's
        for model in models:
            try:
                reports.append(verify_and_measure(model, opts, rep, options, per_model))
            except TritonPackError as exc:
                failed.append(Failed(model.name, exc))
    costs = tuple(r.measured for r in reports)
    drawn = chart.write(costs, options.chart) if options.chart is not None and costs else None
    return BenchResult(path, repository, costs, tuple(reports), tuple(failed), drawn)
