"""A package of the user's outside the model dir, and no --src: refused, with the --src to pass;
--src is remembered in the lock, so check and later runs need not repeat it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from packer.core.errors import ExitCode
from packer.lock.lockfile import read_lock

from .conftest import FIXTURES, error_line, run_cli


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = shutil.copytree(FIXTURES / "forgotten_src", tmp_path / "repo")
    (root / ".git").mkdir()
    monkeypatch.chdir(root)
    return root


def test_forgotten_src_is_refused_with_the_dir_to_pass(repo: Path) -> None:
    res = run_cli("scan", "models/clf", "-q")
    assert res.exit_code == ExitCode.RESOLVE
    assert error_line(res.stderr) == (
        "error: import 'featurize' (clf/1/model.py:4) is your own code at libs/featurize, "
        "outside the model dir: without --src it would be locked as the PyPI project 'featurize'")
    assert "hint: pass --src libs to bundle it (remembered in the lock)" in res.stderr


def test_with_src_it_is_bundled(repo: Path) -> None:
    res = run_cli("scan", "models/clf", "--src", "libs")
    assert res.exit_code == 0, res.stderr
    assert "bundled into the environment: featurize" in res.stdout


def test_a_declared_distribution_of_that_name_is_taken_at_its_word(repo: Path) -> None:
    (repo / "models/clf/tritonpack.toml").write_text('[imports]\nfeaturize = "featurize"\n')
    assert run_cli("scan", "models/clf", "-q").exit_code == 0


def test_the_example_without_src() -> None:
    res = run_cli("scan", Path(__file__).parent.parent / "examples" / "image_model", "-q")
    assert res.exit_code == ExitCode.RESOLVE
    assert "import 'preproc' (image_model/1/model.py:8) is your own code at " in res.stderr
    assert "shared_src/preproc" in res.stderr


@pytest.mark.slow
def test_src_is_remembered_by_the_lock(repo: Path) -> None:
    res = run_cli("lock", "models/clf", "--src", "libs", "--triton", "24.10", "--python-from", "auto", "-q")
    assert res.exit_code == 0, res.stderr
    assert read_lock(repo / "models/clf/tritonpack.lock").inputs["src"] == ["../../libs"]
    check = run_cli("lock", "--check", "models/clf")
    assert check.exit_code == 0, check.stderr
    scan = run_cli("scan", "models/clf")
    assert "bundled into the environment: featurize" in scan.stdout


def test_a_forgotten_module_the_import_table_knows_is_refused_too(repo: Path) -> None:
    """`inference` is also a PyPI project's module (roboflow's inference-gpu, in the import
    table): the user's own inference.py beside the models is what the import means."""
    (repo / "libs" / "inference.py").write_text("def run(x):\n    return x\n")
    code = repo / "models" / "clf" / "1" / "model.py"
    code.write_text(code.read_text().replace("from featurize import scale",
                                             "from inference import run"))
    res = run_cli("scan", "models/clf", "-q")
    assert res.exit_code == ExitCode.RESOLVE
    assert error_line(res.stderr) == (
        "error: import 'inference' (clf/1/model.py:4) is your own code at libs/inference.py, "
        "outside the model dir: without --src it would be locked as the PyPI project "
        "'inference-gpu'")
