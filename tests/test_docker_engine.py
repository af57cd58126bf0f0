"""Finding the Docker engine: no engine is one clear error, and nothing is left open.

Without this check the docker SDK's client asks for the engine's API version while it is
constructed and, when nothing answers, raises with its socket still open: under
``filterwarnings = error`` that ResourceWarning failed the whole test run on a machine
with no engine."""

from __future__ import annotations

import gc
import uuid
from pathlib import Path

import pytest

from packer.core.errors import ExitCode, RuntimeMissingError
from packer.verify.docker import connect, start, start_failed


@pytest.mark.parametrize("host", ["unix://{tmp}/no-engine.sock", "tcp://127.0.0.1:9"])
def test_no_engine_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      host: str) -> None:
    address = host.format(tmp=tmp_path)
    monkeypatch.setenv("DOCKER_HOST", address)
    with pytest.raises(RuntimeMissingError) as err:
        connect()
    assert err.value.message == f"no Docker engine answers at {address}"
    assert err.value.exit_code == ExitCode.RUNTIME
    gc.collect()  # a socket left open would surface here as an unraisable ResourceWarning


_BRIDGE = ("failed to create endpoint x on network bridge: adding interface veth0 to bridge "
           "docker0 failed: could not find bridge docker0: route ip+net: no such network interface")


def test_a_refused_start_says_the_engines_reason_not_gpus() -> None:
    """Found on a fresh clone: an engine that could not attach a network said `--gpus needs
    the NVIDIA container toolkit` to a user who passed no --gpus."""
    import docker

    exc = docker.errors.APIError("500 Server Error", explanation=_BRIDGE)
    err = start_failed("starting the image", exc, gpus=False)
    assert err.message == f"starting the image failed: {_BRIDGE}"
    assert err.hint == "the Docker engine could not run a container: `docker run` shows the same"
    assert err.exit_code == ExitCode.RUNTIME


def test_a_refused_start_with_gpus_names_the_toolkit() -> None:
    import docker

    exc = docker.errors.APIError("500 Server Error",
                                 explanation="could not select device driver \"\" with "
                                             "capabilities: [[gpu]]\n" + "x" * 400)
    err = start_failed("starting the verification container", exc, gpus=True)
    assert err.hint == "--gpus needs the NVIDIA container toolkit"
    assert err.message.startswith("starting the verification container failed: could not "
                                  "select device driver \"\" with capabilities: [[gpu]] xxx")
    assert "\n" not in err.message and err.message.endswith("...")
    assert len(err.message) == len("starting the verification container failed: ") + 300


@pytest.mark.slow
@pytest.mark.server
def test_a_container_the_engine_will_not_start_is_removed(standin_image: str) -> None:
    """Found on a fresh clone: `image` whose proof container could not start left it behind
    (state Created, labelled io.tritonpack.image-proof). A GPU request on an engine without
    the NVIDIA runtime is refused at start, after the container is created."""
    from contextlib import closing

    with closing(connect()) as client:
        if "nvidia" in (client.info().get("Runtimes") or {}):
            pytest.skip("this engine has the NVIDIA runtime: a GPU request starts")
        label = f"io.tritonpack.test-start-{uuid.uuid4().hex[:12]}"
        with pytest.raises(RuntimeMissingError) as err:
            start(client, standin_image, what="starting the image", gpus=True,
                  labels={label: "1"})
        assert err.value.message.startswith("starting the image failed: ")
        assert err.value.hint == "--gpus needs the NVIDIA container toolkit"
        assert client.containers.list(all=True, filters={"label": label}) == []
