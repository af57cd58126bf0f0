"""What an interrupt says: one line and exit 130 from the first instruction on, and words that
follow what the run committed (the journal's state), not when the signal came."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.core import signals
from packer.core.errors import ExitCode

from .conftest import run_cli, snapshot

Copy = Callable[..., Path]
NOTHING = "interrupted: nothing in the model directory was changed"
COMMITTED = ("interrupted (SIGINT) after the commit: the new environment, lock and config.pbtxt "
             "are all in place")


def _start(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "packer", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_COLOR": "1"})


def _catches_sigterm(pid: int) -> bool:
    """tritonpack's own handlers are in (Python alone never catches SIGTERM)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1)


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.06, 0.1, 0.2, 0.3])
def test_a_ctrl_c_while_starting_is_one_line_and_exit_130(model_copy: Copy,
                                                          delay: float) -> None:
    """From the moment tritonpack's code runs (its handlers are in) through imports, option
    parsing and the first stage: exit 130, the one line, no traceback, no "Aborted!"."""
    model = model_copy("plain_numpy")
    before = snapshot(model)
    run = _start(model, "--triton", "24.10", "--python-from", "auto")
    deadline = time.monotonic() + 30
    while not _catches_sigterm(run.pid):
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.001)
    time.sleep(delay)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert (run.returncode, err.splitlines()[-1:]) == (ExitCode.INTERRUPTED, [NOTHING]), err
    assert "Traceback" not in err and "Aborted" not in err
    assert snapshot(model) == before


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.02, 0.03, 0.05, 0.08])
def test_an_interrupt_after_the_commit_says_so(model_copy: Copy, delay: float) -> None:
    """A SIGINT just after the cache line lands before, in or after the commit: the words
    follow what is on disk (the commit finished, or nothing changed), never the other."""
    model = model_copy("plain_numpy")
    assert run_cli(model, "--triton", "24.10", "--python-from", "auto", "-q").exit_code == 0
    (model / "tritonpack-env.tar.gz").unlink()  # the next run commits a new archive
    before = snapshot(model)
    run = _start(model, "--triton", "24.10", "--python-from", "auto")
    assert run.stderr is not None
    while "reused the environment" not in (line := run.stderr.readline()):
        assert line, "the run ended before its cache line"
    time.sleep(delay)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    if run.returncode == 0:  # it finished first: nothing to say
        return
    assert run.returncode == ExitCode.INTERRUPTED, err
    said = err.splitlines()[-1]
    if (model / "tritonpack-env.tar.gz").exists():
        assert said == COMMITTED, err
        assert run_cli("check", model).exit_code == 0
    else:
        assert said == NOTHING, err
        assert snapshot(model) == before


def test_the_words_follow_the_commits_of_this_run(tmp_path: Path) -> None:
    signals.begin()
    assert signals.interrupted(KeyboardInterrupt("SIGTERM")) == NOTHING
    signals.committed(tmp_path / "a", signals.PACK_OUTPUTS)
    assert signals.interrupted(KeyboardInterrupt("SIGINT")) == COMMITTED
    signals.committed(tmp_path / "b", signals.PACK_OUTPUTS)
    assert signals.interrupted(KeyboardInterrupt("SIGTERM")) == (
        "interrupted (SIGTERM) after the commits of a, b: their new outputs are all in place; "
        "nothing else was changed")
    signals.begin()
    assert signals.interrupted() == NOTHING


@pytest.mark.parametrize(("argv0", "taken"), [("tritonpack", True), ("my_script.py", False),
                                              ("-m", False)])  # `python -m other_tool`
def test_the_cli_process_takes_the_signals_before_any_other_import(argv0: str,
                                                                    taken: bool) -> None:
    """The console script's process has tritonpack's handlers once ``packer`` is imported,
    before typing, click or a stage; a program importing packer as a library keeps its own."""
    probe = ("import sys, signal\nsys.argv[0] = sys.argv[1]\nimport packer\n"
             "print(signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, 'click' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe, argv0], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == [str(taken), "False"]
