"""Import names -> distributions: declared > recipes > the name itself (a guess, warned).

The mapping is a function of the model, its declared files and the recipes only: the
distributions installed beside tritonpack are never consulted, so the same model locks the
same way from any venv on any machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..core.errors import ResolveError
from ..scan.declared import Declared
from ..scan.imports import ImportReport, ImportUse, Kind
from .recipebook import Recipes
from .target import Target


@dataclass(frozen=True)
class Resolution:
    """One row of the scan table: an import, what it is, what provides it, where it is used."""

    key: str
    kind: Kind
    distribution: str | None
    source: str  # declared | recipe | guess | "" for non third-party
    optional: bool
    locations: tuple[str, ...]
    extras: tuple[str, ...] = ()  # what the imported subpackage needs (tritonclient.http: http)

    @property
    def required(self) -> bool:
        return self.kind is Kind.THIRD_PARTY and not self.optional


@dataclass(frozen=True)
class Requirements:
    rows: tuple[Resolution, ...]
    pypi: tuple[str, ...]  # requirement lines handed to the resolver
    conda: tuple[str, ...]
    warnings: tuple[str, ...]
    origins: tuple[tuple[str, str], ...] = ()  # declared line -> the file it came from

    def rows_for(self, distribution: str) -> tuple[Resolution, ...]:
        want = canonicalize_name(distribution)
        return tuple(
            r for r in self.rows if r.distribution and canonicalize_name(r.distribution) == want
        )


def _longest(module: str, table: dict[str, str]) -> tuple[str, str] | None:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in table:
            return key, table[key]
    return None


_DIST_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")  # PEP 508


def map_import(module: str, declared: dict[str, str], recipes: dict[str, str],
               namespaces: frozenset[str] = frozenset()) -> tuple[str, str, str]:
    """(key, distribution, source) for a third-party module name: the longest dotted key
    declared, else in the recipes; else a guess (below a namespace package, its name and the
    next part joined by '-': google.cloud.foo -> google-cloud-foo)."""
    for source, table in (("declared", declared), ("recipe", recipes)):
        hit = _longest(module, table)
        if hit:
            return hit[0], hit[1], source
    parts = module.split(".")
    for n in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:n]) in namespaces:
            key = ".".join(parts[: n + 1])
            return key, key.replace(".", "-").replace("_", "-"), "guess"
    return parts[0], parts[0], "guess"


def _mappings(use: ImportUse, declared: dict[str, str],
              recipes: Recipes) -> list[tuple[str, str, str]]:
    """What provides one import. ``from google.cloud import pubsub_v1``: a namespace package
    maps by the names imported from it, where they match a deeper key."""
    own = map_import(use.module, declared, recipes.imports, recipes.namespaces)
    deeper = [map_import(f"{use.module}.{n}", declared, recipes.imports, recipes.namespaces)
              for n in use.names]
    deeper = [m for m in deeper if len(m[0]) > len(own[0]) and (m[2] != "guess" or own[2] == "guess")]
    return list(dict.fromkeys(deeper)) or [own]


def _numpy2_pickles(report: ImportReport, target: Target) -> list[str]:
    """A pickle saved under numpy 2 names ``numpy._core``, which numpy 1 lacks."""
    if not target.numpy or SpecifierSet(target.numpy).contains("2.0.0"):
        return []
    for use in report.uses:
        if use.line == 0 and use.module.startswith("numpy._core"):
            return [f"{use.file} was saved under numpy 2 (it names {use.module}); numpy"
                    f"{target.numpy}, the bound of Triton {target.release}, has no numpy._core: "
                    "save it again under numpy 1, or target 24.11 or later"]
    return []


def _overlap(a: SpecifierSet, b: SpecifierSet) -> bool:
    """Whether some version satisfies both: tried on the versions either names, and just above."""
    named = [s.version.removesuffix(".*") for s in (*a, *b)]
    candidates = []
    for text in named:
        try:
            v = Version(text)
        except InvalidVersion:
            continue
        major, minor = v.release[0], (v.release[1] if len(v.release) > 1 else 0)
        candidates += [v, Version(f"{v.base_version}.1"), Version(f"{v.base_version}.999"),
                       Version(f"{max(major - 1, 0)}.999"),
                       Version(f"{major}.{max(minor - 1, 0)}.999")]
    candidates.append(Version("0.0.1"))
    return any(a.contains(v, prereleases=True) and b.contains(v, prereleases=True)
               for v in candidates)


def check_release_bounds(declared: Declared, target: Target) -> None:
    """A declared pin that the release cannot run is refused before resolving, naming both."""
    bound = SpecifierSet(target.numpy) if target.numpy else None
    for line in declared.pypi:
        req = Requirement(line)
        if bound is not None and canonicalize_name(req.name) == "numpy" and req.specifier \
                and not _overlap(req.specifier, bound):
            raise ResolveError(
                f"{line} ({declared.origin(line)}) conflicts with numpy{bound}, the bound of "
                f"Triton {target.release} (recipes/triton.toml: its Python backend stub was "
                "built with that numpy)",
                hint="drop the pin, or target a release whose bound allows it (--triton)")
    for decl in declared.python:
        try:
            spec = SpecifierSet(decl.line.removeprefix("python"))
        except InvalidSpecifier:
            continue
        if spec and not any(spec.contains(f"{target.python}.{n}") for n in range(40)):
            raise ResolveError(
                f"{decl.line} ({decl.source}) conflicts with Python {target.python}, the Python "
                f"of Triton {target.release}'s stub (recipes/triton.toml)",
                hint="the stub decides the Python: drop the python spec, or pick a release "
                "whose stub matches it (tritonpack targets)")


def resolve(report: ImportReport, declared: Declared, recipes: Recipes, target: Target) -> Requirements:
    check_release_bounds(declared, target)
    groups: dict[tuple[Kind, str], list[ImportUse]] = {}
    dist_of: dict[tuple[Kind, str], tuple[str | None, str]] = {}
    for use in report.uses:
        if use.kind is Kind.THIRD_PARTY:
            for key, mapped, how in _mappings(use, declared.import_map, recipes):
                dist_of[(use.kind, key)] = (mapped, how)
                groups.setdefault((use.kind, key), []).append(use)
            continue
        key = use.top if not use.module.startswith(".") else use.module
        groups.setdefault((use.kind, key), []).append(use)

    declared_names = declared.names()
    rows: list[Resolution] = []
    warnings: list[str] = []
    wanted: dict[str, tuple[str, set[str]]] = {}  # name -> (as written, extras)
    for (kind, key), uses in sorted(groups.items(), key=lambda kv: (kv[0][0].value, kv[0][1])):
        optional = all(u.optional for u in uses)
        spec, source = dist_of.get((kind, key), (None, ""))
        locations = tuple(dict.fromkeys(u.where for u in uses))
        if spec is not None and source == "guess" and not _DIST_NAME.match(spec):
            if not all(u.optional for u in uses):  # e.g. import _helpers, and no _helpers.py
                raise ResolveError(
                    f"import {key!r} ({locations[0]}) is not found in the model dir or a --src "
                    f"root, and {spec!r} cannot be a distribution name",
                    hint=f"if {key!r} is your own module, put {key}.py beside model.py or pass "
                         f"--src DIR; else declare its distribution: [imports] {key} = \"NAME\"")
            spec = None
        dist, extras = _split(spec) if spec is not None else (None, ())
        if dist is not None and canonicalize_name(dist) in declared_names:
            source = "declared"
        rows.append(Resolution(key, kind, dist, source, optional, locations, extras))
        if dist is None:
            continue
        if source == "guess":
            warnings.append(
                f"import {key!r} ({locations[0]}): no recipe or declaration names its "
                f"distribution; guessing {dist!r}, the distribution of that name on the index "
                f"(declare it in tritonpack.toml: [imports] {toml_key(key)} = \"NAME\")"
            )
        if not optional or canonicalize_name(dist) in declared_names or key in declared.import_map:
            entry = wanted.setdefault(canonicalize_name(dist), (dist, set()))
            entry[1].update(extras)

    warnings += _numpy2_pickles(report, target)
    lines = list(declared.pypi)
    declared_extras: dict[str, set[str]] = {}
    for line in declared.pypi:
        req = Requirement(line)
        declared_extras.setdefault(canonicalize_name(req.name), set()).update(req.extras)
    for name, (dist, needed) in sorted(wanted.items()):
        if name == "numpy":
            continue
        missing = needed - declared_extras.get(name, set())
        if name not in declared_names:
            lines.append(f"{dist}[{','.join(sorted(needed))}]" if needed else dist)
        elif missing:  # declared without the extras an imported subpackage needs: both kept
            lines.append(f"{dist}[{','.join(sorted(missing))}]")
    lines.append(f"numpy{target.numpy}")  # the backend stub imports numpy: always, bounded
    return Requirements(
        rows=tuple(rows),
        pypi=tuple(sorted(dict.fromkeys(lines), key=lambda s: (canonicalize_name(Requirement(s).name), s))),
        conda=declared.conda,
        warnings=(*declared.warnings, *warnings),
        origins=declared.origins,
    )


def _split(spec: str) -> tuple[str, tuple[str, ...]]:
    """``tritonclient[http]`` -> ("tritonclient", ("http",)): a recipe value may name extras."""
    req = Requirement(spec)
    return req.name, tuple(sorted(req.extras))


def toml_key(key: str) -> str:
    """A dotted import name must be quoted as a TOML key (else it makes nested tables)."""
    return f'"{key}"' if "." in key else key
