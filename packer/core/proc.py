"""The one door to the outside: every external command tritonpack runs goes through here.

List argv, never a shell; the environment is explicit; output is captured and
attached to the error so ``--verbose`` can show it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .errors import ProcessError

log = logging.getLogger("tritonpack.proc")

# Settings of pip, uv and conda that change what a resolver or installer answers.
_LEAKY_PREFIXES = ("PIP_", "UV_", "CONDA_", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without pip/uv/conda settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIXES)}
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
    """Run ``argv``, return its combined output; raise ProcessError on failure or when it
    runs past ``timeout`` (required: every wait has a deadline, ``packer.core.deadlines``)."""
    args = [os.fspath(a) for a in argv]
    log.debug("$ %s", " ".join(args))
    try:
        done = subprocess.run(
            args,
            env=dict(env) if env is not None else clean_env(),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",  # a tool printing bytes that are not UTF-8 is no crash here
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ProcessError(args, 127, str(exc)) from exc
    except subprocess.TimeoutExpired as exc:
        out = exc.output if isinstance(exc.output, str) else ""
        raise ProcessError(args, -1, f"timed out after {timeout}s\n{out}") from exc
    if done.returncode != 0:
        raise ProcessError(args, done.returncode, done.stdout)
    return done.stdout


def run_contained(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float,
    tail: int = 1 << 16,
) -> str:
    """Run ``argv`` for code tritonpack does not trust to behave (packages imported to check
    them): in its own session, its output in a file, of which the last ``tail`` bytes are
    returned. Done when it exits, not when its output closes: a helper process it left
    running is killed with its process group, and no output floods memory."""
    import tempfile

    args = [os.fspath(a) for a in argv]
    log.debug("$ %s", " ".join(args))
    with tempfile.TemporaryFile() as out:
        try:
            child = subprocess.Popen(args, env=dict(env), cwd=cwd, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        except FileNotFoundError as exc:
            raise ProcessError(args, 127, str(exc)) from exc
        timed_out = False
        try:
            code = child.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out, code = True, -1
        finally:  # the group: what it started goes with it (an interrupt here too)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        size = out.seek(0, os.SEEK_END)
        out.seek(max(0, size - tail))
        text = out.read().decode("utf-8", errors="replace")
    if timed_out:
        raise ProcessError(args, -1, f"timed out after {timeout}s\n{text}")
    if code != 0:
        raise ProcessError(args, code, text)
    return text


def popen(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    log_file: Path,
) -> subprocess.Popen[bytes]:
    """Start a long-running process (a server) with output to ``log_file``, in its own session
    (a Ctrl-C reaches tritonpack, which stops it in order) and killed if tritonpack dies
    without stopping it (SIGKILL runs no cleanup: the kernel's parent-death signal does)."""
    args = [os.fspath(a) for a in argv]
    log.debug("$ %s &", " ".join(args))
    with log_file.open("wb") as out:
        return subprocess.Popen(
            args, env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )


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
