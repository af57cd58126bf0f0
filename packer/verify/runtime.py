"""Verification runtimes behind one small interface: where a tritonserver runs."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

# Where Triton's Python backend unpacks environments and keeps its shared memory: fixed paths.
TRITON_TMP = Path("/tmp")  # noqa: S108
SHM = Path("/dev/shm")  # noqa: S108
_ENV_DIRS = re.compile(r"(/tmp/python_env_[A-Za-z0-9_]+)")
_SHM = re.compile(r"(triton_python_backend_shm_region_[A-Za-z0-9_\-]+)")
# A log line's time (UTC, no year): "I1204 17:18:10.601021 12500 python_be.cc:2104] ..."
_STAMP = re.compile(r"^[IWEV](\d{4} \d\d:\d\d:\d\d\.\d{6}) \d+ ")
# The Python backend makes its env dir (mkdtemp /tmp/python_env_XXXXXX) right after this line,
# when it initializes, and names the dir in its log only if it extracts an archive there.
_BACKEND_INIT = '"Shared memory configuration is'
# ctime comes from the kernel's coarse clock (a tick behind at most), the log's from
# gettimeofday: the window is widened by this much on each side.
_CLOCK_SLACK = timedelta(milliseconds=50)


class Server(Protocol):
    """A running tritonserver, reachable on loopback."""

    url: str
    grpc_url: str  # host:port of its gRPC endpoint (decoupled models, binary tensors)

    def alive(self) -> bool: ...

    def log(self) -> str: ...

    def stop(self) -> None: ...


class Runtime(Protocol):
    name: str
    release: str  # the Triton release the runtime's server is

    def start(self, repo: Path, python: str, work: Path, *, complete_config: bool) -> Server:
        """Start a server over ``repo`` (explicit model control) with the stub for ``python``."""
        ...


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cleanup_from_log(log: str) -> None:
    """Remove the extracted envs and shm regions a (killed) server named in its log, and the
    empty env dir it made without naming it (a directory env: nothing was extracted). Other
    jobs on the machine run their own servers: an unnamed dir is this server's only if it was
    made while the log says its Python backend initialized."""
    for path in set(_ENV_DIRS.findall(log)):
        shutil.rmtree(path, ignore_errors=True)
    for name in set(_SHM.findall(log)):
        (SHM / name).unlink(missing_ok=True)
    window = _backend_init_window(log)
    for path in _empty_env_dirs_made_in(*window) if window else ():
        with contextlib.suppress(OSError):  # gone, or no longer empty: not ours to take
            path.rmdir()


def _backend_init_window(log: str) -> tuple[datetime, datetime] | None:
    """When the Python backend made its env dir: between the line that precedes the mkdtemp
    and the next stamped line (the line's own time if the log ends there)."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if _BACKEND_INIT in line and (start := _stamp(line)) is not None:
            later = (_stamp(rest) for rest in lines[i + 1:])
            end = next((t for t in later if t is not None), start)
            return start - _CLOCK_SLACK, end + _CLOCK_SLACK
    return None


def _stamp(line: str) -> datetime | None:
    """A log line's time. Triton writes no year: this one, or last year's for a date ahead."""
    match = _STAMP.match(line)
    if match is None:
        return None
    now = datetime.now(UTC)
    for year in (now.year, now.year - 1):
        try:
            when = datetime.strptime(f"{year}{match[1]}", "%Y%m%d %H:%M:%S.%f")
        except ValueError:  # 29 February of a year without one
            continue
        if when.replace(tzinfo=UTC) <= now + timedelta(days=1):
            return when.replace(tzinfo=UTC)
    return None


def _empty_env_dirs_made_in(start: datetime, end: datetime) -> list[Path]:
    """Empty /tmp/python_env_* dirs whose inode changed last within [start, end]: an empty dir's
    ctime is when it was made (an entry added or removed would change it)."""
    found = []
    for path in TRITON_TMP.glob("python_env_*"):
        try:
            made = datetime.fromtimestamp(path.lstat().st_ctime, UTC)
            empty = path.is_dir() and not path.is_symlink() and not os.listdir(path)
        except OSError:
            continue
        if empty and start <= made <= end:
            found.append(path)
    return found
