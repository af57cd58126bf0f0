"""The cause named is the cause: each failure here used to be reported as something else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from packer.core.errors import ExitCode

from .conftest import error_line, run_cli, snapshot

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
