"""Finding the Docker engine: no engine is one clear error, and nothing is left open.

Without this check the docker SDK's client asks for the engine's API version while it is
constructed and, when nothing answers, raises with its socket still open: under
``filterwarnings = error`` that ResourceWarning failed the whole test run on a machine
with no engine."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from packer.core.errors import ExitCode, RuntimeMissingError
from packer.verify.docker import connect


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
