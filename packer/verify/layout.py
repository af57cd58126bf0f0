"""The verification repository: the model, the models it calls and tritonpack's probe, each
linked in (never copied), or rewritten where the config cannot load here (KIND_GPU, no GPU)."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from ..core.errors import TritonPackError, VerifyLoadError
from ..scan.model import EXECUTION_ENV_PATH, TOKEN, model_file_of, read_config
from ..scan.modelconfig import enum_value

_GPUS = re.compile(r"\bgpus\s*:\s*\[[^\]]*\]\s*,?")


def cpu_config(text: str) -> str:
    """config.pbtxt text with every KIND_GPU instance group as KIND_CPU (and no gpus list)."""
    return _GPUS.sub("", re.sub(r"\bKIND_GPU\b", "KIND_CPU", text))


def place(repo: Path, model: Path, *, cpu: bool) -> bool:
    """Put ``model`` into the verification repository: a link, or, when ``cpu`` and its config
    asks for KIND_GPU, a directory of links with a KIND_CPU config. True if it was rewritten."""
    _, config = read_config(model / "config.pbtxt")
    gpu = enum_value("ModelInstanceGroup.Kind", "KIND_GPU")
    if not cpu or not any(g.kind == gpu for g in config.instance_group):
        os.symlink(model, repo / model.name)
        return False
    copy = repo / model.name
    copy.mkdir()
    for child in model.iterdir():
        if child.name != "config.pbtxt":
            os.symlink(child, copy / child.name)
    text = cpu_config((model / "config.pbtxt").read_text(encoding="utf-8"))
    (copy / "config.pbtxt").write_text(text, encoding="utf-8")
    return True


def link_shared_env(repo: Path, model: Path, env: Path) -> None:
    """--shared-env: the env sits where the repository has it, outside the model dir."""
    shared = Path(os.path.relpath(env.resolve(), model.parent))
    if not env.resolve().is_relative_to(model) and ".." not in shared.parts \
            and not (repo / shared).exists():
        (repo / shared).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(env.resolve(), repo / shared)


def shared_env_of(model: Path) -> Path | None:
    """A callee's environment when it lies outside its own dir (--shared-env), else None."""
    with contextlib.suppress(TritonPackError):
        _, config = read_config(model / "config.pbtxt")
        param = config.parameters.get(EXECUTION_ENV_PATH)
        value = str(param.string_value) if param is not None else ""
        if value.startswith(TOKEN + "/"):
            return model / value[len(TOKEN) + 1:]
    return None


def is_ensemble(model: Path) -> bool:
    """Whether ``model`` is an ensemble (no model.py, no environment: its steps have them)."""
    if not (model / "config.pbtxt").is_file():
        return False
    _, config = read_config(model / "config.pbtxt")
    return bool(config.platform == "ensemble")


def _has_code(step: Path) -> bool:
    """A version dir of ``step`` holds the code the Python backend loads: model.py, or the
    config's default_model_filename (handler.py) when set."""
    _, config = read_config(step / "config.pbtxt")
    code = model_file_of(config, step / "config.pbtxt")
    return any(v.is_dir() and (v / code).is_file() for v in step.iterdir())


def python_step(ensemble: Path, steps: list[Path]) -> Path:
    """The first step of an ensemble that is a Python model with an environment."""
    for step in steps:
        if shared_env_of(step) is not None and _has_code(step):
            return step
    raise VerifyLoadError(
        f"no step of the ensemble {ensemble.name} is a packed Python model: nothing to verify",
        hint=f"pack its Python steps first: tritonpack {ensemble.parent}")
