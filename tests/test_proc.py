"""The subprocess door (packer/core/proc.py) leaves nothing behind at a normal exit."""

from __future__ import annotations

import subprocess
import sys

from .conftest import alive

ONE_COMMAND = """
from packer.core import proc
print(proc.run(["echo", "ran"], timeout=30).strip())
print(proc._WATCHING[0].pid)
"""


def test_the_watchdog_is_reaped_and_its_pipe_closed_at_exit() -> None:
    """The watchdog (started with the first command, to kill its marked processes if
    tritonpack is SIGKILLed) was left to the garbage collector at exit: every run, and CI's
    pytest, ended with "ResourceWarning: subprocess N is still running" and "unclosed file
    <_io.BufferedWriter name=N>" (its pipe). Now it is told to end and waited for."""
    res = subprocess.run([sys.executable, "-W", "error::ResourceWarning", "-X", "tracemalloc=20",
                          "-c", ONE_COMMAND], capture_output=True, text=True, timeout=120)
    assert (res.returncode, res.stderr) == (0, "")
    said, watchdog = res.stdout.split()
    assert said == "ran" and not alive(int(watchdog))
