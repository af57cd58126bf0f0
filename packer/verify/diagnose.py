"""One sentence for the known ways a Python-backend model fails to load or answer."""

from __future__ import annotations

import re

from ..resolve import Requirements

_NO_MODULE = re.compile(r"No module named '([^']+)'")
_GLIBC = re.compile(r"(GLIBC(?:XX)?_[0-9.]+)'? not found")


def diagnose(log: str, requirements: Requirements | None = None, *, timed_out: bool = False,
             python_env: str | None = None, python_stub: str | None = None) -> str:
    if python_env and python_stub and python_env != python_stub:
        return (f"Python version mismatch: the environment has Python {python_env}, the backend "
                f"stub needs {python_stub} (this hangs the stub in some releases)")
    if m := _NO_MODULE.search(log):
        name = m.group(1)
        where = ""
        if requirements is not None:
            for row in requirements.rows:
                if row.key == name.split(".")[0] or row.key == name:
                    where = f" (imported at {row.locations[0]})"
                    break
        if name.split(".")[0] == "numpy":
            return "numpy is missing from the environment: the backend stub imports it"
        return f"module {name!r} is missing from the environment{where}"
    if m := _GLIBC.search(log):
        return (f"a library in the environment needs {m.group(1)}, newer than the server's OS "
                "provides (an old libstdc++ in the env's lib/ shadows the system's, or the env was "
                "built on a newer OS)")
    if "activate" in log and "No such file" in log:
        return "the environment has no bin/activate (Triton before 25.08 sources it)"
    errors = "\n".join(ln for ln in log.splitlines() if ln.startswith("E"))
    if re.search(r"shared memory|shm", errors, re.I) and re.search(
        r"fail|insufficient|not enough|no space", errors, re.I
    ):
        return "shared memory too small for the Python backend (raise --shm-size)"
    if timed_out:
        return "the model did not become ready in time (load timeout)"
    return ""


def excerpt(log: str, lines: int = 15) -> str:
    """The lines of a server log that matter: errors first, else the tail."""
    all_lines = log.splitlines()
    errors = [ln for ln in all_lines if ln.startswith("E") or "Error" in ln or "error" in ln]
    picked = errors[-lines:] if errors else all_lines[-lines:]
    return "\n".join(picked)
