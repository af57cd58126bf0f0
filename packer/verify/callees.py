"""The models a model calls: an ensemble's steps (from its config) and, for BLS, the literal
names passed as ``model_name=`` in model.py (read with ``ast``, never run)."""

from __future__ import annotations

import ast
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
    from ..scan.model import read_config

    _, config = read_config(model / "config.pbtxt")
    names = ensemble_steps(config)
    for version in sorted(p for p in model.iterdir() if p.is_dir()):
        if (version / "model.py").is_file():
            names += bls_callees(version / "model.py")
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
