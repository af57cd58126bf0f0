"""The verification repository's layout questions, answered from the files on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from packer.core.errors import VerifyLoadError
from packer.verify.layout import python_step

STEP = ('name: "{name}"\nbackend: "python"\n{named}parameters {{ key: "EXECUTION_ENV_PATH" '
        'value {{ string_value: "$$TRITON_MODEL_DIRECTORY/../shared-env" }} }}\n')


def _step(repo: Path, name: str, code: str) -> Path:
    step = repo / name
    (step / "1").mkdir(parents=True)
    named = f'default_model_filename: "{code}"\n' if code != "model.py" else ""
    (step / "config.pbtxt").write_text(STEP.format(name=name, named=named))
    (step / "1" / code).write_text("class TritonPythonModel:\n    pass\n")
    return step


def test_an_ensembles_python_step_in_a_named_file_is_found(tmp_path: Path) -> None:
    """An ensemble whose Python step's code is 1/handler.py (default_model_filename) has a
    step to verify: it was 'no step of the ensemble ... is a packed Python model' (exit 11)."""
    (tmp_path / "shared-env").mkdir()
    step = _step(tmp_path, "pre", "handler.py")
    assert python_step(tmp_path / "ens", [step]) == step
    (step / "1" / "handler.py").rename(step / "1" / "model.py")  # not the file Triton loads
    with pytest.raises(VerifyLoadError, match="no step of the ensemble ens is a packed Python"):
        python_step(tmp_path / "ens", [step])
