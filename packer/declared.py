"""What the user declares beside the model: ``MODEL_DIR/tritonpack.toml``.

    [requirements]
    pypi = ["opencv-python-headless>=4.8", "scipy"]   # kept with versions and extras
    conda = ["libgomp"]                               # extra conda specs for the solve

    [imports]                                         # import name -> distribution
    mylib = "my-lib-dist"

    [options]                                         # defaults for this model's runs
    triton = "24.08"                                  # (see `tritonpack config MODEL_DIR`)

Declared distributions are always installed; an optional import (inside
``try/except ImportError``) is installed only when declared.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .errors import ModelError, ResolveError
from .fsguard import not_regular

FILE_NAME = "tritonpack.toml"
_KNOWN = {"requirements", "imports", "options"}


@dataclass(frozen=True)
class Declared:
    path: Path | None = None
    pypi: tuple[str, ...] = ()
    conda: tuple[str, ...] = ()
    imports: tuple[tuple[str, str], ...] = ()
    options: tuple[tuple[str, object], ...] = field(default=())

    def names(self) -> frozenset[str]:
        return frozenset(canonicalize_name(Requirement(r).name) for r in self.pypi)

    @property
    def import_map(self) -> dict[str, str]:
        return dict(self.imports)


def _strings(data: object, where: str) -> tuple[str, ...]:
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise ModelError(f"{where}: expected a list of strings")
    return tuple(data)


def _check_pins(pypi: tuple[str, ...], where: str) -> None:
    pins: dict[str, list[str]] = {}
    for line in pypi:
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise ResolveError(f"{where}: invalid requirement {line!r}: {exc}") from exc
        exact = [s.version for s in req.specifier if s.operator in ("==", "===")]
        if exact:
            pins.setdefault(canonicalize_name(req.name), []).extend(exact)
    for name, versions in sorted(pins.items()):
        if len(set(versions)) > 1:
            raise ResolveError(
                f"{where}: conflicting pins for {name}: {', '.join(sorted(set(versions)))}",
                hint="keep one version of each distribution",
            )


def _table(data: dict[str, object], name: str, path: Path) -> dict[str, object]:
    """``[name]`` as a table: ``requirements = 5`` or ``options = []`` is a mistake to name."""
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ModelError(f"{path}: {name} must be a table ([{name}]), not a "
                         f"{_TOML_KIND.get(type(value).__name__, type(value).__name__)}",
                         hint=f"write [{name}] on its own line, with its keys below it")
    return value


_TOML_KIND = {"int": "number", "float": "number", "str": "string", "list": "list",
              "bool": "boolean"}


def load_declared(model_dir: Path) -> Declared:
    path = model_dir / FILE_NAME
    if (kind := not_regular(path)) is not None:  # never silently ignored, never opened
        raise ModelError(f"{path}: is {kind}, not a file")
    if not path.is_file():
        return Declared()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8").removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"{path}: {exc}", hint="tritonpack.toml is TOML") from exc
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path}: not UTF-8 text") from exc
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise ModelError(
            f"{path}: unknown table [{unknown[0]}]",
            hint="tritonpack.toml has [requirements], [imports] and [options]",
        )
    reqs = _table(data, "requirements", path)
    pypi = _strings(reqs.get("pypi", []), f"{path}: requirements.pypi")
    conda = _strings(reqs.get("conda", []), f"{path}: requirements.conda")
    _check_pins(pypi, str(path))
    imports = _table(data, "imports", path)
    if not all(isinstance(v, str) for v in imports.values()):
        raise ModelError(f"{path}: [imports] values must be distribution names (strings)")
    options = _table(data, "options", path)
    return Declared(
        path=path,
        pypi=pypi,
        conda=conda,
        imports=tuple(sorted((k, str(v)) for k, v in imports.items())),
        options=tuple(sorted(options.items())),
    )
