"""A build that shows the lock lacks something: the fix, for the pipeline to lock and build
again (``packer.pipeline``), or a refusal in one sentence.

Two things only a built environment shows (``packer.resolve.learned``): a distribution chosen
for an import that does not provide it (``packer.build.provides``), and a module a package
imports at run time that no locked distribution provides (``packer.build.importcheck``). The
fix is remembered in the lock; each is tried a bounded number of times.
"""

from __future__ import annotations

import dataclasses
import re

from packaging.utils import canonicalize_name

from .build.importcheck import MissingAtImport
from .build.provides import Unprovided
from .context import Context
from .core.errors import BuildError
from .resolve.learned import Added, Learned
from .resolve.requirements import map_import, resolve, toml_key

RETRIES = 2  # builds after the first, at most
_DIST_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")


@dataclasses.dataclass
class Tried:
    """What this run tried already: per import key, the distributions; the modules added."""

    providers: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    added: set[str] = dataclasses.field(default_factory=set)
    builds: int = 0


def fix(ctx: Context, exc: Unprovided | MissingAtImport, tried: Tried,
        locked: tuple[str, ...]) -> tuple[Context, str] | None:
    """The context to lock again and a note saying why; None when there is nothing to try
    (the caller re-raises ``exc``). Raises a BuildError naming what was tried when the
    alternatives are spent."""
    if tried.builds >= RETRIES:
        return None
    tried.builds += 1
    if isinstance(exc, Unprovided):
        return _other_provider(ctx, exc, tried)
    return _add_missing(ctx, exc, tried, locked)


def _relocked(ctx: Context, learned_now: Learned) -> Context:
    reqs = resolve(ctx.report, ctx.declared, ctx.recipes, ctx.target, learned_now)
    return dataclasses.replace(ctx, requirements=reqs)


def _other_provider(ctx: Context, exc: Unprovided, tried: Tried) -> tuple[Context, str] | None:
    """The import table's next provider of the import, when the chosen one was installed and
    does not provide it; a declaration of the user's is never overridden."""
    row = exc.row
    if row.distribution is None or row.source == "declared" or not exc.installed:
        return None
    table = ctx.recipes.table
    providers = table.providers.get(row.key) or table.below(row.key)
    seen = tried.providers.setdefault(row.key, [row.distribution])
    gone = {canonicalize_name(d) for d in seen}
    others = [p for p in providers if canonicalize_name(p) not in gone]
    if not others:
        if len(seen) < 2:
            return None  # nothing else provides it: the first refusal stands
        raise BuildError(
            f"import {row.key!r} ({row.locations[0]}) is provided by none of "
            f"{', '.join(repr(d) for d in seen)}: each was installed and holds no module "
            f"{row.key!r}",
            hint="declare the distribution that provides it in tritonpack.toml: [imports] "
                 f'{toml_key(row.key)} = "NAME"')
    choice = others[0]
    seen.append(choice)
    note = (f"import {row.key!r} ({row.locations[0]}): {row.distribution!r} was installed but "
            f"provides no module {row.key!r}; locking {choice!r}, which does (the import "
            "table), and building again")
    return _relocked(ctx, ctx.requirements.learned.with_import(row.key, choice)), note


def _needed_by(ctx: Context, module: str) -> str:
    """The distribution a checked module comes from, as the lock names it."""
    top = module.split(".")[0]
    row = next((r for r in ctx.requirements.rows if r.distribution and (
        r.key == module or r.key == top or module.startswith(r.key + "."))), None)
    return row.distribution if row is not None and row.distribution else top


def _add_missing(ctx: Context, exc: MissingAtImport, tried: Tried,
                 locked: tuple[str, ...]) -> tuple[Context, str] | None:
    """The distribution that provides a module a package imports at run time, added to the
    lock with who needed it; refused when it is locked already or was added before."""
    checked, module = sorted(exc.missing.items())[0]
    recipes = ctx.recipes
    key, dist, source = map_import(module, ctx.declared.import_map, recipes.imports,
                                   recipes.namespaces, recipes.table,
                                   ctx.requirements.learned.import_map)
    by = _needed_by(ctx, checked)
    if not _DIST_NAME.match(dist) or canonicalize_name(dist) in {
            canonicalize_name(n) for n in locked} or key in tried.added:
        shown = (f"{dist!r} is locked and does not provide it" if _DIST_NAME.match(dist)
                 else "no distribution is known to provide it")
        raise BuildError(
            f"import {checked!r} ({by}) fails in the built environment: it needs module "
            f"{module!r} at import, and {shown} ({exc.failed[checked]})",
            hint=f"declare the distribution that provides {module!r} in tritonpack.toml: "
                 '[requirements] pypi = ["NAME"]') from exc
    tried.added.add(key)
    how = "guessing by its name" if source == "guess" else f"from the {_SOURCES.get(source, source)}"
    note = (f"{by!r} imports {module!r} at run time ({checked!r} failed: No module named "
            f"{module!r}) without declaring it: adding {dist!r} to the lock ({how}), needed "
            f"by {by!r}, and building again")
    learned_now = ctx.requirements.learned.with_added(Added(dist, key, by))
    return _relocked(ctx, learned_now), note


_SOURCES = {"table": "import table", "recipe": "recipes", "declared": "declared imports",
            "checked": "lock"}
