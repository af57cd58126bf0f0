"""One model's serving cost, measured in the server verify started, after verify's own
inference proved it answers: idle memory, then each concurrency level under load (sampling
memory and /dev/shm throughout), then the start-up split, then the environment's size."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import deadlines
from ..core.errors import RuntimeMissingError
from ..core.progress import NullReporter, Reporter
from . import loop, perf, procs, startup
from .levels import BenchOptions, Level, Load

if TYPE_CHECKING:
    from ..verify.stage import Session

MIB = 1 << 20
SHM_MARGIN = 0.25  # on top of the measured peak: a larger request than verify's grows a region
DOCKER_SHM = 64 * MIB  # Docker's default /dev/shm


@dataclass(frozen=True)
class Memory:
    """One process: its RSS idle (after READY and one inference) and its peak under load."""

    pid: int
    ppid: int
    instance: str  # "" for the server
    exe: str
    idle: int
    load: int


@dataclass(frozen=True)
class Region:
    name: str
    instance: str
    idle: int
    peak: int


@dataclass(frozen=True)
class ModelCost:
    model: str
    kind: str
    inputs: str
    instances: int
    load: Load
    server: Memory
    stubs: tuple[Memory, ...]
    regions: tuple[Region, ...]
    startup: startup.Startup | None
    env_bytes: int
    notes: tuple[str, ...] = field(default=())

    @property
    def shm_peak(self) -> int:
        return sum(r.peak for r in self.regions)

    @property
    def shm_needed(self) -> int:
        """The /dev/shm a container needs for this model's instances: the peak plus the margin,
        in whole MiB."""
        return shm_with_margin(self.shm_peak)

    @property
    def stub_peak(self) -> int:
        return max((s.load for s in self.stubs), default=0)


def shm_with_margin(peak: int) -> int:
    return math.ceil(peak * (1 + SHM_MARGIN) / MIB) * MIB


def instance_count(config: dict[str, Any]) -> int:
    """How many instances the loaded config runs (count x devices per group; 1 by default)."""
    groups = config.get("instance_group") or [{}]
    return sum(int(g.get("count", 1) or 1) * max(1, len(g.get("gpus") or [])) for g in groups)


def _levels(session: Session, options: BenchOptions, rep: Reporter) -> Load:
    """perf_analyzer at each level, or the client loop for all of them when it cannot run."""
    plan, arrays = session.plan, session.arrays
    try:
        if options.tool == "loop":
            raise perf.Unusable("--load-tool loop")
        perf.check(plan)
        levels = []
        for c in options.concurrency:
            rep.start("bench", f"perf_analyzer, concurrency {c}")
            levels.append(perf.measure(plan, arrays, session.server.grpc_url, session.work, c,
                                       options.seconds))
        return Load("perf_analyzer", tuple(levels))
    except perf.Unusable as exc:
        if options.tool == "perf_analyzer":
            raise RuntimeMissingError(str(exc), hint="--load-tool auto falls back to "
                                      "tritonpack's client loop") from exc
        why = str(exc)
    rep.note(f"{why}: measured with tritonpack's client loop instead")
    fallback: list[Level] = []
    for c in options.concurrency:
        rep.start("bench", f"client loop, concurrency {c}")
        fallback.append(loop.measure(plan, arrays, session.server.grpc_url, c, options.seconds,
                                     session.timeout))
    return Load("client loop", tuple(fallback), why)


def _startup(session: Session, env: Path) -> tuple[startup.Startup | None, str]:
    """Load the do-nothing model on the model's environment, then split the log's times."""
    model = session.plan.name
    root = next((e.env for e in startup.events(session.server.log())
                 if e.kind == "stub" and e.model == model), "")
    if not root:
        return None, "the server log does not name the model's stub start: no start-up split"
    startup.write_null_model(session.repo, Path(root))
    try:
        session.client.load(startup.NULL_NAME)
    except Exception as exc:
        return None, f"the stub-start model did not load ({exc}): no start-up split"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the log is written line by line; the last may lag
        split = startup.split(session.server.log(), model, env)
        if split is not None:
            return split, ""
        time.sleep(0.1)
    return None, "the server log lacks the load lines: no start-up split"


def measure(session: Session, options: BenchOptions, reporter: Reporter | None = None) -> ModelCost:
    """The model's cost in ``session``'s server (the local runtime: its processes are read
    from /proc)."""
    rep = reporter or NullReporter()
    process = getattr(session.server, "process", None)
    if process is None:
        raise RuntimeMissingError("bench measures the local runtime's processes; this server "
                                  "runs elsewhere", hint="run it without --runtime docker")
    pid = int(process.pid)
    instances = instance_count(session.config)
    stubs = procs.wait_for_stubs(pid, session.plan.name, instances,
                                 time.monotonic() + deadlines.STUBS_FOUND)
    pids = [pid, *(s.pid for s in stubs)]
    regions = [s.region for s in stubs]
    idle = procs.Peaks()
    idle.take(pids, regions)
    with procs.Sampler(pids, regions) as sampler:
        load = _levels(session, options, rep)
    peaks = sampler.peaks
    rep.start("bench", "start-up split")
    split, note = _startup(session, session.env)
    root = Path(split.env_root) if split else session.env
    env_bytes = procs.disk_usage(root.resolve()) if root.is_dir() else 0
    server = Memory(pid, procs.parent(pid) or 0, "", procs.exe(pid), idle.rss.get(pid, 0),
                    peaks.rss.get(pid, 0))
    return ModelCost(
        model=session.plan.name, kind=session.plan.kind(), inputs=session.source,
        instances=instances, load=load, server=server,
        stubs=tuple(Memory(s.pid, s.ppid, s.instance, s.exe, idle.rss.get(s.pid, 0),
                           peaks.rss.get(s.pid, 0)) for s in stubs),
        regions=tuple(Region(s.region, s.instance, idle.shm.get(s.region, 0),
                             peaks.shm.get(s.region, 0)) for s in stubs),
        startup=split, env_bytes=env_bytes, notes=(note,) if note else ())

