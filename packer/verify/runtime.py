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

from ..core.debris import sweep

# Where Triton's Python backend unpacks environments and keeps its shared memory: fixed paths.
TRITON_TMP = Path("/tmp")  # noqa: S108
SHM = Path("/dev/shm")  # noqa: S108
_ENV_DIRS = re.compile(r"(/tmp/python_env_[A-Za-z0-9_]+)")
WORK_PREFIX = "tritonpack-verify-"  # a verify's work dir in the temp dir (its pid follows)
LOCAL_LOG = "triton.log"  # the local server's --log-file, in the verify's work dir
_SHM = re.compile(r"(triton_python_backend_shm_region_[A-Za-z0-9_\-]+)")
# A log line's time (UTC, no year): "I1204 17:18:10.601021 12500 python_be.cc:2104] ..."
_STAMP = re.compile(r"^[IWEV](\d{4} \d\d:\d\d:\d\d\.\d{6}) \d+ ")
# The Python backend makes its env dir (mkdtemp /tmp/python_env_XXXXXX) right after this line,
# when it initializes, and names the dir in its log only if it extracts an archive there.
_BACKEND_INIT = '"Shared memory configuration is'
_EXTRACTING = '"Extracting Python execution env '
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
    env dir it made without naming it: empty (a directory env: nothing was extracted), or
    holding only its first extraction (``0``) when the server was killed while extracting.
    Other jobs on the machine run their own servers: an unnamed dir is this server's only if
    it was made, or got its ``0``, at the moment the log says so."""
    mapped = _mapped_env_dirs()
    for path in set(_ENV_DIRS.findall(log)) - mapped:
        shutil.rmtree(path, ignore_errors=True)
    for name in set(_SHM.findall(log)):
        (SHM / name).unlink(missing_ok=True)
    window = _backend_init_window(log)
    for path in _env_dirs_changed_in(*window, entries=[]) if window else ():
        with contextlib.suppress(OSError):  # gone, or no longer empty: not ours to take
            path.rmdir()
    window = _first_extraction_window(log)
    for path in _env_dirs_changed_in(*window, entries=["0"]) if window else ():
        if str(path) not in mapped:
            shutil.rmtree(path, ignore_errors=True)


def _mapped_env_dirs() -> set[str]:
    """The /tmp/python_env_* dirs a live process maps a file of (a stub's libpython): a
    server's env in use, never the dead server's to remove. Another job's server that began
    extracting within the killed one's window (its dir holding only ``0`` by then) was taken
    for the killed one's and removed under its running stub; a log line naming a dir (a
    model's own logging) is no proof either. Processes this user may not read are skipped."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as maps:
                    found.update(_ENV_DIRS.findall(maps.read()))
            except OSError:  # gone, or not ours to read
                continue
    return found


def sweep_killed(tmp: Path) -> None:
    """Remove the work dirs of verifies that were killed (SIGKILL ran no cleanup), and first
    what each one's local server left in /tmp and /dev/shm: the watchdog that killed the
    server had no log to read; the server's log, in the work dir, names what it made."""
    sweep(tmp, [WORK_PREFIX], before=_cleanup_after_killed)


def _cleanup_after_killed(work: Path) -> None:
    """Only a work dir and log this user made are read: a log planted in /tmp under a dead
    pid's name by someone else never names what this run removes."""
    log = work / LOCAL_LOG
    try:
        owners = {work.lstat().st_uid, log.lstat().st_uid}
    except OSError:
        return
    if owners == {os.getuid()} and log.is_file() and not log.is_symlink() \
            and not work.is_symlink():
        cleanup_from_log(log.read_text(encoding="utf-8", errors="replace"))


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


def _first_extraction_window(log: str) -> tuple[datetime, datetime] | None:
    """When the env dir got its first extraction's dir (``0``): the mkdir right after the
    first "Extracting Python execution env" line (pb_env.cc); the dir is named in the log
    only once the extraction is done."""
    for line in log.splitlines():
        if _EXTRACTING in line and (when := _stamp(line)) is not None:
            return when - _CLOCK_SLACK, when + _CLOCK_SLACK
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


def _env_dirs_changed_in(start: datetime, end: datetime, entries: list[str]) -> list[Path]:
    """The /tmp/python_env_* dirs holding exactly ``entries`` whose inode changed last within
    [start, end]: a dir's ctime is when it was made or an entry was last added or removed."""
    found = []
    for path in TRITON_TMP.glob("python_env_*"):
        try:
            made = datetime.fromtimestamp(path.lstat().st_ctime, UTC)
            held = path.is_dir() and not path.is_symlink() and sorted(os.listdir(path))
        except OSError:
            continue
        if held == entries and start <= made <= end:
            found.append(path)
    return found
