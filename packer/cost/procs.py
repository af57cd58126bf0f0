"""The server's own processes, read from /proc: its Python-backend stubs (one per model
instance, each a child of the server) with their RSS, and the /dev/shm region each one uses.

A stub's argv names everything needed to attribute it: the model.py it runs (so the model),
the shm region it talks through, and its instance name. Only this server's children are read,
so another server on the machine (another test, another user) never counts.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

PROC = Path("/proc")
SHM = Path("/dev/shm")  # noqa: S108  the Python backend's fixed place
STUB_NAME = "triton_python_backend_stub"
REGION_PREFIX = "triton_python_backend_shm_region_"


@dataclass(frozen=True)
class Stub:
    """One model instance's stub process."""

    pid: int
    ppid: int
    model: str
    instance: str
    region: str  # the /dev/shm name it shares with the server
    exe: str  # what /proc/PID/exe pointed at when it was found


def parent(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # after the command name, which may hold ')'


def _stub(pid: int, ppid: int) -> Stub | None:
    """The stub ``pid`` as its argv describes it: stub, model.py, region, default size,
    growth, server pid, backend dir, ipc handle, instance name, runtime kind."""
    try:
        argv = [a.decode(errors="replace")
                for a in (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")]
        exe = os.readlink(PROC / str(pid) / "exe")
    except OSError:
        return None
    if len(argv) < 9 or Path(argv[0]).name != STUB_NAME or not argv[2].startswith(REGION_PREFIX):
        return None
    model = Path(argv[1]).parent.parent.name  # <repo>/<model>/<version>/model.py
    return Stub(pid, ppid, model, argv[8], argv[2], exe)


def stubs_of(server_pid: int) -> list[Stub]:
    """Every Python-backend stub that is a child of ``server_pid``, by instance name."""
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and parent(int(entry.name)) == server_pid:
            stub = _stub(int(entry.name), server_pid)
            if stub is not None:
                found.append(stub)
    return sorted(found, key=lambda s: (s.model, s.instance))


def exe(pid: int) -> str:
    """What /proc/PID/exe points at ("" if it cannot be read)."""
    try:
        return os.readlink(PROC / str(pid) / "exe")
    except OSError:
        return ""


def rss(pid: int) -> int | None:
    """Resident set size in bytes (VmRSS), or None if the process is gone."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def shm_size(region: str) -> int | None:
    """The size of a shm region (what it was grown to; tmpfs holds it in memory)."""
    try:
        return (SHM / region).stat().st_size
    except OSError:
        return None


@dataclass
class Peaks:
    """The largest value seen of each PID's RSS and each region's size, and whether a region
    was ever seen at all."""

    rss: dict[int, int] = field(default_factory=dict)
    shm: dict[str, int] = field(default_factory=dict)
    samples: int = 0

    def take(self, pids: list[int], regions: list[str]) -> None:
        for pid in pids:
            value = rss(pid)
            if value is not None:
                self.rss[pid] = max(value, self.rss.get(pid, 0))
        for region in regions:
            size = shm_size(region)
            if size is not None:
                self.shm[region] = max(size, self.shm.get(region, 0))
        self.samples += 1


class Sampler:
    """Samples ``pids`` and ``regions`` every ``period`` seconds on a thread while in a
    ``with`` block: the peaks under load, which a single reading after the load would miss."""

    def __init__(self, pids: list[int], regions: list[str], period: float = 0.1):
        self.pids = pids
        self.regions = regions
        self.period = period
        self.peaks = Peaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tritonpack-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peaks.take(self.pids, self.regions)
            self._stop.wait(self.period)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peaks.take(self.pids, self.regions)  # the last state too


def disk_usage(root: Path) -> int:
    """Bytes ``root`` takes on disk (allocated blocks; a hard-linked file counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total


def wait_for_stubs(server_pid: int, model: str, count: int, deadline: float) -> list[Stub]:
    """The model's stubs, waiting (bounded) until ``count`` of them are up."""
    while True:
        stubs = [s for s in stubs_of(server_pid) if s.model == model]
        if len(stubs) >= count or time.monotonic() >= deadline:
            return stubs
        time.sleep(0.05)
