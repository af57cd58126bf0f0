"""tritonpack image: the image a release keeps serves the user's models.

The base is the stand-in Triton image (tests/docker/standin.py: the real tritonserver 24.10
on a minimal root file system); .ci/run starts a Docker engine. Each test then starts the
kept image itself, as a deployment would (its own command, nothing overridden), and asks it
for readiness and an inference over HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from packer.core.errors import ExitCode
from packer.imaging import PROOF_LABEL
from packer.lock.lockfile import read_lock
from packer.verify.docker import connect
from packer.verify.runtime import free_port

from .conftest import FIXTURES, error_line, run_cli, scratch

TAG = "tritonpack-test/served:{}"


def _http(url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET",  # noqa: S310
                                     headers={"Content-Type": "application/json"})
    try:  # the container's port on loopback, published by the test
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, None


def proof_containers() -> list[str]:
    with closing(connect()) as client:
        return [c.id for c in client.containers.list(all=True, filters={"label": PROOF_LABEL})]


@pytest.fixture
def serve() -> Iterator[Any]:
    """Run a kept image as a deployment would (`docker run -p`), give its HTTP base URL once
    the server is live, then remove the container and the image."""
    started: list[tuple[Any, str]] = []

    def run(tag: str) -> str:
        client = connect()
        port = free_port()
        container = client.containers.run(tag, detach=True, shm_size="256m",
                                          ports={"8000/tcp": ("127.0.0.1", port)})
        started.append((container, tag))
        client.close()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if _http(url + "/v2/health/live")[0] == 200:
                    return url
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{tag} did not start: {container.logs().decode()[-2000:]}")

    yield run
    with closing(connect()) as client:
        for container, tag in started:
            container.remove(force=True)
            client.images.remove(tag, force=True)


def _infer(url: str, model: str) -> list[float]:
    status, body = _http(f"{url}/v2/models/{model}/infer", {"inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}]})
    assert status == 200, (model, status)
    return [float(v) for v in body["outputs"][0]["data"]]


@pytest.fixture(scope="module")
def packed_repo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                session_cache: Path) -> Path:
    """The test repository without its ONNX model (the stand-in has only the Python
    backend): three Python models (one bundles a --src package) and an ensemble."""
    import os

    os.environ["TRITONPACK_CACHE"] = str(session_cache)
    repo = scratch(request, tmp_path_factory, "image") / "models"
    shutil.copytree(FIXTURES / "repo", repo, ignore=shutil.ignore_patterns("delta_onnx"))
    res = run_cli(repo, "--triton", "24.10", "--python-from", "auto", "-q")
    assert res.exit_code == 0, res.stderr
    return repo


@pytest.mark.slow
@pytest.mark.server
def test_image_of_a_repository_serves_every_model(standin_image: str, packed_repo: Path,
                                                  serve: Any) -> None:
    tag = TAG.format("repo")
    res = run_cli("image", packed_repo, "--image", standin_image, "--tag", tag, "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["tag"] == tag and out["release"] == "24.10" and out["passed"] is True
    assert [(m["name"], m["answered"]) for m in out["models"]] == [
        ("alpha", True), ("beta", True), ("gamma", True), ("pipeline", True)]
    labels = out["labels"]
    for name in ("alpha", "beta", "gamma"):
        assert labels[f"io.tritonpack.lock.{name}"] == read_lock(
            packed_repo / name / "tritonpack.lock").content_hash
    assert labels["io.tritonpack.release"] == "24.10"
    assert proof_containers() == []

    with closing(connect()) as client:  # the labels are on the image a registry would show
        assert client.images.get(tag).labels["io.tritonpack.release"] == "24.10"
    url = serve(tag)
    status, index = _http(url + "/v2/repository/index", {})
    assert status == 200
    assert sorted((m["name"], m.get("state")) for m in index) == [
        ("alpha", "READY"), ("beta", "READY"), ("gamma", "READY"), ("pipeline", "READY")]
    assert _http(url + "/v2/health/ready")[0] == 200  # no tritonpack_probe, nothing unloaded
    assert _infer(url, "alpha") == [2.0, 3.0, 4.0, 5.0]
    assert _infer(url, "pipeline") == [2.0, 3.0, 4.0, 5.0]
    assert len(_infer(url, "gamma")) == 4


@pytest.mark.slow
@pytest.mark.server
def test_image_of_one_model_brings_the_models_it_calls(standin_image: str, packed_repo: Path,
                                                       serve: Any) -> None:
    tag = TAG.format("pipeline")
    res = run_cli("image", packed_repo / "pipeline", "--image", standin_image, "--tag", tag)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines()[0] == (
        f"image {tag}: serves 2 models (Triton 24.10, FROM {standin_image})")
    url = serve(tag)
    status, index = _http(url + "/v2/repository/index", {})
    assert status == 200 and sorted(m["name"] for m in index) == ["alpha", "pipeline"]
    assert _infer(url, "pipeline") == [2.0, 3.0, 4.0, 5.0]


@pytest.mark.slow
@pytest.mark.server
def test_a_model_that_does_not_load_tags_nothing(standin_image: str, packed_repo: Path,
                                                 tmp_path: Path) -> None:
    model = shutil.copytree(FIXTURES / "verify" / "hidden_import", tmp_path / "hidden_import")
    subprocess.run(["cp", "-a", packed_repo / "alpha" / "tritonpack-env.tar.gz",
                    model / "tritonpack-env.tar.gz"], check=True)
    config = model / "config.pbtxt"
    config.write_text(config.read_text().replace("tritonpack-env\"", "tritonpack-env.tar.gz\""))
    with closing(connect()) as client:
        before = {i.id for i in client.images.list(all=True)}
    tag = TAG.format("broken")
    res = run_cli("image", model, "--triton", "24.10", "--image", standin_image, "--tag", tag,
                  "--timeout", "90")
    assert res.exit_code == ExitCode.VERIFY_LOAD, res.stderr
    assert error_line(res.stderr) == ("error: hidden_import does not load in the image: module "
                                      "'yaml' is missing from the environment")
    with closing(connect()) as client:
        assert {i.id for i in client.images.list(all=True)} == before  # nothing tagged, no debris
    assert proof_containers() == []


def test_a_gpu_model_needs_gpus_to_be_proven(tmp_path: Path) -> None:
    res = run_cli("image", FIXTURES / "image" / "gpu_model", "--tag", TAG.format("gpu"))
    assert res.exit_code == ExitCode.RUNTIME
    assert error_line(res.stderr) == (
        "error: gpu_model asks for KIND_GPU: proving the image needs a GPU")


def test_a_tag_that_is_no_image_name_is_refused() -> None:
    res = run_cli("image", FIXTURES / "models" / "plain_numpy", "--tag", "Bad Name:1")
    assert res.exit_code == ExitCode.USAGE
    assert "Invalid value for '--tag': 'Bad Name:1' is not an image name" in res.stderr


def test_verify_refuses_tag_and_names_image() -> None:
    res = run_cli("verify", FIXTURES / "models" / "plain_numpy", "--runtime", "docker",
                  "--tag", "registry.example.com/m:1")
    assert res.exit_code == ExitCode.USAGE
    assert "build the serving image with `tritonpack image MODEL_DIR --tag NAME`" in res.stderr
