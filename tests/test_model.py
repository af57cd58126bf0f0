"""Model discovery through the CLI: exact messages and exit codes for each broken input."""

from __future__ import annotations

from pathlib import Path

import pytest

from packer.core.errors import ExitCode, ModelError
from packer.scan.model import open_model

from .conftest import MODELS, error_line, run_cli


def test_highest_version_with_model_py_is_used(tmp_path: Path) -> None:
    model = tmp_path / "m"
    for v in ("1", "2", "10"):
        (model / v).mkdir(parents=True)
    (model / "1" / "model.py").write_text("")
    (model / "2" / "model.py").write_text("")
    (model / "config.pbtxt").write_text('backend: "python"\n')
    assert open_model(model).version == "2"  # 10 has no model.py
    assert open_model(model, 1).version == "1"
    assert open_model(model).name == "m"  # no name in config: the directory's


def test_non_python_backend_is_refused() -> None:
    res = run_cli("scan", MODELS / "onnx_backend")
    assert res.exit_code == ExitCode.MODEL == 3
    assert res.stderr.splitlines()[0] == (
        f"error: {MODELS / 'onnx_backend' / 'config.pbtxt'}: backend is 'onnxruntime': "
        "tritonpack packs Python-backend models only"
    )


def test_config_syntax_error_has_line_and_column() -> None:
    res = run_cli("scan", MODELS / "bad_config")
    assert res.exit_code == 3
    first = res.stderr.splitlines()[0]
    assert first.startswith(f"error: {MODELS / 'bad_config' / 'config.pbtxt'}:5:1: ")
    assert "Traceback" not in res.stderr


def test_user_source_syntax_error() -> None:
    res = run_cli("scan", MODELS / "syntax_error")
    assert res.exit_code == ExitCode.SCAN == 4
    assert error_line(res.stderr) == "error: syntax_error/1/model.py:5: syntax error: expected ':'"


def test_missing_dir_and_repository_mode(tmp_path: Path) -> None:
    res = run_cli("scan", tmp_path / "nope")
    assert res.exit_code == 3
    assert res.stderr.splitlines()[0] == f"error: {tmp_path / 'nope'}: no such directory"
    res = run_cli("lock", MODELS)  # scan, check, lock --check and export take a repository
    assert res.exit_code == 3
    assert res.stderr.splitlines() == [
        f"error: {MODELS} is a model repository (a directory of models), not a model directory",
        f"hint: pass one of its models ({MODELS / 'MODEL_NAME'})"]


def test_no_version_dir(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.pbtxt").write_text('backend: "python"\n')
    res = run_cli("scan", tmp_path / "m")
    assert (res.exit_code, res.stderr.splitlines()[0]) == (
        3, f"error: {tmp_path / 'm'}: no numeric version dir")


def test_default_model_filename_is_the_file_read(tmp_path: Path) -> None:
    """The Python backend loads 1/<default_model_filename>; a model.py beside it is not the
    model's code, and the message for a missing file names the configured one."""
    model = tmp_path / "m"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(
        'backend: "python"\ndefault_model_filename: "preprocess.py"\n')
    (model / "1" / "model.py").write_text("")
    res = run_cli("scan", model)
    assert res.exit_code == ExitCode.MODEL
    assert error_line(res.stderr) == f"error: {model}: no preprocess.py in 1/"
    (model / "1" / "preprocess.py").write_text("import numpy\n")
    assert open_model(model).model_py == model / "1" / "preprocess.py"
    res = run_cli("scan", model)
    assert error_line(res.stderr) == (
        "error: m/1/preprocess.py: defines no TritonPythonModel class: Triton's Python backend "
        "loads that class from preprocess.py")
    (model / "1" / "preprocess.py").write_text(
        "import numpy\n\n\nclass TritonPythonModel:\n    def execute(self, requests):\n"
        "        return []\n")
    res = run_cli("scan", model)
    assert res.exit_code == 0, res.stderr
    assert "numpy" in res.stdout


def test_a_named_file_in_the_version_dir_spelled_with_a_dot_folder_is_read(tmp_path: Path) -> None:
    """default_model_filename "./code.py": the backend opens 1/./code.py, the version dir's
    code.py, so the model is read from it (it was refused as 'not a file name', exit 3);
    "./sub/code.py" and "/code.py" still are."""
    model = tmp_path / "m"
    (model / "1").mkdir(parents=True)
    (model / "1" / "code.py").write_text("import numpy\n")
    (model / "config.pbtxt").write_text('backend: "python"\ndefault_model_filename: "./code.py"\n')
    opened = open_model(model)
    assert (opened.model_file, opened.model_py) == ("code.py", model / "1" / "code.py")
    for name in ("./sub/code.py", "/code.py", "code.py/", "./"):
        (model / "config.pbtxt").write_text(f'backend: "python"\ndefault_model_filename: "{name}"\n')
        with pytest.raises(ModelError, match="is not a file name"):
            open_model(model)
