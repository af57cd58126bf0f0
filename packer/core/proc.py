"""The one door to the outside: every external command tritonpack runs goes through here.

List argv, never a shell; the environment is explicit; output is captured and
attached to the error so ``--verbose`` can show it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .deadlines import WATCHDOG_EXIT
from .errors import ProcessError, ProcessTimeout
from .signals import on_interrupt

log = logging.getLogger("tritonpack.proc")

# Settings of pip, uv and conda that change what a resolver or installer answers.
_LEAKY_PREFIXES = ("PIP_", "UV_", "CONDA_", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")


# The terminal's size: a command's output goes to a file, never to the user's terminal, and
# some of it is parsed (uv wraps its resolver's reasons to COLUMNS, hyphenated names too).
_TERMINAL = ("COLUMNS", "LINES")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without pip/uv/conda settings and the terminal's size, plus
    ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_LEAKY_PREFIXES) and k not in _TERMINAL}
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_CONFIG_FILE"] = os.devnull  # pip reads no site or user config
    env["UV_NO_CONFIG"] = "1"
    if extra:
        env.update(extra)
    return env


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float,
) -> str:
    """Run ``argv`` (its deadline: a name in ``packer.core.deadlines``), return its combined
    output; raise ProcessError on failure, ProcessTimeout past the deadline. Contained as
    ``run_contained`` is: a build backend or a resolver runs code of the packages it reads."""
    return run_contained(argv, env=env if env is not None else clean_env(), cwd=cwd,
                         timeout=timeout, tail=RUN_TAIL)


RUN_TAIL = 16 << 20
"""The last bytes of a command's output kept (a setup.py printing gigabytes floods no memory;
what tritonpack reads from an output is at its end: an error, a report line)."""


def run_contained(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float,
    tail: int | None = 1 << 16,
) -> str:
    """Run ``argv`` for code tritonpack does not trust to behave (a setup.py, packages
    imported to check them): in its own session, its output in a file (the last ``tail``
    bytes are returned; None: all). Done when it exits, not when its output closes: its
    process group is killed then, and so is any process that left the group (``setsid``, a
    daemon's double fork) but still carries this run's mark in its environment, and such a
    daemon is killed as soon as it is seen (``_wait``); past ``timeout`` all of them are
    killed and ProcessTimeout raised. No output floods memory,
    no pipe held open by a daemon hangs tritonpack, nothing it started outlives it."""
    import tempfile

    args = [os.fspath(a) for a in argv]
    log.debug("$ %s", " ".join(args))
    mark = new_mark()
    with tempfile.TemporaryFile() as out:
        try:
            child = subprocess.Popen(args, env={**env, MARK: mark}, cwd=cwd, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        except FileNotFoundError as exc:
            raise ProcessError(args, 127, str(exc)) from exc
        timed_out = False
        _RUNNING.add(child.pid)
        _DIRECT.add(child.pid)
        try:
            code = _wait(child, mark, timeout)
        except subprocess.TimeoutExpired:
            timed_out, code = True, -1
        finally:  # the group and the marked: what it started goes with it (an interrupt too)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            kill_marked(mark)
            child.wait()
            _RUNNING.discard(child.pid)
            _DIRECT.discard(child.pid)
        size = out.seek(0, os.SEEK_END)
        out.seek(0 if tail is None else max(0, size - tail))
        text = out.read().decode("utf-8", errors="replace")
    if timed_out:
        raise ProcessTimeout(args, timeout, text)
    if code != 0:
        raise ProcessError(args, code, text)
    return text


_RUNNING: set[int] = set()
"""The process groups of the commands running now, in any thread."""


def _stop_running() -> None:
    """On an interrupt: every running command's group, so a thread waiting for one (the
    bytecode compile's) returns at once instead of at the command's end."""
    for pgid in list(_RUNNING):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


on_interrupt(_stop_running)

MARK = "PROCESS_MARK"  # not TRITONPACK_*: a build is given none of those
"""Set in the environment of every command run: how its descendants are found again."""


def marked(mark: str) -> list[int]:
    """The processes whose environment carries ``MARK=mark`` (those of this user)."""
    needle = f"{MARK}={mark}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                if needle in fh.read().split(b"\0"):
                    found.append(int(entry.name))
        except OSError:  # gone, or another user's
            continue
    return found


def _wait(child: subprocess.Popen[bytes], mark: str, timeout: float) -> int:
    """``child``'s exit status, killing meanwhile each escaped daemon: a marked process whose
    parent is not (it was reparented: its own parent exited). One holding the pipe of a
    process it was forked from (uv reading a build backend's output) would hang that one."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise subprocess.TimeoutExpired(child.args, timeout)
        try:
            return child.wait(min(left, _POLL_S))
        except subprocess.TimeoutExpired:
            _kill_escaped(mark, child.pid)


_POLL_S = 1.0


def _kill_escaped(mark: str, root: int) -> None:
    pids = set(marked(mark))
    for pid in pids - {root}:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) not in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                log.debug("killed pid %d: it left the command it came from running", pid)


def kill_marked(mark: str) -> None:
    """SIGKILL every process carrying ``mark`` until none is left (one may fork meanwhile)."""
    for _ in range(10):
        pids = marked(mark)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


class Service:
    """A long-running process tritonpack started (a server) and everything it starts in turn:
    stubs, a model's forked workers, a daemon that left the group with ``setsid``. All carry
    ``mark`` in their environment; ``stop_all`` kills them, and so does the watchdog if
    tritonpack dies first (even by SIGKILL, which runs no cleanup)."""

    def __init__(self, process: subprocess.Popen[bytes], mark: str, since: int = 0):
        self.process = process
        self.mark = mark
        self.since = since  # its start time (clock ticks): what was adopted after it
        self.stopped = False

    def stop_all(self) -> list[int]:
        """Kill the group, every marked process and every orphan this process adopted since
        the service started (a daemon that double-forked with a clean environment carries no
        mark); return the marked ones that outlived the group (empty when the server's own
        stop took everything with it)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        left = marked(self.mark)
        kill_marked(self.mark)
        if not self.stopped:
            self.stopped = True
            kill_adopted(self.since)
            _serving(-1)
        _DIRECT.discard(self.process.pid)
        return left


PR_SET_CHILD_SUBREAPER = 36
_SERVICES = [0]  # services alive: while any, this process is a child subreaper
_DIRECT: set[int] = set()  # the children this process started itself (never "adopted")


def _serving(change: int) -> None:
    """Count a service in or out; this process is a child subreaper (an orphan of what a
    server starts is reparented to it, not to init) while one is alive."""
    before = _SERVICES[0]
    _SERVICES[0] = max(0, before + change)
    if (before == 0) != (_SERVICES[0] == 0):
        prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
        if prctl is not None:
            prctl(PR_SET_CHILD_SUBREAPER, 1 if _SERVICES[0] else 0, 0, 0, 0)


def _start_ticks(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks since boot) of ``pid``; None when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[19])


def adopted(since: int) -> list[int]:
    """The children of this process it did not start itself, started at ``since`` or later:
    orphans reparented to it as a subreaper (a model's double-forked daemon)."""
    me, found = os.getpid(), []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) not in _DIRECT:
            info = _start_ticks(int(entry.name))
            if info is not None and info[0] == me and info[1] >= since:
                found.append(int(entry.name))
    return found


def kill_adopted(since: int) -> None:
    """SIGKILL and reap every orphan adopted since ``since``, until none is left (a killed
    one's own children are adopted in turn)."""
    for _ in range(10):
        pids = adopted(since)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def popen(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    log_file: Path,
) -> Service:
    """Start a long-running process (a server) with output to ``log_file``, in its own session
    (a Ctrl-C reaches tritonpack, which stops it in order), killed if tritonpack dies without
    stopping it (SIGKILL runs no cleanup: the kernel's parent-death signal does), and what it
    starts killed then too (``new_mark``'s watchdog)."""
    args = [os.fspath(a) for a in argv]
    log.debug("$ %s &", " ".join(args))
    mark = new_mark()
    _serving(+1)
    try:
        with log_file.open("wb") as out:
            process = subprocess.Popen(
                args, env={**env, MARK: mark}, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
            )
    except BaseException:
        _serving(-1)
        raise
    _DIRECT.add(process.pid)
    info = _start_ticks(process.pid)
    return Service(process, mark, info[1] if info is not None else 0)


_WATCHDOG = """import os, signal, sys, time
while sys.stdin.buffer.read(65536):
    pass
needle = b"%s=" + sys.argv[1].encode() + b"."
for _ in range(100):
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/" + name + "/environ", "rb") as fh:
                    if any(v.startswith(needle) for v in fh.read().split(b"\\0")):
                        found.append(int(name))
            except OSError:
                pass
    if not found:
        break
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.1)
"""


_RUN = secrets.token_hex(8)
"""This process's part of every mark: what its watchdog looks for."""
_WATCHING: list[subprocess.Popen[bytes]] = []
_STARTING = threading.Lock()  # commands run from several threads (bytecode compile chunks)


def new_mark() -> str:
    """A mark for one command (``MARK=RUN.TOKEN``), this process's watchdog started first: a
    small Python process, in its own session and without a mark, that waits on a pipe only
    tritonpack holds and, when tritonpack ends however it ends (SIGKILL runs no cleanup),
    kills every process still carrying one of its marks: a build's setup.py, a daemon it
    left, a server's stubs."""
    with _STARTING:
        _watch()
    return f"{_RUN}.{secrets.token_hex(8)}"


def _watch() -> None:
    if not _WATCHING:
        try:
            _WATCHING.append(subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WATCHDOG % MARK, _RUN],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, env={"PATH": os.defpath}))
            _DIRECT.add(_WATCHING[-1].pid)
            atexit.register(_stop_watching)
        except OSError:  # no watchdog: a server's parent-death signal still applies
            log.debug("no watchdog process", exc_info=True)


def _stop_watching() -> None:
    """At a normal exit, what SIGKILL would do: close the watchdog's pipe (it then kills what
    still carries this run's marks and ends) and reap it, within a deadline. Left to the
    garbage collector, its Popen was a process never waited for and a pipe never closed
    (Python's "subprocess ... is still running" and "unclosed file" at exit)."""
    while _WATCHING:
        watchdog = _WATCHING.pop()
        if watchdog.stdin is not None:
            with contextlib.suppress(OSError):
                watchdog.stdin.close()
        try:
            watchdog.wait(timeout=WATCHDOG_EXIT)
        except subprocess.TimeoutExpired:  # still killing: it ends on its own, in its session
            log.debug("watchdog %d still running at exit", watchdog.pid)
        _DIRECT.discard(watchdog.pid)


def _die_with_parent(parent: int) -> Callable[[], None]:
    """In the child, before exec: PR_SET_PDEATHSIG(SIGKILL), Linux's 'kill me when my parent
    dies'; and exit at once if the parent already died before it was set."""
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = getattr(libc, "prctl", None)

    def child() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return child


PR_SET_PDEATHSIG = 1
