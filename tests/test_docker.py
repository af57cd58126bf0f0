"""verify --runtime docker: Dockerfile.base over a Triton image, through the docker SDK.

No registry is reachable here, so the base is a stand-in Triton image built locally
(tests/docker/standin.py: the real tritonserver 24.10 on a minimal root file system);
the code path is the one users run against nvcr.io/nvidia/tritonserver. .ci/run starts
a Docker engine; without one these tests skip, saying why."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from packer.core.errors import ExitCode
from packer.verify.docker import connect

from .conftest import FIXTURES, error_line, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.server]
Copy = Callable[..., Path]
# packed once a session (conftest.packed_once): the starting point of tests about the image
PLAIN = ("plain_numpy", "--triton", "24.10", "--python-from", "auto")


def containers() -> list[str]:
    with closing(connect()) as client:
        return [c.id for c in client.containers.list(
            all=True, filters={"label": "io.tritonpack.verify"})]


def test_packed_model_verifies_in_the_image(standin_image: str, packed_copy: Copy) -> None:
    model = packed_copy(*PLAIN)
    res = run_cli("verify", model, "--runtime", "docker", "--image", standin_image, "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["runtime"] == "docker" and out["probe"]["imports"] == {"numpy": "ok"}
    assert out["probe"]["prefix"].startswith("/tmp/python_env_")
    assert containers() == []


def images() -> set[str]:
    with closing(connect()) as client:
        return {i.id for i in client.images.list(all=True)}


def test_directory_env_leaves_no_image(standin_image: str, packed_copy: Copy) -> None:
    """verify's image holds the probe: it is removed, never kept (`tritonpack image` builds
    the one a release keeps)."""
    model = packed_copy(*PLAIN, "--format", "dir")
    before = images()
    res = run_cli("verify", model, "--runtime", "docker", "--image", standin_image)
    assert res.exit_code == 0, res.stderr
    assert images() == before and containers() == []
    assert res.stdout.splitlines()[0] == (  # a stand-in image is said to be one
        f"verified plain_numpy: loads and answers (image {standin_image} (--image) standing in "
        "for target 24.10's image)")


def test_an_unreachable_registry_is_the_cause_in_the_sentence(standin_image: str,
                                                              packed_copy: Copy) -> None:
    """.invalid never resolves (RFC 2606): the engine's lookup failure is the sentence's
    cause, as `lookup nvcr.io: no such host` is where NGC cannot be reached."""
    model = packed_copy(*PLAIN)
    res = run_cli("verify", model, "--runtime", "docker", "--image",
                  "registry.invalid/tritonserver:24.10-py3")
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.RUNTIME, "error: building the verification image FROM "
        "registry.invalid/tritonserver:24.10-py3 failed: lookup registry.invalid: no such host")


@pytest.mark.parametrize(("name", "code", "start"), [
    ("hidden_import", ExitCode.VERIFY_LOAD,
     "error: hidden_import did not load: module 'yaml' is missing from the environment"),
    ("failing_execute", ExitCode.VERIFY_INPUTS,
     "error: failing_execute loaded; its execute() rejected tritonpack's made-up inputs"),
])
def test_broken_models_in_the_image(standin_image: str, tmp_path: Path,
                                    packed_once: Callable[..., Path], name: str, code: int,
                                    start: str) -> None:
    env_model = packed_once(*PLAIN, "--format", "dir")  # read only: copied below
    model = shutil.copytree(FIXTURES / "verify" / name, tmp_path / name)
    subprocess.run(["cp", "-a", env_model / "tritonpack-env", model / "tritonpack-env"], check=True)
    res = run_cli("verify", model, "--triton", "24.10", "--runtime", "docker", "--image",
                  standin_image, "--timeout", "60")
    assert res.exit_code == code
    assert error_line(res.stderr).startswith(start)
    assert containers() == []


def test_missing_base_image(standin_image: str, packed_copy: Copy) -> None:
    model = packed_copy(*PLAIN)
    res = run_cli("verify", model, "--runtime", "docker", "--image", "tritonpack-test/nope:0")
    assert res.exit_code == ExitCode.RUNTIME
    # the engine's cause is in the sentence: no registry is reachable here (a lookup that
    # fails), or the registry says the repository does not exist
    assert re.fullmatch(
        r"error: building the verification image FROM tritonpack-test/nope:0 failed: "
        r"(lookup [^ ]+: no such host|pull access denied for tritonpack-test/nope)",
        error_line(res.stderr)), res.stderr


def test_example_with_user_package_in_the_image(standin_image: str, tmp_path: Path) -> None:
    examples = shutil.copytree(Path(__file__).parents[1] / "examples", tmp_path / "examples")
    res = run_cli(examples / "image_model", "--src", examples / "shared_src", "--triton", "24.10",
                  "--python-from", "auto", "--verify", "--runtime", "docker", "--image", standin_image,
                  "--json")
    assert res.exit_code == 0, res.stderr
    probe = json.loads(res.stdout)["verify"]["probe"]
    assert probe["imports"] == {"PIL": "ok", "numpy": "ok", "preproc": "ok", "yaml": "ok"}
