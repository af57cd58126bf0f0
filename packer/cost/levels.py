"""What a bench measures (its options) and one concurrency level's figures, the same whichever
tool measured them. Light on imports: the CLI builds ``BenchOptions`` before any stage loads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CONCURRENCY = (1, 2, 4)


@dataclass(frozen=True)
class BenchOptions:
    """What ``tritonpack bench`` (and ``verify --bench``) measure."""

    concurrency: tuple[int, ...] = DEFAULT_CONCURRENCY
    seconds: float = 3.0  # per concurrency level
    chart: Path | None = None
    tool: str = "auto"  # auto | perf_analyzer (no fallback) | loop


@dataclass(frozen=True)
class Level:
    concurrency: int
    requests: int  # completed in the measurement
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput: float  # inferences per second


@dataclass(frozen=True)
class Load:
    """The levels, the tool that measured them, and why the fallback ran (if it did)."""

    tool: str  # "perf_analyzer" | "client loop"
    levels: tuple[Level, ...]
    why: str = ""  # the reason perf_analyzer was not used


def percentile(sorted_ms: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (perf_analyzer's definition) of ascending values."""
    if not sorted_ms:
        return 0.0
    rank = max(1, -(-len(sorted_ms) * pct // 100))  # ceil(n * pct / 100), at least 1
    return float(sorted_ms[int(rank) - 1])


def level_from(concurrency: int, latencies_ms: list[float], seconds: float,
               inferences: int) -> Level:
    ordered = sorted(latencies_ms)
    return Level(concurrency, len(ordered), percentile(ordered, 50), percentile(ordered, 90),
                 percentile(ordered, 99), inferences / seconds if seconds > 0 else 0.0)
