"""The --json output is what docs/schema/ says: one real output of each fast kind, checked
with jsonschema (the slow and server tests' pack, lock and verify outputs are checked by
``run_cli`` as they run), and a schema for every command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from packer.cli import COMMANDS

from . import schemas
from .conftest import FIXTURES, copy_model, run_cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MODEL = "plain_numpy"


def _output(*args: str | Path, code: int = 0) -> dict[str, Any]:
    res = run_cli(*args, "--json")
    assert res.exit_code == code, res.stderr
    payload: dict[str, Any] = json.loads(res.stdout)
    schemas.validate(payload)  # run_cli did too; here it is the point of the test
    return payload


def test_every_command_has_a_schema() -> None:
    kinds = {*COMMANDS, "lock-check", "pack-repository", "cache-info", "cache-prune", "error",
             "lock-check-repository", "scan-repository", "export-repository"}
    kinds -= {"cache"}  # a group: its subcommands answer
    missing = sorted(k for k in kinds if not (schemas.SCHEMAS / f"{k}.json").is_file())
    assert not missing, ("no JSON Schema for " + ", ".join(missing)
                         + ": add docs/schema/NAME.json and describe it in docs/json-output.md")


def test_scan_targets_config(tmp_path: Path) -> None:
    model = copy_model(MODEL, tmp_path)
    assert _output("scan", model, "--triton", "24.10")["command"] == "scan"
    assert _output("targets")["targets"]
    assert "triton" in _output("config", model)["settings"]


def test_check_and_inspect_failing_are_documented_too(tmp_path: Path) -> None:
    repo = tmp_path / "repo"  # without what the README's set-up packs into examples/
    shutil.copytree(EXAMPLES / "numpy_model", repo / "numpy_model",
                    ignore=shutil.ignore_patterns("tritonpack*"))
    assert _output("check", repo, code=1)["ok"] is False
    report = _output("inspect", FIXTURES / "bad_envs" / "no_numpy.tar.gz", "--triton", "24.10",
                     code=1)
    assert report["findings"]


def test_cache_info_and_prune() -> None:
    assert "sections" in _output("cache", "info")
    assert _output("cache", "prune", "--days", "3650")["removed"] >= 0


def test_errors_and_usage_errors(tmp_path: Path) -> None:
    assert _output("scan", tmp_path / "absent", code=3)["error"]["exit_code"] == 3
    assert _output("scna", code=2)["command"] == "usage"
    assert _output("lock", "--check", copy_model(MODEL, tmp_path), code=6)["error"]["hint"]


def test_a_wrong_output_is_caught() -> None:
    """The schemas are not vacuous: a field of the wrong type, or a missing one, fails."""
    good = {"schema": "tritonpack/v1", "command": "check", "ok": True, "models": [],
            "problems": []}
    schemas.validate(good)
    for bad in ({**good, "ok": "yes"}, {k: v for k, v in good.items() if k != "problems"},
                {**good, "schema": "tritonpack/v2"}):
        with pytest.raises(AssertionError, match=r"docs/schema/check\.json"):
            schemas.validate(bad)
