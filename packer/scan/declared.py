"""What the user declares beside the model: ``MODEL_DIR/tritonpack.toml``.

    [requirements]
    pypi = ["opencv-python-headless>=4.8", "scipy"]   # kept with versions and extras
    conda = ["libgomp"]                               # extra conda specs for the solve

    [imports]                                         # import name -> distribution
    mylib = "my-lib-dist"

    [options]                                         # defaults for this model's runs
    triton = "24.08"                                  # (see `tritonpack config MODEL_DIR`)

Declared distributions are always installed; an optional import (inside
``try/except ImportError``) is installed only when declared. ``requirements.txt``,
``environment.yml`` and ``pyproject.toml`` beside the model declare too (packer.scan.reqfiles),
with the same precedence; each requirement remembers the file it came from.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..core.errors import ModelError, ResolveError
from ..core.fsguard import not_regular
from .reqfiles import Declaration, read_all

FILE_NAME = "tritonpack.toml"
_KNOWN = {"requirements", "imports", "options"}


@dataclass(frozen=True)
class Declared:
    path: Path | None = None
    pypi: tuple[str, ...] = ()
    conda: tuple[str, ...] = ()
    imports: tuple[tuple[str, str], ...] = ()
    options: tuple[tuple[str, object], ...] = field(default=())
    origins: tuple[tuple[str, str], ...] = ()  # requirement line -> the file it came from
    python: tuple[Declaration, ...] = ()  # `python=3.10` in an environment file
    channels: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # requirement files read besides tritonpack.toml
    warnings: tuple[str, ...] = ()

    def origin(self, line: str) -> str:
        return dict(self.origins).get(line, FILE_NAME)

    def names(self) -> frozenset[str]:
        return frozenset(canonicalize_name(Requirement(r).name) for r in self.pypi)

    @property
    def import_map(self) -> dict[str, str]:
        return dict(self.imports)


def _strings(data: object, where: str) -> tuple[str, ...]:
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise ModelError(f"{where}: expected a list of strings")
    return tuple(data)


def _check_pins(pypi: tuple[str, ...] | list[Declaration], where: str | None = None) -> None:
    """Two different exact pins of one distribution: refused, naming where each came from."""
    decls = [d if isinstance(d, Declaration) else Declaration(d, where or "") for d in pypi]
    pins: dict[str, dict[str, str]] = {}
    for decl in decls:
        try:
            req = Requirement(decl.line)
        except InvalidRequirement as exc:
            raise ResolveError(f"{decl.source}: invalid requirement {decl.line!r}: {exc}") from exc
        for spec in req.specifier:
            if spec.operator in ("==", "===") and "*" not in spec.version:
                pins.setdefault(canonicalize_name(req.name), {}).setdefault(spec.version, decl.source)
    for name, versions in sorted(pins.items()):
        if len(versions) > 1:
            sources = set(versions.values())
            if len(sources) == 1:
                raise ResolveError(
                    f"{sources.pop()}: conflicting pins for {name}: {', '.join(sorted(versions))}",
                    hint="keep one version of each distribution")
            raise ResolveError(
                f"conflicting pins for {name}: "
                + ", ".join(f"{v} ({versions[v]})" for v in sorted(versions)),
                hint="keep one version of each distribution, in one file")


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
    except RecursionError as exc:  # tomllib recurses into each nested array and inline table
        raise ModelError(f"{path}: arrays or tables nested too deeply to read") from exc
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


def load_all(model_dir: Path, version_dir: Path | None = None,
             conda_to_pypi: dict[str, str] | None = None) -> Declared:
    """tritonpack.toml and every requirements file beside the model, merged."""
    toml = load_declared(model_dir)
    files = read_all(model_dir, version_dir, conda_to_pypi or {})
    if not files.files:
        return toml
    shown = (str(toml.path.relative_to(model_dir.parent)) if toml.path is not None
             else FILE_NAME)
    ours = [Declaration(line, shown) for line in toml.pypi]
    everything = [*ours, *files.pypi]
    _check_pins(everything)
    origins = {d.line: d.source for d in reversed(everything)}  # the first file naming it
    return Declared(
        path=toml.path,
        pypi=tuple(dict.fromkeys(d.line for d in everything)),
        conda=tuple(dict.fromkeys([*toml.conda, *(d.line for d in files.conda)])),
        imports=toml.imports,
        options=toml.options,
        origins=tuple(sorted(origins.items())),
        python=files.python,
        channels=files.channels,
        index_url=files.index_url,
        extra_index_urls=files.extra_index_urls,
        find_links=files.find_links,
        files=files.files,
        warnings=files.warnings,
    )
