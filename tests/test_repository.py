"""Repository mode, release pipelines (check, --frozen), the SBOM and the JSON schema."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from .conftest import FIXTURES, error_line, run_cli, scratch
from .freshcache import fresh_cache

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def packed_repo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                session_cache: Path) -> Path:
    import os

    work = scratch(request, tmp_path_factory, "repo")
    repo = work / "models"
    shutil.copytree(FIXTURES / "repo", repo)
    # a cache of its own (the session's downloads): its two builds are this run's, whatever
    # another xdist worker builds meanwhile (under --no-cache an entry made since the run
    # started is reused, another run's too)
    os.environ["TRITONPACK_CACHE"] = str(fresh_cache(work / "cache", session_cache))
    try:
        res = run_cli(repo, "--triton", "24.10", "--python-from", "auto", "--sbom", "--no-cache",
                      "--json")
    finally:
        os.environ["TRITONPACK_CACHE"] = str(session_cache)
    assert res.exit_code == 0, res.stderr
    (repo / "result.json").write_text(res.stdout)
    return repo


def test_one_command_packs_the_repository_with_two_builds(packed_repo: Path) -> None:
    out = json.loads((packed_repo / "result.json").read_text())
    assert out["schema"] == "tritonpack/v1" and out["command"] == "pack-repository"
    assert [m["model"] for m in out["models"]] == ["alpha", "beta", "gamma"]
    assert out["builds"] == 2  # alpha and beta share one lock, hence one build
    assert [m["cached"] for m in out["models"]] == [False, True, False]
    assert {s["name"]: s["why"] for s in out["skipped"]} == {
        "delta_onnx": "backend onnxruntime",
        "pipeline": "ensemble (its steps are packed on their own)",
    }
    gamma = out["models"][2]
    assert gamma["bundled"] == ["textproc"]
    for model in ("alpha", "beta", "gamma"):  # every model dir stays self-contained
        assert (packed_repo / model / "tritonpack-env.tar.gz").is_file()


def test_check_passes_then_names_the_changed_model(packed_repo: Path, tmp_path: Path) -> None:
    res = run_cli("check", packed_repo)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert res.stdout.splitlines() == ["checked 3 models: alpha, beta, gamma", "all fresh"]

    repo = tmp_path / "models"
    shutil.copytree(packed_repo, repo)
    src = repo / "beta" / "1" / "model.py"
    src.write_text(src.read_text() + "import yaml\n")
    (repo / "alpha" / "tritonpack-env.tar.gz").replace(repo / "alpha" / "moved.tar.gz")
    res = run_cli("check", repo, "--json")
    assert res.exit_code == 1
    assert json.loads(res.stdout)["problems"] == [
        "alpha: moved.tar.gz is an environment tritonpack made that config.pbtxt does not point "
        "at: remove it (it ships with the model for nothing)",
        "alpha: EXECUTION_ENV_PATH points at tritonpack-env.tar.gz, which does not exist (pack "
        f"it: tritonpack {repo / 'alpha'}; `check --locks` needs no environment)",
        "beta: tritonpack.lock is stale: imports: +yaml=pyyaml; requirements: +pyyaml (run "
        f"tritonpack {repo / 'beta'}: it re-locks and re-packs)",
    ]


def test_check_catches_an_env_from_another_lock(packed_repo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "models"
    shutil.copytree(packed_repo, repo)
    for name in ("tritonpack-env.tar.gz", "tritonpack-env.tar.gz.sha256"):  # with its record
        shutil.copy2(repo / "gamma" / name, repo / "alpha" / name)
    res = run_cli("check", repo / "alpha")
    assert res.exit_code == 1
    assert ("  alpha: tritonpack-env.tar.gz was packed from another lock (re-pack it: "
            f"tritonpack {repo / 'alpha'})") in res.stdout


def test_sbom_is_valid_cyclonedx(packed_repo: Path) -> None:
    text = (packed_repo / "gamma" / "tritonpack-env.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(text) is None
    doc = json.loads(text)
    purls = {c["purl"] for c in doc["components"] if c["type"] == "library"}
    assert {c["name"] for c in doc["components"] if c["type"] == "file"} == {
        "textproc/__init__.py"}  # every bundled file (gamma bundles one module)
    assert any(p.startswith("pkg:pypi/numpy@1.") for p in purls)
    assert any(p.startswith("pkg:pypi/pyyaml@") for p in purls)
    assert any(p.startswith("pkg:conda/python@3.10.") for p in purls)
    numpy = next(c for c in doc["components"] if c["name"] == "numpy")
    assert numpy["hashes"] and all(len(h["content"]) == 64 for h in numpy["hashes"])
    license = numpy["licenses"][0]  # an SPDX id or expression where it parses, else a name
    assert license.get("expression") or license["license"].get("id") or license["license"]["name"]


def test_verify_the_whole_repository(packed_repo: Path) -> None:
    res = run_cli(packed_repo, "--triton", "24.10", "--python-from", "auto", "--verify", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert [v["model"] for v in out["verified"]] == ["alpha", "beta", "gamma", "pipeline"]
    gamma = out["verified"][2]
    assert gamma["probe"]["imports"] == {"numpy": "ok", "textproc": "ok", "yaml": "ok"}


def test_shared_env_for_models_with_one_lock(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    for name in ("alpha", "beta"):
        shutil.copytree(FIXTURES / "repo" / name, repo / name)
    res = run_cli(repo, "--triton", "24.10", "--python-from", "auto", "--shared-env", "_envs/common.tar.gz",
                  "--verify", "--json")
    assert res.exit_code == 0, res.stderr
    assert "a model dir is no longer self-contained" in json.loads(res.stdout)["warnings"][0]
    for name in ("alpha", "beta"):
        assert ('string_value: "$$TRITON_MODEL_DIRECTORY/../_envs/common.tar.gz"'
                in (repo / name / "config.pbtxt").read_text())
        assert not (repo / name / "tritonpack-env.tar.gz").exists()
    assert (repo / "_envs" / "common.tar.gz").is_file()
    assert [v["model"] for v in json.loads(res.stdout)["verified"]] == ["alpha", "beta"]
    assert run_cli("check", repo).exit_code == 0


def test_shared_env_refuses_models_that_need_different_things(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    shutil.copytree(FIXTURES / "repo", repo)
    res = run_cli(repo, "--triton", "24.10", "--python-from", "auto", "--shared-env", "_envs/common.tar.gz")
    assert res.exit_code == 3
    assert error_line(res.stderr) == (
        "error: --shared-env needs one lock for all models, but gamma needs something else "
        "than alpha")


def test_a_model_that_fails_verify_is_not_reported_as_failing_to_pack(tmp_path: Path) -> None:
    """Packed, then not loaded: the table says packed, a separate list says why verify failed
    (the JSON says which stage)."""
    from packer.core.errors import PackError, VerifyLoadError
    from packer.render import repo_payload, repo_text
    from packer.repository import Failure, RepoResult

    res = RepoResult(tmp_path, failed=[
        Failure("broken", PackError("no space left", hint="free some space")),
        Failure("bls", VerifyLoadError("calls 'x'", hint="load x too"), "verify")])
    text = repo_text(res).splitlines()
    assert text[0] == f"{tmp_path}: 0 packed (0 builds), 0 left alone, 1 failed; 1 failed to verify"
    # each failure's fix, as the one-model command says it (the table has room for the message)
    assert text[-6:] == ["", "broken: hint: free some space", "",
                         "failed to verify (packed above):", "  bls: calls 'x'",
                         "    hint: load x too"]
    assert [f["stage"] for f in repo_payload(res)["failed"]] == ["pack", "verify"]
