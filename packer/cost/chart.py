"""The chart: latency (p50, p99) and throughput against concurrency, one line per model, as a
PNG through matplotlib (the ``bench`` extra), drawn on a Figure of its own (no pyplot state)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from ..core.atomic import atomic_write_bytes
from ..core.errors import RuntimeMissingError
from ..core.version import install_hint
from .measure import ModelCost


def require() -> None:
    """Refuse --chart before any server starts when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise RuntimeMissingError("--chart needs matplotlib, which is not installed",
                                  hint=install_hint("bench")) from exc


def write(costs: Sequence[ModelCost], path: Path) -> Path:
    """Draw ``costs`` into ``path`` (written atomically)."""
    require()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    latency, throughput = fig.subplots(1, 2)
    for cost in costs:
        xs = [lv.concurrency for lv in cost.load.levels]
        line = latency.plot(xs, [lv.p50_ms for lv in cost.load.levels], marker="o",
                            label=f"{cost.model} p50")[0]
        latency.plot(xs, [lv.p99_ms for lv in cost.load.levels], marker="x", linestyle="--",
                     color=line.get_color(), label=f"{cost.model} p99")
        throughput.plot(xs, [lv.throughput for lv in cost.load.levels], marker="o",
                        color=line.get_color(), label=cost.model)
    tools = sorted({c.load.tool for c in costs})
    ticks = sorted({lv.concurrency for c in costs for lv in c.load.levels})
    for ax, title, unit in ((latency, "latency", "ms"), (throughput, "throughput", "inferences/s")):
        ax.set_title(f"{title} ({', '.join(tools)})")
        ax.set_xlabel("concurrency")
        ax.set_ylabel(unit)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())
    return path
