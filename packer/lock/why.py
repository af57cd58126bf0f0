"""``tritonpack why MODEL_DIR NAME``: what brought a package into the lock. An import of
model.py (or a bundled module), a declared file, the backend stub's numpy, or a dependency of
one of those, the chain shown.

The lock keeps no graph (old locks stay as they are, and a lock's bytes depend on its pins
only): the PyPI edges are asked of uv again, with the lock's own pins as its preferences so it
answers for the versions locked, and read from its ``# via`` annotations; the conda edges are
the ``depends`` the lock records for each conda package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..core.errors import ProcessError, UsageError
from .lockfile import read_lock

if TYPE_CHECKING:
    from ..context import Context

_VIA = re.compile(r"^\s*#\s+(?:via\s+)?(\S.*?)\s*$")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==")


@dataclass(frozen=True)
class WhyResult:
    """Why ``name`` is in the lock: one chain per reason, each from the package up to the
    reason (an import, a declared file, the stub)."""

    model: str
    name: str
    version: str
    source: str  # pypi | conda
    chains: tuple[tuple[str, ...], ...]


def parse_via(text: str) -> dict[str, tuple[str, ...]]:
    """uv's annotated output: each pinned name and what required it (``-r FILE``: the input)."""
    via: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if (pin := _PIN.match(line)) is not None:
            current = canonicalize_name(pin[1])
            via[current] = []
        elif current is not None and (match := _VIA.match(line)) is not None:
            who = match[1]
            if who != "via":
                via[current].append(who if who.startswith("-r ") else canonicalize_name(who))
    return {k: tuple(v) for k, v in via.items()}


def _direct(ctx: Context, name: str) -> list[str]:
    """The reasons ``name`` is asked for by the model itself."""
    reasons = [f"import {r.key} ({', '.join(r.locations[:3])})"
               for r in ctx.requirements.rows_for(name) if r.source != "declared"]
    reasons += [f"declared in {src} ({line})" for line, src in ctx.requirements.origins
                if canonicalize_name(Requirement(line).name) == name]
    reasons += [f"import {r.key} ({', '.join(r.locations[:3])}), declared"
                for r in ctx.requirements.rows_for(name) if r.source == "declared"]
    if name == "numpy":
        reasons.append("the Python backend stub imports numpy: every environment holds it")
    return reasons or ["a requirement of the model (tritonpack.toml or a declared file)"]


def _chains(name: str, parents: dict[str, tuple[str, ...]], ctx: Context,
            seen: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for parent in parents.get(name, ()):
        if parent.startswith("-r "):
            out += [(*seen, name, reason) for reason in _direct(ctx, name)]
        elif parent not in seen and parent != name:
            out += _chains(parent, parents, ctx, (*seen, name))
    return out


def _conda_parents(lock_conda: tuple[object, ...]) -> dict[str, tuple[str, ...]]:
    graph: dict[str, list[str]] = {}
    for package in lock_conda:
        for dep in getattr(package, "depends", ()):
            graph.setdefault(str(dep).split()[0], []).append(str(getattr(package, "name", "")))
    return {k: tuple(v) for k, v in graph.items()}


def _provider(ctx: Context, name: str, held: set[str]) -> str:
    """``name`` itself, or, for an import name the lock does not hold (``PIL``, ``yaml``),
    the distribution the scan maps it to: the user asks about what model.py says."""
    if canonicalize_name(name) in held or name in held:
        return name
    row = next((r for r in ctx.requirements.rows if r.key == name and r.distribution), None)
    return row.distribution if row is not None and row.distribution else name


def why(ctx: Context, name: str) -> WhyResult:
    """Why ``name`` (a distribution, or an import of the model) is in ``ctx``'s lock, asked
    with the options the run uses (``ctx.options``: the lock's remembered indexes too)."""
    if not ctx.lock_path.is_file():
        raise UsageError(f"{ctx.model.name} has no {ctx.lock_path.name}: nothing is locked yet",
                         hint=f"lock it first: tritonpack lock {ctx.model.path}")
    lock = read_lock(ctx.lock_path)
    name = _provider(ctx, name, {canonicalize_name(p.name) for p in lock.pypi}
                     | {p.name for p in lock.conda})
    want = canonicalize_name(name)
    pin = next((p for p in lock.pypi if canonicalize_name(p.name) == want), None)
    if pin is not None:
        from .backend import UvBackend
        from .pypi import check_find_links, resolve_failed
        from .stage import lock_indexes

        kept = (tuple(f"{p.name}=={p.version}" for p in lock.pypi), ())
        indexes = lock_indexes(ctx, ctx.options)
        check_find_links(indexes)
        try:
            text = UvBackend().compile(ctx.requirements.pypi, ctx.target, indexes,
                                       prefer=kept, annotate=True)
        except ProcessError as exc:  # said as lock says it, not as uv's exit status
            raise resolve_failed(exc, indexes, ctx.target.python) from exc
        chains = _chains(want, parse_via(text), ctx)
        return WhyResult(ctx.model.name, pin.name, pin.version, "pypi",
                         tuple(dict.fromkeys(chains)) or ((pin.name, *_direct(ctx, want)),))
    conda = next((p for p in lock.conda if p.name == name), None)
    if conda is None:
        held = sorted({p.name for p in lock.pypi} | {p.name for p in lock.conda})
        shown = repr(name) if not name.strip() else name if len(name) <= 80 else name[:80] + "…"
        raise UsageError(f"{shown} is not in {ctx.lock_path} (it holds {', '.join(held)})")
    declared = {m[0] for spec in ctx.requirements.conda
                if (m := re.match(r"[A-Za-z0-9_.-]+", spec.strip())) is not None}
    parents = _conda_parents(lock.conda)
    chain: list[str] = [conda.name]
    while chain[-1] not in declared and chain[-1] != "python" and parents.get(chain[-1]) \
            and parents[chain[-1]][0] not in chain:
        chain.append(parents[chain[-1]][0])
    reason = ("declared in tritonpack.toml [conda] or environment.yml" if chain[-1] in declared
              else "the target's Python: Triton's stub runs the environment on it"
              if chain[-1] == "python" else
              "part of the environment's base, with the target's Python")
    return WhyResult(ctx.model.name, conda.name, conda.version, "conda", ((*chain, reason),))
