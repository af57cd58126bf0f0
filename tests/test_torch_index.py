"""An unreachable PyTorch wheel index: named (not the reachable one); torch from the configured
indexes when their build matches the target, else the choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from packer.core.errors import ExitCode
from packer.lock.lockfile import read_lock
from packer.lock.pypi import Indexes, failed_index

from .conftest import copy_model, error_line, run_cli
from .wheels import make_wheel

CLOSED = "http://127.0.0.1:9/whl"  # nothing listens on the discard port
TORCH = "2.13.0+tritonpacktest"  # a tiny wheel made here: no test resolves PyPI's torch


def torch_model(tmp_path: Path) -> tuple[Path, Path, Path]:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "torch.toml").write_text(f'base = "{CLOSED}"\n')
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "torch", {"torch/__init__.py": "__version__ = '2.13.0'\n"}, version=TORCH)
    model = copy_model("plain_numpy", tmp_path)
    (model / "1" / "model.py").write_text("import numpy\nimport torch\n\n\n"
                                          "class TritonPythonModel:\n    pass\n")
    (model / "tritonpack.toml").write_text(f'[requirements]\npypi = ["torch=={TORCH}"]\n')
    return model, recipes, wheels


@pytest.mark.slow
def test_unreachable_torch_index_falls_back_when_pypis_build_matches(tmp_path: Path) -> None:
    model, recipes, wheels = torch_model(tmp_path)
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto", "--recipes", recipes,
                  "--find-links", wheels)
    assert res.exit_code == 0, res.stderr
    assert (f"note  the PyTorch index {CLOSED}/cu126 is unreachable: torch comes from the "
            "configured indexes (https://pypi.org/simple) instead, as on PyPI a CUDA 12 build, "
            "compatible with Triton 24.10's CUDA 12.6") in res.stderr
    lock = read_lock(model / "tritonpack.lock")
    assert {p.name: p.version for p in lock.pypi}["torch"] == TORCH
    assert lock.inputs["torch_index_unreachable"] == f"{CLOSED}/cu126"
    assert f"{CLOSED}/cu126" not in lock.inputs["indexes"]["extra_index_urls"]
    assert lock.inputs["index_options"] == {"find-links": [str(wheels)]}
    check = run_cli("lock", "--check", model, "--recipes", recipes)  # --find-links remembered
    assert check.exit_code == 0, check.stderr


@pytest.mark.slow
def test_unreachable_torch_index_for_another_cuda_is_refused_with_choices(tmp_path: Path) -> None:
    model, recipes, wheels = torch_model(tmp_path)
    res = run_cli("lock", model, "--triton", "26.10", "--python-from", "auto", "--recipes", recipes,
                  "--find-links", wheels)
    assert (res.exit_code, error_line(res.stderr)) == (ExitCode.RESOLVE, (
        f"error: the PyTorch index {CLOSED}/cu130 is unreachable, and the configured indexes "
        "hold no torch known to match Triton 26.10 (CUDA 13.4.3, --torch cu130): PyPI's Linux "
        "x86_64 torch is a CUDA 12 build"))
    assert ("hint: choose: --torch cpu or --torch cuXYZ (another PyTorch index), or --torch none "
            "with --index-url/--find-links of a mirror or wheelhouse that holds torch") in res.stderr
    assert not (model / "tritonpack.lock").exists()


@pytest.mark.slow
def test_an_unreachable_extra_index_is_the_one_named(tmp_path: Path) -> None:
    model = copy_model("plain_numpy", tmp_path)
    res = run_cli("lock", model, "--python-from", "auto", "--extra-index-url", "http://127.0.0.1:9/extra")
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.RESOLVE, "error: the package index http://127.0.0.1:9/extra is unreachable")


@pytest.mark.parametrize(("output", "named"), [
    ("cause: Failed to fetch: http://127.0.0.1:9/whl/cu126/torch/", "http://127.0.0.1:9/whl/cu126"),
    ("error sending request for url (https://mirror.example/simple/numpy/)",
     "https://mirror.example/simple"),
    ("Connection refused", "https://pypi.org/simple"),
])
def test_failed_index(output: str, named: str) -> None:
    indexes = Indexes(extra_index_urls=("http://127.0.0.1:9/whl/cu126",
                                        "https://mirror.example/simple"))
    assert failed_index(output, indexes) == named
