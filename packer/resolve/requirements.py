"""Import names -> distributions: declared > hand-kept recipes > the generated import table
(``packer.resolve.table``) > the name itself (a guess, warned).

The mapping is a function of the model, its declared files and the recipes only: the
distributions installed beside tritonpack are never consulted, so the same model locks the
same way from any venv on any machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..core.errors import ResolveError
from ..scan.declared import Declared
from ..scan.imports import ImportReport, ImportUse, Kind
from .learned import Learned
from .recipebook import Recipes, Soft
from .table import ImportTable
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
    learned: Learned = field(default_factory=Learned)  # what a build taught the lock
    # (import, where, distribution) guessed by name: said once, by whoever learns whether the
    # index has it (the lock), never as a note that the error then contradicts
    guesses: tuple[tuple[str, str, str], ...] = ()

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
               namespaces: frozenset[str] = frozenset(),
               table: ImportTable | None = None,
               learned: dict[str, str] | None = None) -> tuple[str, str, str]:
    """(key, distribution, source) for a third-party module name: the longest dotted key
    declared, else in the recipes, else in the generated table (its most downloaded provider:
    ``resolve`` then chooses among several); else a guess (below a namespace package, its name
    and the next part joined by '-': google.cloud.foo -> google-cloud-foo)."""
    for source, mapping in (("declared", declared), ("checked", learned or {}),
                            ("recipe", recipes)):
        hit = _longest(module, mapping)
        if hit:
            return hit[0], hit[1], source
    if table is not None:
        key = table.longest(module)
        if key is not None and key not in namespaces:
            return key, table.providers[key][0], "table"
        below = table.below(module) if key is None and module not in namespaces else ()
        if below:
            return module, below[0], "table"
    parts = module.split(".")
    for n in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:n]) in namespaces:
            key = ".".join(parts[: n + 1])
            return key, key.replace(".", "-").replace("_", "-"), "guess"
    return parts[0], parts[0], "guess"


def _mappings(use: ImportUse, declared: dict[str, str], recipes: Recipes,
              learned: dict[str, str]) -> list[tuple[str, str, str]]:
    """What provides one import. ``from google.cloud import pubsub_v1``: a namespace package
    maps by the names imported from it, where they match a deeper key."""
    own = map_import(use.module, declared, recipes.imports, recipes.namespaces, recipes.table,
                     learned)
    deeper = [map_import(f"{use.module}.{n}", declared, recipes.imports, recipes.namespaces,
                         recipes.table, learned) for n in use.names]
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


def resolve(report: ImportReport, declared: Declared, recipes: Recipes, target: Target,
            learned: Learned | None = None) -> Requirements:
    """The requirement lines for the resolver and one row per import; ``learned``: what an
    earlier build found (``packer.resolve.learned``)."""
    learned = learned or Learned()
    check_release_bounds(declared, target)
    groups: dict[tuple[Kind, str], list[ImportUse]] = {}
    dist_of: dict[tuple[Kind, str], tuple[str | None, str]] = {}
    for use in report.uses:
        if use.kind is Kind.THIRD_PARTY:
            for key, mapped, how in _mappings(use, declared.import_map, recipes,
                                              learned.import_map):
                dist_of[(use.kind, key)] = (mapped, how)
                groups.setdefault((use.kind, key), []).append(use)
            continue
        key = use.top if not use.module.startswith(".") else use.module
        groups.setdefault((use.kind, key), []).append(use)

    declared_names = declared.names()
    rows: list[Resolution] = []
    warnings: list[str] = []
    guesses: list[tuple[str, str, str]] = []
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
        if dist is not None and kind is Kind.THIRD_PARTY:
            dist, source, note = _provider(key, dist, source, uses, declared_names, recipes.table)
            if note:
                warnings.append(f"import {key!r} ({locations[0]}): {note}")
        if dist is not None and canonicalize_name(dist) in declared_names:
            source = "declared"
        rows.append(Resolution(key, kind, dist, source, optional, locations, extras))
        if dist is None:
            continue
        if source == "guess":
            guesses.append((key, locations[0], dist))
        if not optional or canonicalize_name(dist) in declared_names or key in declared.import_map:
            entry = wanted.setdefault(canonicalize_name(dist), (dist, set()))
            entry[1].update(extras)

    soft_specs: dict[str, str] = {}
    for soft, name, where in _soft_needs(report, recipes, declared_names, set(wanted)):
        need = Requirement(soft.needs)
        rows.append(Resolution(need.name, Kind.THIRD_PARTY, need.name, "soft", False,
                               (f"{soft.library}.{name} at {where}",)))
        wanted.setdefault(canonicalize_name(need.name), (need.name, set()))
        soft_specs[canonicalize_name(need.name)] = str(need.specifier)
        warnings.append(
            f"{soft.library}.{name} ({where}) needs {need.name!r}, which {soft.library} imports "
            f"only when used and does not install: adding {soft.needs!r} (recipes/soft.toml; "
            "declare it in tritonpack.toml to choose its version)")
    for added in learned.added:  # a module a package imports at run time, undeclared
        rows.append(Resolution(added.module, Kind.THIRD_PARTY, added.distribution, "added",
                               False, (f"imported by {added.needed_by}",)))
        wanted.setdefault(canonicalize_name(added.distribution), (added.distribution, set()))
    warnings += _numpy2_pickles(report, target)
    lines = list(declared.pypi)
    declared_extras: dict[str, set[str]] = {}
    for line in declared.pypi:
        req = Requirement(line)
        declared_extras.setdefault(canonicalize_name(req.name), set()).update(req.extras)
    pins, pin_notes = _pickled_pins(report, declared, wanted, learned)
    pins = {**soft_specs, **pins}
    warnings += pin_notes
    for name, (dist, needed) in sorted(wanted.items()):
        if name == "numpy":
            continue
        missing = needed - declared_extras.get(name, set())
        if name not in declared_names:
            lines.append((f"{dist}[{','.join(sorted(needed))}]" if needed else dist)
                         + pins.get(name, ""))
        elif missing:  # declared without the extras an imported subpackage needs: both kept
            lines.append(f"{dist}[{','.join(sorted(missing))}]")
    lines.append(f"numpy{target.numpy}")  # the backend stub imports numpy: always, bounded
    return Requirements(
        rows=tuple(rows),
        pypi=tuple(sorted(dict.fromkeys(lines), key=lambda s: (canonicalize_name(Requirement(s).name), s))),
        conda=declared.conda,
        warnings=(*declared.warnings, *warnings),
        origins=declared.origins,
        learned=learned,
        guesses=tuple(guesses),
    )


def guess_note(guess: tuple[str, str, str], found: bool | None = None) -> str:
    """The one sentence about an import whose distribution was guessed by its name: ``found``
    once the lock has asked the index (None: not asked, as by ``tritonpack scan``)."""
    key, where, dist = guess
    said = {None: "not checked against the index until `tritonpack lock`",
            True: "the index has it"}.get(found, "the index does not have it")
    return (f"import {key!r} ({where}): no recipe or declaration names its distribution; "
            f"guessed {dist!r} by its name ({said}; declare it in tritonpack.toml: [imports] "
            f"{toml_key(key)} = \"NAME\")")


def _pickled_pins(report: ImportReport, declared: Declared, wanted: dict[str, tuple[str, set[str]]],
                  learned: Learned) -> tuple[dict[str, str], list[str]]:
    """``==VERSION`` for each distribution a pickle records the version of (the newest, when
    several do), unless the user declares it or that version does not install for the target
    (``learned.unavailable``, found by the lock stage); and a note for each."""
    newest: dict[str, tuple[Version, str, str]] = {}
    for dist, text, shown in report.pickled:
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        key = str(canonicalize_name(dist))
        if key not in newest or version > newest[key][0]:
            newest[key] = (version, text, shown)
    pins: dict[str, str] = {}
    notes: list[str] = []
    for name, (version, text, shown) in sorted(newest.items()):
        mine = next((d for d in declared.pypi if canonicalize_name(Requirement(d).name) == name),
                    None)
        if mine is not None:
            spec = Requirement(mine).specifier
            if not spec.contains(version, prereleases=True):
                notes.append(f"{shown} was pickled with {name} {text}, outside the declared "
                             f"{mine} ({declared.origin(mine)}): it may warn when loaded, or "
                             "fail")
            continue
        if name not in wanted:
            continue
        if f"{name}=={text}" in learned.unavailable:
            notes.append(f"{shown} was pickled with {name} {text}, which has no wheel for the "
                         "target's Python: the lock takes a newer one (it may warn when the "
                         "pickle is loaded, or fail)")
            continue
        pins[name] = f"=={text}"
        notes.append(f"{shown} was pickled with {name} {text}: locking that version")
    return pins, notes


def _soft_needs(report: ImportReport, recipes: Recipes, declared: frozenset[str],
                wanted: set[str]) -> list[tuple[Soft, str, str]]:
    """(recipe, name used, where) for each soft dependency the model's code needs and neither
    imports nor declares: ``from transformers import pipeline`` needs torch."""
    third = [u for u in report.uses if u.kind is Kind.THIRD_PARTY]
    tops = {u.top for u in third} | declared | wanted
    out: list[tuple[Soft, str, str]] = []
    for soft in recipes.soft:
        try:
            need = Requirement(soft.needs).name
        except InvalidRequirement:
            continue
        if canonicalize_name(need) in tops or need in tops or any(
                u in tops or canonicalize_name(u) in tops for u in soft.unless):
            continue
        hit = next(((name, use.where) for use in third if use.top == soft.library
                    for name in sorted({*use.names, *use.attrs,
                                        *use.module.split(".")[1:2]}) if soft.wants(name)),
                   None)
        if hit is not None:
            out.append((soft, *hit))
    return out


def _used(key: str, uses: list[ImportUse]) -> set[str]:
    """What the code reads from module ``key``: ``bson.loads`` and ``from bson import loads``
    (loads), ``import bson.json_util`` (json_util)."""
    used: set[str] = set()
    for use in uses:
        if use.module == key:
            used.update(use.attrs, use.names)
        elif use.module.startswith(key + "."):
            used.add(use.module[len(key) + 1:].split(".")[0])
    return used


def _provider(key: str, dist: str, source: str, uses: list[ImportUse],
              declared: frozenset[str], table: ImportTable) -> tuple[str, str, str]:
    """Among the distributions the generated table says provide ``key``: a declared one wins
    over the recipes' or the table's choice; for a table row, then the attributes the code
    uses; else the most downloaded, with a note naming the others."""
    if source not in ("recipe", "table") or (key not in table.providers and not table.below(key)):
        return dist, source, ""
    if source == "recipe":
        mine = next((p for p in table.providers.get(key, ())
                     if canonicalize_name(p) in declared and p != dist), None)
        return (mine, "declared", "") if mine else (dist, source, "")
    choice = table.choose(key, declared, _used(key, uses))
    if choice.by.startswith("attribute"):
        return choice.distribution, source, (
            f"the code uses {choice.by.split(' ', 1)[1]}, which only {choice.distribution!r} "
            f"defines ({_names(choice.others)} also provide{'s' if len(choice.others) == 1 else ''}"
            f" a module {key!r}): locking {choice.distribution!r}")
    if choice.by == "most downloaded":
        return choice.distribution, source, (
            f"{_names((choice.distribution, *choice.others))} all provide a module {key!r}: "
            f"locking {choice.distribution!r}, the most downloaded (declare another in "
            f'tritonpack.toml: [imports] {toml_key(key)} = "NAME")')
    return choice.distribution, source, ""


def _names(dists: tuple[str, ...], shown: int = 4) -> str:
    named = [repr(d) for d in dists[:shown]]
    if len(dists) > shown:
        named.append(f"{len(dists) - shown} more")
    return ", ".join(named[:-1]) + f" and {named[-1]}" if len(named) > 1 else named[0]


def _split(spec: str) -> tuple[str, tuple[str, ...]]:
    """``tritonclient[http]`` -> ("tritonclient", ("http",)): a recipe value may name extras."""
    req = Requirement(spec)
    return req.name, tuple(sorted(req.extras))


def toml_key(key: str) -> str:
    """A dotted import name must be quoted as a TOML key (else it makes nested tables)."""
    return f'"{key}"' if "." in key else key
