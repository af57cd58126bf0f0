"""Everything the server started ends with verify: the stubs, workers a model forks in
initialize(), a daemon that left the process group (double fork, setsid) and listens on a
port; after a passing verify, and after a SIGKILL of verify itself (no cleanup runs: the
watchdog does it). Each test asserts about the processes its own model started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.core.errors import ExitCode
from packer.verify.runtime import LOCAL_LOG, sweep_killed

from .conftest import alive, error_line, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.server]
Copy = Callable[..., Path]

_ENV_DIR = re.compile(r"/tmp/python_env_[A-Za-z0-9_]+")
SPAWNS = '''
import os, socket, time


def _record(pids, what):
    with open(pids, "a") as fh:
        fh.write(f"{{what}} {{os.getpid()}}\\n")


class TritonPythonModel:
    def initialize(self, args):
        pids = {pids!r}
        _record(pids, "stub")
        if os.fork() == 0:  # a worker, in the stub's group
            _record(pids, "worker")
            time.sleep(100000)
        if os.fork() == 0:  # a daemon: out of the group, listening on a port
            os.setsid()
            if os.fork() == 0:
                server = socket.socket()
                server.bind(("127.0.0.1", 0))
                server.listen()
                _record(pids, "daemon")
                time.sleep(100000)
            os._exit(0)
'''


def _model(model_copy: Copy, tmp_path: Path, spawning: str | None = None) -> tuple[Path, Path]:
    """plain_numpy with ``spawning`` (SPAWNS by default) woven into its model.py, packed."""
    model = model_copy("plain_numpy")
    pids = tmp_path / "pids"
    source = (model / "1" / "model.py").read_text()
    head, _, body = source.partition("class TritonPythonModel:\n")
    spawns = (spawning or SPAWNS).format(pids=str(pids)).split("class TritonPythonModel:\n")
    (model / "1" / "model.py").write_text(
        head + spawns[0] + "class TritonPythonModel:\n" + spawns[1] + body)
    assert run_cli(model, "--triton", "24.10", "--python-from", "auto", "-q").exit_code == 0
    return model, pids


def _started(pids: Path) -> dict[str, int]:
    if not pids.exists():
        return {}
    return {what: int(pid) for what, pid in
            (line.split() for line in pids.read_text().splitlines() if line.strip())}


def _survivors(started: dict[str, int], within: float = 15.0) -> dict[str, int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        left = {what: pid for what, pid in started.items() if alive(pid)}
        if not left:
            return {}
        time.sleep(0.1)
    return left


def test_a_passing_verify_leaves_nothing_the_model_started(model_copy: Copy,
                                                           tmp_path: Path) -> None:
    model, pids = _model(model_copy, tmp_path)
    res = run_cli("verify", model, "-q")
    assert res.exit_code == 0, res.stderr
    started = _started(pids)
    assert set(started) == {"stub", "worker", "daemon"}, started
    assert _survivors(started, within=2.0) == {}  # gone when verify returned, not later


def test_a_sigkilled_verify_leaves_no_stub_nor_what_the_model_started(
        model_copy: Copy, tmp_path: Path) -> None:
    model, pids = _model(model_copy, tmp_path)
    temp = tmp_path / "temp"
    temp.mkdir()
    run = subprocess.Popen([sys.executable, "-m", "packer", "verify", str(model)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "NO_COLOR": "1", "TMPDIR": str(temp)})
    deadline = time.monotonic() + 180
    while set(_started(pids)) != {"stub", "worker", "daemon"}:
        assert run.poll() is None and time.monotonic() < deadline, _started(pids)
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert _survivors(_started(pids)) == {}
    [work] = temp.iterdir()  # what the next verify sweeps: the work dir and, by its server's
    named = _ENV_DIR.findall((work / LOCAL_LOG).read_text())  # log, the extracted env
    assert named
    sweep_killed(temp)
    assert [list(temp.iterdir()), [Path(p).exists() for p in named]] == [[], [False] * len(named)]


KILLS_SERVER = '''import os
import signal


class TritonPythonModel:
    def initialize(self, args):
        os.kill(os.getppid(), signal.SIGKILL)  # the stub's parent: tritonserver
'''


def test_a_model_that_kills_the_server_is_named_as_such_not_a_load_timeout(
        model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    assert run_cli(model, "--triton", "24.10", "--python-from", "auto", "-q").exit_code == 0
    (model / "1" / "model.py").write_text(KILLS_SERVER)
    t0 = time.monotonic()
    res = run_cli("verify", model)
    assert res.exit_code == ExitCode.VERIFY_LOAD == 11, res.stderr
    assert error_line(res.stderr) == (
        "error: tritonserver died while loading plain_numpy (killed by SIGKILL)")
    assert time.monotonic() - t0 < 90  # said when it died, not at the load's timeout (120 s)


CLEAN_DAEMON = '''
import os


class TritonPythonModel:
    def initialize(self, args):
        if os.fork() == 0:  # a daemon with a clean environment: it carries no mark
            os.setsid()
            if os.fork() == 0:
                with open({pids!r}, "a") as fh:
                    fh.write(f"clean {{os.getpid()}}\\n")
                os.execve("/bin/sleep", ["sleep", "100000"], {{}})
            os._exit(0)
        os.wait()
'''


def test_a_daemon_with_a_clean_environment_ends_with_verify(model_copy: Copy,
                                                            tmp_path: Path) -> None:
    """The mark in the environment finds what a model starts, unless it drops its
    environment: verify's process is the child subreaper while the server runs, so such an
    orphan is reparented to it, and killed with the server (it outlived verify)."""
    model, pids = _model(model_copy, tmp_path, CLEAN_DAEMON)
    res = run_cli("verify", model, "-q")
    assert res.exit_code == 0, res.stderr
    started = _started(pids)
    assert set(started) == {"clean"}, started
    assert _survivors(started, within=2.0) == {}
