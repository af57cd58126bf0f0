"""The models a model calls, read from its config and its code (verify loads them beside it)."""

from __future__ import annotations

from pathlib import Path

from packer.verify.callees import closure, unservable

BLS = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceRequest(model_name="add_sub", requested_output_names=["OUT"],
                                          inputs=[]).exec() for _ in requests]
'''


def _model(repo: Path, name: str, code: str = "model.py", body: str = "") -> Path:
    path = repo / name
    (path / "1").mkdir(parents=True)
    named = f'default_model_filename: "{code}"\n' if code != "model.py" else ""
    (path / "config.pbtxt").write_text(f'name: "{name}"\nbackend: "python"\n{named}')
    (path / "1" / code).write_text(body)
    return path


def test_a_bls_model_in_a_named_file_calls_the_models_that_file_names(tmp_path: Path) -> None:
    """With default_model_filename the backend loads that file, and the models it calls are
    read there: read from a model.py it does not have, verify loaded none of them."""
    _model(tmp_path, "add_sub")
    caller = _model(tmp_path, "bls_named", "bls.py", BLS)
    assert closure(caller) == ([tmp_path / "add_sub"], [])
    (caller / "1" / "model.py").write_text(BLS.replace("add_sub", "other"))  # not loaded
    assert closure(caller) == ([tmp_path / "add_sub"], [])


def test_a_callee_whose_named_file_cannot_exist_is_said_missing(tmp_path: Path) -> None:
    """A called model's default_model_filename longer than a file name may be: its file is
    missing, said before a server starts (Path.exists raised 'File name too long': exit 70)."""
    callee = tmp_path / "scorer"
    (callee / "1").mkdir(parents=True)
    long = "m" * 300 + ".onnx"
    (callee / "config.pbtxt").write_text(
        f'backend: "onnxruntime"\ndefault_model_filename: "{long}"\n')
    assert unservable(callee) == f"whose model file scorer/1/{long} is missing"
