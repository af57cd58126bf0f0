"""What a killed run leaves behind, and how the next run knows it is safe to remove.

Every temporary name tritonpack makes beside an output or in its cache carries the pid of
the run that made it and that run's random id
(``.tritonpack-env.tar.gz.<pid>.<run>.<random>.tmp``, ``channels/.partial-<pid>.<run>.<random>``).
SIGKILL runs no cleanup; the next run removes the names whose pid is no longer alive, and
never one of a run still going.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

RUN_ID = "r" + secrets.token_hex(8)  # this run's id (never all digits: a pid is)


def tagged(prefix: str) -> str:
    """``prefix`` followed by this run's pid and random id: the start of a temporary name.
    The pid lets the next run sweep it once the run is dead; the id ties it to the commit
    journal of the run that made it (``packer.core.journal``)."""
    return f"{prefix}{os.getpid()}.{RUN_ID}."


def alive(pid: int) -> bool:
    if not 0 < pid < 1 << 31:  # no such process (os.kill would overflow)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def sweep(directory: Path, prefixes: Iterable[str],
          before: Callable[[Path], None] | None = None) -> list[Path]:
    """Remove entries of ``directory`` named ``<prefix><pid>.…`` whose pid is dead;
    ``before`` sees each one first (what it says of what the dead run left elsewhere)."""
    pattern = re.compile("^(?:" + "|".join(re.escape(p) for p in prefixes) + r")(\d+)\.")
    removed: list[Path] = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            if before is not None:
                before(entry)
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
    return removed
