"""The bench runs from any checkout whose tritonpack is installed, and says why it skips the
heavy model instead of depending on one machine's wheel directory."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

RUN = Path(__file__).resolve().parent.parent / "bench" / "run.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_from_another_directory(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(RUN), "--help"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert "--find-links DIR" in res.stdout


def test_torch_from_a_wheel_directory(tmp_path: Path) -> None:
    bench = _bench()
    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    assert bench.torch_source(str(tmp_path)) == f"the CPU wheel in {tmp_path}"
    assert bench.MODELS["heavy"][2] == (str(tmp_path),)


def test_no_cpu_torch_skips_the_heavy_model(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _bench()

    def unreachable(*args: object, **kw: object) -> socket.socket:
        raise OSError("network unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    assert bench.torch_source(str(tmp_path)) is None  # an empty directory, no index
    assert bench.torch_source(None) is None
