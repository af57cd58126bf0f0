"""The cause named is the cause: each failure here used to be reported as something else."""

from __future__ import annotations

import json
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


@pytest.mark.slow
def test_a_repositorys_json_says_why_a_model_failed(tmp_path: Path) -> None:
    """A model that fails in a repository's run carries its hint and the underlying output
    (what --verbose prints) in the JSON: before, only the message, and a CI log of a failed
    repository run could not say why (exit 8, installing the locked conda packages failed)."""
    repo = tmp_path / "models"
    shutil.copytree(FIXTURES / "bad" / "declared_missing", repo / "declared_missing")
    res = run_cli(repo, "--python-from", "auto", "--json", "-q")
    out = json.loads(res.stdout)
    assert res.exit_code == ExitCode.RESOLVE, res.stdout
    [failed] = out["failed"]
    assert (failed["name"], failed["stage"], failed["exit_code"], failed["message"]) == (
        "declared_missing", "pack", ExitCode.RESOLVE, "declared requirement "
        "'tritonpack-no-such-distribution-abc' (tritonpack.toml) is not on the package index")
    assert failed["hint"]
    assert "tritonpack-no-such-distribution-abc" in failed["detail"]  # uv's own words
    alone = json.loads(run_cli("lock", repo / "declared_missing", "--python-from", "auto",
                               "--json").stdout)
    last = [d.rstrip().splitlines()[-1] for d in (alone["error"]["detail"], failed["detail"])]
    assert last[0] == last[1]  # as the one-model command says it (its temp dir aside)
