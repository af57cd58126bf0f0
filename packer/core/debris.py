"""What a killed run leaves behind, and how the next run knows it is safe to remove.

Every temporary name tritonpack makes beside an output or in its cache carries the pid of
the run that made it (``.tritonpack-env.tar.gz.<pid>.<random>.tmp``,
``channels/.partial-<pid>-<random>``). SIGKILL runs no cleanup; the next run removes the
names whose pid is no longer alive, and never one of a run still going.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path


def tagged(prefix: str) -> str:
    """``prefix`` followed by this run's pid: the start of a temporary name."""
    return f"{prefix}{os.getpid()}."


def alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def sweep(directory: Path, prefixes: Iterable[str]) -> list[Path]:
    """Remove entries of ``directory`` named ``<prefix><pid>.…`` whose pid is dead."""
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
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
    return removed
