"""What a build taught the lock, kept in it so that every later run locks the same way.

What only a lock or a build shows: the distribution chosen for an import does not
provide it (the installed files say so: try the table's other providers), and a package
imports at run time a module that nothing declares (``No module named 'setuptools'``: add
the distribution that provides it, with who needed it). Both are written under
``[inputs.learned]`` of ``tritonpack.lock``; ``packer.context.prepare`` reads them back, so
the lock stays fresh, and deleting the lock forgets them.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.fsguard import open_regular

_MAX_LOCK = 64 << 20  # a lock is read whole elsewhere; here a larger one teaches nothing


@dataclass(frozen=True)
class Added:
    """A distribution added because ``needed_by`` imports ``module`` at run time."""

    distribution: str
    module: str
    needed_by: str


@dataclass(frozen=True)
class Learned:
    imports: tuple[tuple[str, str], ...] = ()  # import key -> the distribution providing it
    added: tuple[Added, ...] = ()
    unavailable: tuple[str, ...] = ()  # "name==V" a pickle records, with no wheel for the target

    def __bool__(self) -> bool:
        return bool(self.imports or self.added or self.unavailable)

    @property
    def import_map(self) -> dict[str, str]:
        return dict(self.imports)

    def with_import(self, key: str, distribution: str) -> Learned:
        kept = tuple((k, d) for k, d in self.imports if k != key)
        return dataclasses.replace(self, imports=tuple(sorted((*kept, (key, distribution)))))

    def with_added(self, added: Added) -> Learned:
        return dataclasses.replace(self, added=tuple(sorted(
            {*self.added, added}, key=lambda a: (a.distribution, a.module))))

    def with_unavailable(self, pin: str) -> Learned:
        return dataclasses.replace(self, unavailable=tuple(sorted({*self.unavailable, pin})))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.imports:
            out["imports"] = dict(self.imports)
        if self.added:
            out["added"] = [{"distribution": a.distribution, "module": a.module,
                             "needed_by": a.needed_by} for a in self.added]
        if self.unavailable:
            out["unavailable"] = list(self.unavailable)
        return out


def from_dict(data: object) -> Learned:
    """Read leniently: what is not of the expected shape is dropped (the lock's own hash
    check refuses a hand-edited lock elsewhere)."""
    if not isinstance(data, dict):
        return Learned()
    imports = data.get("imports", {})
    pairs = tuple(sorted((k, v) for k, v in imports.items()
                         if isinstance(k, str) and isinstance(v, str))) if isinstance(
        imports, dict) else ()
    added = tuple(Added(a["distribution"], a["module"], a["needed_by"])
                  for a in data.get("added", []) if isinstance(a, dict)
                  and all(isinstance(a.get(k), str) for k in ("distribution", "module", "needed_by")))
    gone = data.get("unavailable", [])
    unavailable = tuple(sorted(v for v in gone if isinstance(v, str))) if isinstance(
        gone, list) else ()
    return Learned(pairs, added, unavailable)


def from_lock(path: Path) -> Learned:
    """What the lock at ``path`` learned; nothing when there is no readable lock."""
    fh = open_regular(path) if path.is_file() else "missing"  # a FIFO: never read, no hang
    if isinstance(fh, str):
        return Learned()
    try:
        with fh:
            data = tomllib.loads(fh.read(_MAX_LOCK).decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return Learned()  # an unreadable lock is refused, in its own words, where it is read
    inputs = data.get("inputs")
    return from_dict(inputs.get("learned")) if isinstance(inputs, dict) else Learned()
