"""Recipes are data shipped inside the wheel (``packer.recipes``); a user dir may add to them."""

from __future__ import annotations

import fnmatch
import functools
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..core.errors import TargetError
from .table import TABLE_NAME, ImportTable, merged, parse

NAMES = ("triton.toml", "imports.toml", "torch.toml", "stdlib.toml", "soft.toml")


def _load_builtin(name: str) -> dict[str, Any]:
    text = resources.files("packer.recipes").joinpath(name).read_text(encoding="utf-8")
    return tomllib.loads(text)


@functools.cache
def _builtin_table() -> ImportTable:
    """The generated import table (tools/gen_import_table.py): read once per process."""
    return parse(resources.files("packer.recipes").joinpath(TABLE_NAME).read_text(encoding="utf-8"))


def _table(user_dir: Path | None) -> ImportTable:
    path = user_dir / TABLE_NAME if user_dir is not None else None
    if path is None or not path.is_file():
        return _builtin_table()
    try:
        return merged(_builtin_table(), parse(path.read_text(encoding="utf-8")))
    except UnicodeDecodeError as exc:
        raise TargetError(f"{path}: not UTF-8 text") from exc


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class Recipes:
    """All recipe tables, built-in ones merged with a user's recipe dir (user wins)."""

    triton: dict[str, Any]
    imports: dict[str, str]
    torch: dict[str, Any]
    stdlib: dict[str, frozenset[str]]
    user_dir: Path | None = None
    namespaces: frozenset[str] = frozenset()  # top-level names many distributions share
    conda_to_pypi: dict[str, str] = field(default_factory=dict)  # environment.yml specs
    sources: tuple[str, ...] = field(default=())
    table: ImportTable = field(default_factory=ImportTable)  # generated: import -> providers
    soft: tuple[Soft, ...] = ()  # libraries that import a dependency only when used


def _check_releases(table: dict[str, object], path: Path) -> None:
    """Each release of a user's triton.toml is a table; its versions are strings (a number is
    a mistake that TOML makes easy: python = 3.10 reads as 3.1)."""
    for release, row in table.items():
        if not isinstance(row, dict):
            raise TargetError(f"{path}: [{release}] must be a table of settings")
        nested = next((k for k, v in row.items() if isinstance(v, dict)), None)
        if nested is not None:  # [24.10] is the table 24 holding the table 10
            raise TargetError(f"{path}: [{release}.{nested}] is read by TOML as a table inside "
                              f'a table: quote the release, ["{release}.{nested}"]')
        for key, value in row.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                raise TargetError(f"{path}: [{release}] {key} = {value!r} must be a string "
                                  f'(quote it: {key} = "{value}")')


def load(user_dir: Path | None = None) -> Recipes:
    tables = {name: _load_builtin(name) for name in NAMES}
    sources = ["builtin"]
    if user_dir is not None:
        if not user_dir.is_dir():
            raise TargetError(f"recipe dir {user_dir} does not exist")
        for name in NAMES:
            path = user_dir / name
            if path.is_file():
                try:
                    extra = tomllib.loads(path.read_text(encoding="utf-8"))
                except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                    raise TargetError(f"{path}: not valid TOML: {exc}") from exc
                if name == "triton.toml":
                    _check_releases(extra, path)
                tables[name] = _merge(tables[name], extra)
                sources.append(str(path))
    return Recipes(
        triton=tables["triton.toml"],
        imports=dict(tables["imports.toml"].get("imports", {})),
        torch=tables["torch.toml"],
        stdlib={v: frozenset(t["modules"]) for v, t in tables["stdlib.toml"].items()},
        user_dir=user_dir,
        conda_to_pypi={k.lower(): v for k, v in tables["imports.toml"].get("conda", {}).items()},
        namespaces=frozenset(tables["imports.toml"].get("namespaces", {}).get("names", [])),
        sources=tuple(sources),
        table=_table(user_dir),
        soft=tuple(_soft(lib, row) for lib, row in tables["soft.toml"].items()
                   if isinstance(row, dict)),
    )


@dataclass(frozen=True)
class Soft:
    """``library`` imports ``needs`` only when one of ``names`` is used (recipes/soft.toml)."""

    library: str
    needs: str
    names: tuple[str, ...]
    unless: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    def wants(self, name: str) -> bool:
        return (any(fnmatch.fnmatchcase(name, p) for p in self.names)
                and not any(fnmatch.fnmatchcase(name, p) for p in self.excluded))


def _soft(library: str, row: dict[str, Any]) -> Soft:
    def strings(key: str) -> tuple[str, ...]:
        value = row.get(key, [])
        return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()
    return Soft(library, str(row.get("needs", "")), strings("names"), strings("unless"),
                strings("except"))
