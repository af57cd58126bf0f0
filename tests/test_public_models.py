"""NVIDIA's public Python-backend models (tests/fixtures/public/, see its README), one of each
kind Triton serves, packed once as a repository and verified in the real local tritonserver."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from packer.core.errors import ExitCode

from .conftest import FIXTURES, error_line, run_cli, scratch
from .freshcache import DOWNLOADS, fresh_cache

pytestmark = [pytest.mark.slow, pytest.mark.server]
PUBLIC = FIXTURES / "public"


@pytest.fixture(scope="module")
def packed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           session_cache: Path) -> tuple[Path, dict[str, Any], int]:
    """The public models packed for Triton 24.10 and verified, in one run of
    ``tritonpack REPO --verify`` (what test_the_repository_verifies_as_a_whole asserts
    about): one lock, so one build each of the two locks (models importing numpy, models
    importing nothing) and the rest from the environment cache. Packing the repository a
    second time only to verify it cost a copy of every model's environment (--format dir).
    The environments go to a cache of the module's own (no other module packs these locks),
    removed with the module's scratch dir when it ends: ~560 MB the session's cache would
    hold to the end of the run."""
    import os

    home = scratch(request, tmp_path_factory, "public")
    os.environ["TRITONPACK_CACHE"] = str(fresh_cache(home / "cache", session_cache,
                                                     (*DOWNLOADS, "bytecode", "gzip")))
    repo = home / "models"
    shutil.copytree(PUBLIC, repo)
    try:
        res = run_cli(repo, "--triton", "24.10", "--python-from", "auto", "--format", "dir",
                      "--verify", "--json", "-q", "--with", "add_sub", "--timeout", "10")
    finally:
        os.environ["TRITONPACK_CACHE"] = str(session_cache)
    out = json.loads(res.stdout)
    not_packed = [f for f in out["failed"] if f["stage"] != "verify"]
    assert not_packed == [], json.dumps(not_packed, indent=1)  # all packed (why: its detail)
    return repo, out, res.exit_code


@pytest.fixture
def repo(packed: tuple[Path, dict[str, Any], int]) -> Path:
    return packed[0]


def verified(repo: Path, model: str, *args: str) -> dict[str, object]:
    res = run_cli("verify", repo / model, "--triton", "24.10", "--json", *args)
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["passed"]
    return dict(out)


def test_decoupled_model_answers_over_a_grpc_stream(repo: Path) -> None:
    out = verified(repo, "square_int32")
    assert (out["kind"], out["responses"], out["outputs"]) == ("decoupled", 1, ["OUT"])


def test_zero_responses_from_a_decoupled_model_is_valid(repo: Path) -> None:
    out = verified(repo, "repeat_int32", "--inputs",
                   str(FIXTURES / "public_inputs" / "zero_responses.json"))
    assert (out["responses"], out["outputs"]) == (0, [])
    assert out["notes"] == ["repeat_int32 sent 0 responses and the final flag: valid for a "
                            "decoupled model"]


def test_sequence_model_gets_start_middle_end_and_gpu_config_runs_as_cpu_copy(repo: Path) -> None:
    out = verified(repo, "python_nobatch_sequence_int32")
    assert (out["kind"], out["responses"]) == ("sequence", 3)
    assert out["notes"] == [
        "python_nobatch_sequence_int32 asks for KIND_GPU and this machine has no GPU: a copy ran "
        "with KIND_CPU (--runtime docker --gpus keeps the config)"]
    # the config on disk is left as written
    assert "KIND_GPU" in (repo / "python_nobatch_sequence_int32" / "config.pbtxt").read_text()


def test_only_optional_inputs_are_all_sent(repo: Path) -> None:
    # INPUT0 = INPUT1 = 1 sent: 1 + 1 (with neither, the model would answer 5 + 5)
    expect = repo.parent / "optional.expect.json"
    expect.write_text(json.dumps({"OUTPUT0": [2], "OUTPUT1": [0]}))
    out = verified(repo, "optional", "--expect", str(expect))
    assert out["warnings"] == [] and out["outputs"] == ["OUTPUT0", "OUTPUT1"]


def test_bf16_travels_as_binary_tensors(repo: Path) -> None:
    out = verified(repo, "identity_bf16")
    assert out["outputs"] == ["OUTPUT0"] and out["warnings"] == []


def test_auto_complete_config_model_is_asked_for_its_completed_config(repo: Path) -> None:
    # config.pbtxt names no inputs: the request comes from the config the server completed
    out = verified(repo, "nobatch_auto_complete")
    assert out["outputs"] == ["OUTPUT0", "OUTPUT1"]


def test_bls_model_loads_its_callee_and_a_shape_mismatch_is_a_warning(repo: Path) -> None:
    out = verified(repo, "async_execute_decouple_bls")
    assert out["callees"] == ["async_execute_decouple"]
    assert (out["kind"], out["responses"]) == ("decoupled", 1)
    assert out["warnings"] == [
        "output DUMMY_OUT: shape [1], config says [-1, 1] (Triton serves it; clients that trust "
        "the config may not)"]


def test_bls_model_calling_a_model_named_in_its_input(repo: Path) -> None:
    """python_backend's BLS example calls the model named by its MODEL_NAME input: --with names
    it, and the string input named like a model gets that name."""
    expect = repo.parent / "add_sub.expect.json"
    expect.write_text(json.dumps({"OUTPUT0": [2, 2, 2, 2], "OUTPUT1": [0, 0, 0, 0]}))
    out = verified(repo, "bls_sync", "--with", "add_sub", "--expect", str(expect))
    assert out["callees"] == ["add_sub"]
    res = run_cli("verify", repo / "bls_sync", "--triton", "24.10")
    assert res.exit_code == ExitCode.VERIFY_INPUTS
    beside = ", ".join(sorted(p.name for p in repo.iterdir()
                              if p.name != "bls_sync" and (p / "config.pbtxt").is_file()))
    assert error_line(res.stderr) == (
        "error: bls_sync loaded; its input MODEL_NAME names the model it calls (model.py:100), "
        f"and no model is known to send: name one with --with MODEL (beside it: {beside})")


def test_a_bls_model_in_a_named_file_is_named_by_that_file(repo: Path) -> None:
    """With config.pbtxt's default_model_filename, the code Triton loads is that file: the
    line verify points at is in it, not in a model.py there is none of."""
    named = repo / "bls_named"
    shutil.copytree(repo / "bls_sync", named, symlinks=True)
    try:
        (named / "1" / "model.py").rename(named / "1" / "bls.py")
        config = (named / "config.pbtxt").read_text().replace('name: "bls_sync"',
                                                             'name: "bls_named"')
        (named / "config.pbtxt").write_text(config + '\ndefault_model_filename: "bls.py"\n')
        res = run_cli("verify", named, "--triton", "24.10")
        assert res.exit_code == ExitCode.VERIFY_INPUTS, res.stderr
        assert error_line(res.stderr).startswith(
            "error: bls_named loaded; its input MODEL_NAME names the model it calls (bls.py:100), ")
    finally:
        shutil.rmtree(named)


def test_ensemble_loads_its_steps(repo: Path) -> None:
    out = verified(repo, "ensemble")
    assert out["callees"] == ["add_sub_1", "add_sub_2"]
    assert out["outputs"] == ["OUTPUT0", "OUTPUT1"]


def test_missing_callee_is_named(repo: Path, tmp_path: Path) -> None:
    copy = tmp_path / "models"
    copy.mkdir()
    shutil.copytree(repo / "async_execute_decouple_bls", copy / "async_execute_decouple_bls",
                    symlinks=True)
    res = run_cli("verify", copy / "async_execute_decouple_bls", "--triton", "24.10",
                  "--with", "postprocess")
    assert res.exit_code == ExitCode.VERIFY_LOAD == 11
    assert error_line(res.stderr) == (
        "error: async_execute_decouple_bls calls 'async_execute_decouple', 'postprocess', which "
        f"are not in the repository {copy}: put them beside async_execute_decouple_bls (a model "
        "dir with config.pbtxt)")


def test_a_callee_without_its_model_file_or_environment_is_named(repo: Path,
                                                                  tmp_path: Path) -> None:
    """Seen before a server starts: Triton's own words would be about a canonical path."""
    copy = tmp_path / "models"
    copy.mkdir()
    for name in ("async_execute_decouple_bls", "async_execute_decouple"):
        shutil.copytree(repo / name, copy / name, symlinks=True)
    (copy / "async_execute_decouple" / "1" / "model.py").unlink()
    res = run_cli("verify", copy / "async_execute_decouple_bls", "--triton", "24.10")
    assert res.exit_code == ExitCode.VERIFY_LOAD
    assert error_line(res.stderr) == (
        "error: async_execute_decouple_bls calls async_execute_decouple, whose model file "
        "async_execute_decouple/1/model.py is missing")
    shutil.copy(repo / "async_execute_decouple" / "1" / "model.py",
                copy / "async_execute_decouple" / "1" / "model.py")
    shutil.rmtree(copy / "async_execute_decouple" / "tritonpack-env")
    res = run_cli("verify", copy / "async_execute_decouple_bls", "--triton", "24.10")
    assert res.exit_code == ExitCode.VERIFY_LOAD
    assert error_line(res.stderr) == (
        "error: async_execute_decouple_bls calls async_execute_decouple, which is not packed: its "
        "EXECUTION_ENV_PATH names async_execute_decouple/tritonpack-env, which does not exist")


def test_a_timeout_during_inference_is_an_inference_failure(repo: Path) -> None:
    res = run_cli("verify", repo / "async_execute_decouple", "--triton", "24.10", "--timeout", "5",
                  "--inputs", str(FIXTURES / "public_inputs" / "wait30.json"))
    assert res.exit_code == ExitCode.VERIFY_INFER == 12
    assert error_line(res.stderr) == "error: async_execute_decouple did not answer within 5s"


FAILING = {  # NVIDIA's qa models that cannot answer here, each with its true reason
    "custom_metrics": (ExitCode.VERIFY_INFER,
                       "tritonserver dropped the connection while custom_metrics ran: tritonserver "
                       "crashed while the model used custom metrics (pb_utils.MetricFamily: the "
                       "server's log ends in metric_family.cc)"),
    "multi_file": (ExitCode.MODEL_BUG,
                   "multi_file/1/model.py:38 execute() returns no responses: multi_file is not "
                   "decoupled, so no request is ever answered (a bug in the model, not in its "
                   "inputs)"),
}
# custom_metrics' execute() runs Triton's metric unit tests: most runs take the server down in
# metric_family.cc; when one does not, its FP16 answer to an FP32 output is the true reason
CUSTOM_METRICS_ANSWERED = (ExitCode.VERIFY_INFER, "custom_metrics answered wrongly: output "
                           "OUTPUT0: datatype FP16, config says FP32")


def test_the_repository_verifies_as_a_whole(packed: tuple[Path, dict[str, Any], int]) -> None:
    """`tritonpack REPO --verify`: every packed model, and the ensemble with its steps
    (`--with add_sub`: the model bls_sync calls by the name given in its input); the two qa
    models that cannot answer are named with their reasons (multi_file only tests imports at
    load; custom_metrics takes the server down)."""
    repo, out, exit_code = packed  # the run is the module's fixture: one pack of the repository
    assert sorted(v["model"] for v in out["verified"]) == sorted(
        p.name for p in PUBLIC.iterdir() if p.is_dir() and p.name not in FAILING), out["failed"]
    failed = {f["name"]: (f["exit_code"], f["message"]) for f in out["failed"]}
    if failed.get("custom_metrics") == CUSTOM_METRICS_ANSWERED:  # the server survived this time
        failed["custom_metrics"] = FAILING["custom_metrics"]
    assert failed == FAILING
    assert exit_code == min(code for code, _ in FAILING.values())
    # what the servers loaded: environments whose files are hard links to the cache entry of
    # their lock (one environment on disk per lock, not one per model)
    envs = [repo / v["model"] / "tritonpack-env" for v in out["verified"]
            if v["model"] != "ensemble"]  # an ensemble runs no Python: it has no environment
    entries = {(env / "lib" / "python3.10" / "os.py").stat().st_ino for env in envs}
    assert len(entries) == len({(env / "tritonpack.json").read_bytes() for env in envs}) < len(envs)


def test_iterative_sequence_gets_one_request_without_sequence_flags(repo: Path) -> None:
    """sequence_batching { iterative_sequence: true }: the model reschedules the request itself;
    a start/middle/end sequence would be refused ("must specify the START flag")."""
    out = verified(repo, "iterative_sequence")
    assert (out["kind"], out["responses"], out["outputs"]) == (
        "decoupled iterative sequence", 1, ["OUT"])


def test_detection_postprocessing_gets_score_maps_as_large_as_its_image(repo: Path) -> None:
    """The tutorials' detection post-processing (OpenCV) asserts that its score and geometry
    maps agree in size: made 64x64 like the image beside them, it finds boxes and answers."""
    out = verified(repo, "detection_postprocessing")
    assert out["outputs"] == ["detection_postprocessing_output"]
    assert out["inputs"] == "made up from the config"
