"""The cause named is the cause: each failure here used to be reported as something else."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.core.errors import ExitCode

from .conftest import FIXTURES, error_line, run_cli, snapshot

Copy = Callable[..., Path]


@pytest.mark.parametrize("port", ["99999", "0", "65536"])
def test_an_invalid_port_is_named_not_a_refused_connection(model_copy: Copy, port: str) -> None:
    model = model_copy("plain_numpy")
    before = snapshot(model)
    ref = f"oci://localhost:{port}/tritonpack-cache"
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--cache-from", ref)
    assert res.exit_code == ExitCode.REMOTE == 16, res.stderr
    assert error_line(res.stderr) == (
        f"error: remote cache {ref!r}: port {port} is not a TCP port (1-65535)")
    assert snapshot(model) == before


@pytest.mark.slow
def test_an_80_column_terminal_does_not_change_the_resolvers_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """uv wraps its reasons to COLUMNS ("Because NAME was" / "not found in the package
    registry"): read wrapped, the missing distribution went unnamed and the lock said only
    that the resolver found no solution (seen where readline had exported COLUMNS=80)."""
    model = shutil.copytree(FIXTURES / "bad" / "declared_missing", tmp_path / "declared_missing")
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "24")
    res = run_cli("lock", model, "--python-from", "auto")
    assert (res.exit_code, error_line(res.stderr)) == (ExitCode.RESOLVE, (
        "error: declared requirement 'tritonpack-no-such-distribution-abc' (tritonpack.toml) is "
        "not on the package index"))
