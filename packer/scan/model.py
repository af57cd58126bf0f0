"""Model directory discovery and config.pbtxt reading, through Triton's ModelConfig message
(declared in scan/modelconfig.py)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..core.errors import ModelError
from ..core.fsguard import not_regular
from .modelconfig import new_config

CONFIG_NAME = "config.pbtxt"
MODEL_FILE = "model.py"
EXECUTION_ENV_PATH = "EXECUTION_ENV_PATH"
TOKEN = "$$TRITON_MODEL_DIRECTORY"  # noqa: S105 (a path token, not a secret)

_NAME_MAX = 255  # bytes in one file name (Linux's NAME_MAX)
_PARSE_POS = re.compile(r"^(\d+):(\d+)\s*:\s*(.*)$", re.S)


_TEMPLATE = re.compile(r"^[^#\n]*\$\{[^}\n]*\}", re.M)  # ${name}, outside a comment


def parse_config(text: str, path: Path) -> Any:
    """Parse config.pbtxt text into a ModelConfig; errors carry file:line:col."""
    from google.protobuf import text_format  # with the message, not at every start-up

    from .configerror import explain

    msg = new_config()
    if _TEMPLATE.search(text):
        raise ModelError(f"{path}: config.pbtxt is a template with ${{...}} placeholders: fill it "
                         "first", hint="e.g. tensorrtllm_backend's tools/fill_template.py")
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as exc:
        match = _PARSE_POS.match(str(exc))
        if match:
            line, col, why = match.groups()
            said = explain(why, text, int(line), int(col))
            said = said if len(said) <= 300 else said[:300] + "…"  # a 5 MB line is not quoted
            raise ModelError(
                f"{path}:{line}:{col}: {said}",
                hint="config.pbtxt is protobuf text format (Triton's ModelConfig message)",
                detail=str(exc)[:2000],
            ) from exc
        raise ModelError(f"{path}: {exc}") from exc
    return msg


def read_config(path: Path) -> tuple[str, Any]:
    try:
        raw = path.read_bytes()
    except PermissionError as exc:
        raise ModelError(f"{path}: permission denied") from exc
    if raw.startswith(b"\xef\xbb\xbf"):  # tritonserver 24.10, tried: "failed to read text proto"
        raise ModelError(f"{path}: starts with a UTF-8 byte-order mark, which Triton refuses "
                         "(it fails to parse the config)",
                         hint="save config.pbtxt as UTF-8 without a BOM")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    return text, parse_config(text, path)


@dataclass(frozen=True)
class ModelDir:
    """A Triton Python-backend model directory, as found on disk."""

    path: Path
    name: str
    version: str
    config_text: str
    config: Any  # a ModelConfig (scan/modelconfig.py)
    notes: tuple[str, ...] = ()  # what Triton accepts though config.pbtxt does not say it
    model_file: str = MODEL_FILE  # default_model_filename: the file the Python backend loads

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def version_dir(self) -> Path:
        return self.path / self.version

    @property
    def model_py(self) -> Path:
        return self.version_dir / self.model_file

    def warnings(self) -> tuple[str, ...]:
        """What Triton would refuse in this layout, though the model may be deployed under
        another directory name than the one it is packed in (a CI checkout, a temp dir)."""
        declared = str(self.config.name)
        if declared and declared != self.path.name:
            return (f"config.pbtxt names the model '{declared}' but its directory is "
                    f"'{self.path.name}': Triton loads it only from a directory named "
                    f"'{declared}' (directory name must equal model name)",)
        return ()

    def env_path(self) -> str | None:
        """The current EXECUTION_ENV_PATH value, if any."""
        params = self.config.parameters
        if EXECUTION_ENV_PATH in params:
            return str(params[EXECUTION_ENV_PATH].string_value)
        return None

    def env_location(self) -> EnvLocation:
        """Where EXECUTION_ENV_PATH points, resolved as Triton resolves it (the one place that
        does): the token is substituted only at the start of the value, so anything else is
        not an environment of this model dir; then it must exist and be a directory or a
        regular file (an archive)."""
        value = self.env_path()
        if not value:
            return EnvLocation(value, None, "unset")
        if not value.startswith(TOKEN + "/"):
            return EnvLocation(value, None, "no-token")
        path = self.path / value[len(TOKEN) + 1:]
        if not path.exists():
            return EnvLocation(value, path, "missing")
        if not path.is_dir() and (kind := not_regular(path)) is not None:
            return EnvLocation(value, path, "not-env", kind)
        return EnvLocation(value, path, None)


@dataclass(frozen=True)
class EnvLocation:
    """config.pbtxt's EXECUTION_ENV_PATH, resolved; callers word the fault for their command."""

    value: str | None  # as written in config.pbtxt (None: not set)
    path: Path | None  # the environment it names, once the value starts with the token
    fault: Literal["unset", "no-token", "missing", "not-env"] | None
    kind: str | None = None  # what the path is instead ("not-env"): a FIFO, a device, ...


def _versions(path: Path) -> list[str]:
    try:
        entries = sorted(path.iterdir())
    except PermissionError as exc:
        raise ModelError(f"{path}: permission denied") from exc
    return sorted((p.name for p in entries if p.is_dir() and p.name.isdigit()), key=int)


def _no_config_hint(path: Path) -> str:
    """What to write when config.pbtxt is missing. Beside a model.py, one line is enough:
    Triton fills in the rest (inputs, outputs, batching) from its ``auto_complete_config``,
    and tritonpack needs the file to point at the environment."""
    if any((path / v / MODEL_FILE).is_file() for v in _versions(path)):
        return ('write config.pbtxt holding at least backend: "python" (Triton takes the inputs '
                "and outputs from model.py's auto_complete_config, where it has one)")
    return "a Triton model directory holds config.pbtxt and numeric version dirs (1/model.py)"


def is_repository(path: Path) -> bool:
    """A directory of model directories rather than one model."""
    try:
        if not path.is_dir() or (path / CONFIG_NAME).exists():
            return False
        return any((p / CONFIG_NAME).is_file() for p in path.iterdir() if p.is_dir())
    except OSError:  # unreadable, a name too long: open_model says which
        return False


def require_dir(path: Path) -> None:
    """A model dir or repository that is not one: missing, a file, a name too long, a loop."""
    try:
        path.stat()
    except FileNotFoundError as exc:
        raise ModelError(f"{path}: no such directory") from exc
    except OSError as exc:  # a name too long, a symlink loop, no permission on a parent
        shown = str(path) if len(str(path)) <= 200 else str(path)[:200] + "…"
        raise ModelError(f"{shown}: {exc.strerror or exc}") from exc
    if not path.is_dir():
        raise ModelError(f"{path}: not a directory", hint="pass the model directory, not a file")


def open_model(path: Path, version: int | None = None) -> ModelDir:
    """Find config.pbtxt and the version dir holding model.py (or the config's
    default_model_filename); refuse non-python backends."""
    path = Path(path)
    require_dir(path)
    path = path.resolve()
    config_path = path / CONFIG_NAME
    if config_path.is_symlink() and not config_path.exists():
        raise ModelError(f"{config_path}: a broken symlink (to {os.readlink(config_path)})")
    if config_path.exists() and not config_path.is_file():
        raise ModelError(f"{config_path}: not a file",
                         hint="config.pbtxt is the model's configuration, in protobuf text format")
    if not config_path.is_file():
        if is_repository(path):
            raise ModelError(
                f"{path} is a model repository (a directory of models), not a model directory",
                hint=f"pass one of its models ({path / 'MODEL_NAME'})",
            )
        raise ModelError(f"{path}: no {CONFIG_NAME}", hint=_no_config_hint(path))
    text, config = read_config(config_path)
    versions = _versions(path)
    notes = _python_backend(config, config_path, versions)
    # the Python backend loads default_model_filename from the version dir when it is set
    # (python_backend's stub_launcher.cc), model.py otherwise
    model_file = model_file_of(config, config_path)
    if version is not None:
        chosen = str(version)
        if chosen not in versions:
            raise ModelError(f"{path}: no version dir {chosen}",
                             hint=f"versions: {', '.join(versions) or 'none'}")
        if not (path / chosen / model_file).is_file():
            raise ModelError(f"{path / chosen}: no {model_file}")
    else:
        with_model = [v for v in versions if (path / v / model_file).is_file()]
        if not with_model:
            dangling = [v for v in versions if (path / v / model_file).is_symlink()]
            if dangling:
                link = path / dangling[-1] / model_file
                raise ModelError(f"{link}: a broken symlink (to {os.readlink(link)})",
                                 hint="point it at the model's code, or put model.py there")
            odd = [v for v in versions if (path / v / model_file).exists()]
            if odd:
                raise ModelError(f"{path / odd[-1] / model_file}: not a file",
                                 hint=f"Triton's Python backend imports {model_file} from the "
                                      "version dir")
            where = "no numeric version dir" if not versions else f"no {model_file} in " + ", ".join(
                f"{v}/" for v in versions
            )
            named = (" (config.pbtxt's default_model_filename names it)"
                     if model_file != MODEL_FILE else "")
            raise ModelError(
                f"{path}: {where}",
                hint=f"put the model's code at {path.name}/1/{model_file}{named}",
            )
        chosen = with_model[-1]
    name = str(config.name) or path.name
    return ModelDir(path=path, name=name, version=chosen, config_text=text, config=config,
                    notes=notes, model_file=model_file)


def model_file_of(config: Any, config_path: Path) -> str:
    """The file the Python backend loads from a version dir: default_model_filename, when the
    config sets one, else model.py. The backend appends the name to ``REPO/MODEL/VERSION/``
    as it is (stub_launcher.cc): a name with a ``/`` (``sub/code.py``, ``../code.py``) is
    code outside the version dir itself, which tritonpack does not scan as Triton would
    import it; refused in words rather than another file packed in its place. ``./code.py``
    is the version dir's code.py to the backend too: read as that name."""
    name = str(getattr(config, "default_model_filename", "") or "")
    if not name:
        return MODEL_FILE
    parts = [part for part in name.split("/") if part != "."]
    shown = name if len(name) <= 80 else name[:80] + "…"
    if len(parts) != 1 or parts[0] in ("", "..") or name.startswith("/") or "\0" in name:
        raise ModelError(
            f"{config_path}: default_model_filename {shown!r} is not a file name: tritonpack "
            "packs a model whose code lies in its version dir",
            hint="move the file into the version dir and name it alone "
                 '(default_model_filename: "code.py")')
    if len(os.fsencode(parts[0])) > _NAME_MAX:  # every look at 1/<it> fails: ENAMETOOLONG
        raise ModelError(
            f"{config_path}: default_model_filename {shown!r} is longer than a file name may "
            f"be ({len(os.fsencode(parts[0]))} bytes; at most {_NAME_MAX}): no file has it",
            hint='name the file the model\'s code is in (default_model_filename: "code.py")')
    return parts[0]


def _python_backend(config: Any, config_path: Path, versions: list[str]) -> tuple[str, ...]:
    """Refuse a model Triton would not serve with the Python backend. With neither backend nor
    platform set, Triton picks the backend from the version dir's files, and model.py means
    the Python backend: accepted, with a note."""
    backend, platform = str(config.backend), str(config.platform)
    if backend == "python":
        return ()
    with_model = [v for v in versions if (config_path.parent / v / MODEL_FILE).is_file()]
    if not backend and not platform and with_model:
        return (f"config.pbtxt sets no backend: Triton serves {with_model[-1]}/{MODEL_FILE} with "
                'the Python backend (backend: "python" would say so)',)
    shown = (f"backend is '{backend}'" if backend else f"platform is '{platform}'" if platform
             else f"backend is not set and no version dir holds {MODEL_FILE}")
    raise ModelError(f"{config_path}: {shown}: tritonpack packs Python-backend models only",
                     hint='a Python-backend model has backend: "python" in config.pbtxt')
