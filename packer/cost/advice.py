"""What the figures suggest changing, one line each, and the totals a deployment needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..core.progress import plural
from .measure import DOCKER_SHM, MIB, SHM_MARGIN, ModelCost, shm_with_margin

STUB_HEAVY = 200 * MIB  # a stub this large makes the instance count a memory decision
UNPACK_WORTH = 0.5  # seconds of unpacking worth a --format dir
UNPACK_SHARE = 0.25  # ... when it is at least this share of the start


@dataclass(frozen=True)
class Totals:
    """One server holding every measured model: one tritonserver (the largest measured) plus
    every stub at its peak; /dev/shm for every instance's peak plus the margin; the starts one
    after another (Triton unpacks archives one at a time)."""

    models: int
    instances: int
    memory: int
    shm_needed: int
    startup: float | None  # None when a model's start-up could not be split


def totals(costs: Sequence[ModelCost]) -> Totals:
    starts = [c.startup.ready for c in costs if c.startup is not None]
    return Totals(
        models=len(costs), instances=sum(c.instances for c in costs),
        memory=max((c.server.load for c in costs), default=0)
        + sum(s.load for c in costs for s in c.stubs),
        shm_needed=shm_with_margin(sum(c.shm_peak for c in costs)),
        startup=sum(starts) if len(starts) == len(costs) else None)


def shm_flag(size: int) -> str:
    """--shm-size's value for ``size`` bytes, in whole MiB ('96m')."""
    return f"{-(-size // MIB)}m"


def _gb(size: float) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def advice(costs: Sequence[ModelCost]) -> list[str]:
    """One line per change the figures suggest; none when nothing needs changing."""
    lines = []
    total = totals(costs)
    if total.shm_needed > DOCKER_SHM:
        lines.append(f"set --shm-size >= {shm_flag(total.shm_needed)} for "
                     f"{plural(total.instances, 'instance')} (Docker's default is 64m; the "
                     f"measured peak plus {SHM_MARGIN:.0%})")
    for c in costs:
        s = c.startup
        if s is not None and s.format == "archive" and s.unpack >= UNPACK_WORTH \
                and s.unpack >= UNPACK_SHARE * s.ready:
            # never less than the stub start and initialize() measured beside it (the parts
            # come from two loads; under load they need not add up to READY)
            without = max(s.ready - s.unpack, s.stub_start + s.initialize)
            lines.append(f"{c.model}: `--format dir` would start in {without:.1f} s "
                         f"instead of {s.ready:.1f} s")
        if c.stub_peak >= STUB_HEAVY:
            n = c.instances if c.instances > 1 else 4
            lines.append(f"{c.model}: this model's stub holds {c.stub_peak / 1e6:.0f} MB: "
                         f"{n} instances need {_gb(n * c.stub_peak)}")
    return lines
