"""A pack says what it took from tritonpack's stores (the import check's kept answer, bytecode,
gzip members) and what it did again: in its summary, in --json and, step by step, in
--verbose, whose lines are the steps, not the commands run (-vv shows those in full)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import run_cli
from .freshcache import fresh_cache
from .schemas import validate

pytestmark = pytest.mark.slow
ARGS = ("--triton", "24.10", "--python-from", "auto")
DOWNLOADS = ("pkgs", "uv")  # not "channels": the local Python's is made again
CHECK_SOURCE = "sys.addaudithook(_audit)"  # a line of the import check's script


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own: its logging set up as a user's run sets it."""
    return subprocess.run([sys.executable, "-m", "packer", *map(str, args)], capture_output=True,
                          text=True, timeout=900, env=os.environ.copy(), check=False)


def test_a_cold_pack_reused_nothing_and_a_partly_warm_one_says_what(
        model_copy: Callable[..., Path], session_cache: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # stores of this test's own, empty: nothing another test packed is there to reuse; the
    # Python channel made again too (patchelf on each of its libraries)
    monkeypatch.setenv("TRITONPACK_CACHE", str(fresh_cache(tmp_path / "cache", session_cache,
                                                           DOWNLOADS)))
    model = model_copy("plain_numpy")

    cold = cli(model, *ARGS, "--verbose")
    assert cold.returncode == 0, cold.stderr
    assert "\n  reused " not in cold.stdout, cold.stdout  # nothing reused: no line
    said = [x for x in cold.stderr.splitlines() if x.startswith("tritonpack.reuse: ")]
    assert "tritonpack.reuse: import check: ran" in said, said
    assert not [x for x in said if re.search(r"[1-9][0-9]* files? (placed|reused)", x)], said
    assert "  … compiling bytecode (" in cold.stderr  # a step, with its seconds
    assert "  … packaging Python 3.10" in cold.stderr  # the channel was made: patchelf ran
    assert CHECK_SOURCE not in cold.stderr and "patchelf" not in cold.stderr
    assert "tritonpack.proc: $ " not in cold.stderr

    # another --keep: a new environment of the same packages; the stores' entries still hold
    warm = run_cli(model, *ARGS, "--keep", "include", "--json")
    assert warm.exit_code == 0, warm.stderr
    out = json.loads(warm.stdout)
    validate(out)
    assert out["cached"] is False
    reused = out["reused"]
    assert reused["import_check"] == {"kept_answers": 1, "runs": 0}, reused
    assert reused["bytecode"]["placed"] > 100 and reused["bytecode"]["compiled"] == 0
    members = reused["gzip_members"]
    assert members["reused_files"] > 10 and members["reused_bytes"] > 10_000_000
    assert members["reused_bytes"] > members["compressed_bytes"]

    # another gzip level: the members are compressed again, the rest is still reused
    level = run_cli(model, *ARGS, "--compress-level", "3")
    assert level.exit_code == 0, level.stderr
    [line] = [x for x in level.stdout.splitlines() if x.startswith("  reused ")]
    assert line.startswith("  reused       the import check's answer, ")
    assert "bytecode files" in line and "compressed members" not in line

    again = json.loads(run_cli(model, *ARGS, "--compress-level", "3", "--json").stdout)
    assert again["cached"] is True  # the whole environment: "cached", as before
    assert again["reused"]["bytecode"] == {"placed": 0, "compiled": 0}


def test_debug_shows_every_command_in_full(model_copy: Callable[..., Path], session_cache: Path,
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """-vv: what a bug report needs, the import check's source and each patchelf among it
    (empty stores, so the check runs; the Python channel made again, so patchelf does)."""
    monkeypatch.setenv("TRITONPACK_CACHE", str(fresh_cache(tmp_path / "cache", session_cache,
                                                           DOWNLOADS)))
    res = cli(model_copy("plain_numpy"), *ARGS, "-vv")
    assert res.returncode == 0, res.stderr
    assert "tritonpack.reuse: import check: ran" in res.stderr
    assert CHECK_SOURCE in res.stderr
    assert len(re.findall(r"tritonpack\.proc: \$ \S*patchelf --set-rpath", res.stderr)) > 10
