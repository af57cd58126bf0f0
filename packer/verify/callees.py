"""The models a model calls: an ensemble's steps (from its config) and, for BLS, the literal
names passed as ``model_name=`` in its code (model.py, or the config's
default_model_filename; read with ``ast``, never run)."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any


def ensemble_steps(config: Any) -> list[str]:
    """The model names of an ensemble's steps (a ModelConfig), in order, once each."""
    return list(dict.fromkeys(s.model_name for s in config.ensemble_scheduling.step))


def bls_callees(model_py: Path) -> list[str]:
    """String constants passed as ``model_name=`` to any call (pb_utils.InferenceRequest, and
    helpers of the same keyword) in ``model_py``; names computed at run time are not seen."""
    try:
        tree = ast.parse(model_py.read_bytes(), filename=str(model_py))
    except (OSError, SyntaxError, ValueError):
        return []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "model_name" and isinstance(kw.value, ast.Constant) and \
                        isinstance(kw.value.value, str) and kw.value.value:
                    names.append(kw.value.value)
    return list(dict.fromkeys(names))


def _direct(model: Path) -> list[str]:
    from ..scan.model import model_file_of, read_config

    _, config = read_config(model / "config.pbtxt")
    names = ensemble_steps(config)
    # the code the backend loads: default_model_filename when set (handler.py), else model.py
    code = model_file_of(config, model / "config.pbtxt")
    for version in sorted(p for p in model.iterdir() if p.is_dir()):
        if (version / code).is_file():
            names += bls_callees(version / code)
    return names


def closure(model: Path, extra: tuple[str, ...] = ()) -> tuple[list[Path], list[str]]:
    """(callee model dirs beside ``model``, names not there): the models ``model`` calls, the
    models those call, and ``extra`` (--with), each once."""
    repo = model.parent
    found: list[Path] = []
    missing: list[str] = []
    todo = [*_direct(model), *extra]
    seen = {model.name}
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        path = repo / name
        if (path / "config.pbtxt").is_file():
            found.append(path)
            todo += _direct(path)
        else:
            missing.append(name)
    return found, missing


# the file Triton loads for each backend or platform when default_model_filename is not set
_MODEL_FILES = {"python": "model.py", "onnxruntime": "model.onnx", "pytorch": "model.pt",
                "tensorrt": "model.plan", "openvino": "model.xml",
                "tensorflow": "model.savedmodel", "onnxruntime_onnx": "model.onnx",
                "pytorch_libtorch": "model.pt", "tensorrt_plan": "model.plan",
                "tensorflow_savedmodel": "model.savedmodel",
                "tensorflow_graphdef": "model.graphdef"}


def unservable(callee: Path) -> str | None:
    """Why Triton cannot load a model this one calls, seen without a server (a clause: "whose
    model file ... is missing", "which is not packed: ..."), or None."""
    from ..scan.model import EXECUTION_ENV_PATH, TOKEN, read_config

    _, config = read_config(callee / "config.pbtxt")
    backend = str(config.backend) or ("" if config.platform else "python")
    name = str(config.default_model_filename) or _MODEL_FILES.get(
        backend or str(config.platform), "")
    versions = sorted((p.name for p in callee.iterdir() if p.is_dir() and p.name.isdigit()),
                      key=int)
    if not name or not versions:  # an ensemble, an unknown backend; no version: the log says
        return None
    if not os.path.exists(callee / versions[-1] / name):  # a name too long: not there
        return f"whose model file {callee.name}/{versions[-1]}/{name} is missing"
    param = config.parameters.get(EXECUTION_ENV_PATH)
    value = str(param.string_value) if param is not None else ""
    if backend == "python" and value.startswith(TOKEN + "/") and \
            not (callee / value[len(TOKEN) + 1:]).exists():
        return (f"which is not packed: its EXECUTION_ENV_PATH names {callee.name}/"
                f"{value[len(TOKEN) + 1:]}, which does not exist")
    return None
