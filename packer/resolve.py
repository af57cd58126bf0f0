"""Import names -> distributions: declared > recipes > installed metadata > the name itself."""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass
from functools import cache

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .declared import Declared
from .errors import ResolveError
from .recipebook import Recipes
from .scan import ImportReport, ImportUse, Kind
from .target import Target


@dataclass(frozen=True)
class Resolution:
    """One row of the scan table: an import, what it is, what provides it, where it is used."""

    key: str
    kind: Kind
    distribution: str | None
    source: str  # declared | recipe | metadata | guess | "" for non third-party
    optional: bool
    locations: tuple[str, ...]

    @property
    def required(self) -> bool:
        return self.kind is Kind.THIRD_PARTY and not self.optional


@dataclass(frozen=True)
class Requirements:
    rows: tuple[Resolution, ...]
    pypi: tuple[str, ...]  # requirement lines handed to the resolver
    conda: tuple[str, ...]
    warnings: tuple[str, ...]

    def rows_for(self, distribution: str) -> tuple[Resolution, ...]:
        want = canonicalize_name(distribution)
        return tuple(
            r for r in self.rows if r.distribution and canonicalize_name(r.distribution) == want
        )


@cache
def _installed_map() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _longest(module: str, table: dict[str, str]) -> tuple[str, str] | None:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in table:
            return key, table[key]
    return None


_DIST_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")  # PEP 508


def map_import(module: str, declared: dict[str, str], recipes: dict[str, str]) -> tuple[str, str, str]:
    """(key, distribution, source) for a third-party module name."""
    for source, table in (("declared", declared), ("recipe", recipes)):
        hit = _longest(module, table)
        if hit:
            return hit[0], hit[1], source
    top = module.split(".")[0]
    dists = _installed_map().get(top)
    if dists:
        return top, sorted(dists)[0], "metadata"
    return top, top, "guess"


def resolve(report: ImportReport, declared: Declared, recipes: Recipes, target: Target) -> Requirements:
    groups: dict[tuple[Kind, str], list[ImportUse]] = {}
    dist_of: dict[tuple[Kind, str], tuple[str | None, str]] = {}
    for use in report.uses:
        if use.kind is Kind.THIRD_PARTY:
            key, mapped, how = map_import(use.module, declared.import_map, recipes.imports)
            dist_of[(use.kind, key)] = (mapped, how)
        else:
            key = use.top if not use.module.startswith(".") else use.module
        groups.setdefault((use.kind, key), []).append(use)

    declared_names = declared.names()
    rows: list[Resolution] = []
    warnings: list[str] = []
    wanted: dict[str, str] = {}
    for (kind, key), uses in sorted(groups.items(), key=lambda kv: (kv[0][0].value, kv[0][1])):
        optional = all(u.optional for u in uses)
        dist, source = dist_of.get((kind, key), (None, ""))
        if dist is not None and canonicalize_name(dist) in declared_names:
            source = "declared"
        locations = tuple(dict.fromkeys(u.where for u in uses))
        rows.append(Resolution(key, kind, dist, source, optional, locations))
        if dist is None:
            continue
        if source == "guess":
            warnings.append(
                f"import {key!r} ({locations[0]}): no recipe or declaration names its "
                f"distribution; assuming {dist!r}"
            )
        if not optional or canonicalize_name(dist) in declared_names or key in declared.import_map:
            if source == "guess" and not _DIST_NAME.match(dist):  # e.g. import _helpers
                raise ResolveError(
                    f"import {key!r} ({locations[0]}) is not found in the model dir or a --src "
                    f"root, and {dist!r} cannot be a distribution name",
                    hint=f"if {key!r} is your own module, put {key}.py beside model.py or pass "
                         f"--src DIR; else declare its distribution: [imports] {key} = \"NAME\"")
            wanted.setdefault(canonicalize_name(dist), dist)

    lines = list(declared.pypi)
    lines += [
        dist for name, dist in sorted(wanted.items())
        if name not in declared_names and name != "numpy"
    ]
    lines.append(f"numpy{target.numpy}")  # the backend stub imports numpy: always, bounded
    return Requirements(
        rows=tuple(rows),
        pypi=tuple(sorted(dict.fromkeys(lines), key=lambda s: (canonicalize_name(Requirement(s).name), s))),
        conda=declared.conda,
        warnings=tuple(warnings),
    )
