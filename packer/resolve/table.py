"""The generated import table: which PyPI distributions provide an import name.

``recipes/import_table.tsv`` is made from real distributions' file lists by
``tools/gen_import_table.py`` (the most-downloaded PyPI projects); it is data, read here as
text. Where several distributions provide one module, the choice is the model's: a declared
requirement first, then the attributes its code uses (``bson.loads`` is the standalone bson
project's, ``bson.encode`` pymongo's), else the most downloaded, with a note naming the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from packaging.utils import canonicalize_name

TABLE_NAME = "import_table.tsv"


@dataclass(frozen=True)
class Choice:
    """What provides one import: the distribution, why it, and the others that also do."""

    distribution: str
    others: tuple[str, ...] = ()
    by: str = ""  # "" (the only one) | declared | attribute NAME | most downloaded


@dataclass(frozen=True)
class ImportTable:
    providers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # most downloaded first
    attrs: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)  # (module, dist)
    made: str = ""  # the date in the table's header

    def longest(self, module: str) -> str | None:
        """The longest dotted key of the table that is ``module`` or a package above it."""
        parts = module.split(".")
        for n in range(len(parts), 0, -1):
            key = ".".join(parts[:n])
            if key in self.providers:
                return key
        return None

    def below(self, module: str) -> tuple[str, ...]:
        """``import google`` names no row; rows below it do (``google.protobuf``): their
        providers, when they are one distribution."""
        prefix = module + "."
        dists = {d for k, v in self.providers.items() if k.startswith(prefix) for d in v[:1]}
        return tuple(dists) if len(dists) == 1 else ()

    def provides(self, distribution: str, module: str) -> bool:
        key = self.longest(module)
        want = canonicalize_name(distribution)
        return key is not None and any(canonicalize_name(d) == want for d in self.providers[key])

    def choose(self, key: str, declared: Iterable[str] = (), used: Iterable[str] = ()) -> Choice:
        """The provider of ``key`` for a model that declares ``declared`` (canonical names)
        and uses ``used`` attributes of the module (``bson.loads``: loads)."""
        dists = self.providers.get(key, ()) or self.below(key)
        if not dists:
            raise KeyError(key)
        if len(dists) == 1:
            return Choice(dists[0])
        wanted = set(declared)
        for dist in dists:
            if canonicalize_name(dist) in wanted:
                return Choice(dist, _others(dists, dist), "declared")
        names = set(used)
        hits = [(d, sorted(names & self.attrs.get((key, d), frozenset()))) for d in dists]
        hits = [(d, n) for d, n in hits if n]
        if len(hits) == 1:
            dist, attrs = hits[0]
            return Choice(dist, _others(dists, dist), f"attribute {key}.{attrs[0]}")
        return Choice(dists[0], dists[1:], "most downloaded")


def _others(dists: tuple[str, ...], chosen: str) -> tuple[str, ...]:
    return tuple(d for d in dists if d != chosen)


def parse(text: str) -> ImportTable:
    """Read the table's text (see its header); a malformed line is skipped, not fatal."""
    providers: dict[str, tuple[str, ...]] = {}
    attrs: dict[tuple[str, str], frozenset[str]] = {}
    made = ""
    for line in text.splitlines():
        if line.startswith("#"):
            if line.startswith("# made: "):
                made = line[len("# made: "):].split(",", 1)[0].strip()
            continue
        key, sep, value = line.partition("\t")
        if not sep or not key:
            continue
        if ":" in key:
            module, _, dist = key.partition(":")
            attrs[(module, dist)] = frozenset(value.split())
        else:
            providers[key] = tuple(value.split())
    return ImportTable(providers, attrs, made)


def merged(base: ImportTable, extra: ImportTable) -> ImportTable:
    """A user's table on top of the built-in one: its rows replace the rows of the same name."""
    return ImportTable({**base.providers, **extra.providers}, {**base.attrs, **extra.attrs},
                       extra.made or base.made)
