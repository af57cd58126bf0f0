"""Temporary names carry their run's pid; a later run removes those of dead runs only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from packer.core.debris import RUN_ID, sweep, tagged


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_sweep_removes_what_dead_runs_left_and_nothing_else(tmp_path: Path) -> None:
    dead = dead_pid()
    (tmp_path / f".partial-{dead}.abc").mkdir()
    (tmp_path / f".partial-{dead}.abc" / "python.tar.bz2").write_bytes(b"x")
    (tmp_path / f".tritonpack-env.tar.gz.{dead}.q1.tmp").write_bytes(b"x")
    keep = [f".partial-{os.getpid()}.live", ".partial-abc", "python-3.10.13-0123", "notes.txt",
            f".other.{dead}.tmp"]
    for name in keep:
        (tmp_path / name).write_bytes(b"")
    removed = sweep(tmp_path, [".partial-", ".tritonpack-env.tar.gz."])
    assert sorted(p.name for p in removed) == sorted(
        [f".partial-{dead}.abc", f".tritonpack-env.tar.gz.{dead}.q1.tmp"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)


def test_temp_names_carry_the_pid_and_the_run_id() -> None:
    assert tagged(".partial-") == f".partial-{os.getpid()}.{RUN_ID}."
    assert re.fullmatch("r[0-9a-f]{16}", RUN_ID)


def test_a_name_with_a_pid_too_large_for_any_process_is_swept(tmp_path: Path) -> None:
    """A planted ``.tritonpack.lock.99999999999999999999.x`` is no live run's: removed, not
    an OverflowError from os.kill."""
    huge = tmp_path / ".tritonpack.lock.99999999999999999999.x.tmp"
    huge.write_bytes(b"x")
    assert sweep(tmp_path, [".tritonpack.lock."]) == [huge]
    assert not huge.exists()
