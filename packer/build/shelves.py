"""Which shelf of rattler's package cache (``pkgs/SHELF``) a lock's conda packages go to.

rattler keeps an extracted package in a folder named ``name-version-build`` and records
beside it the sha256 it was extracted from; asked for the same name with another sha256, it
extracts again over it (py-rattler 0.28: ``rattler_cache``'s ``sha256_mismatch``). Two locks
whose ``python-3.10.15-h0`` differ (a local Python made from another CPython) would each
re-extract it over the other, and one could link from a folder the other is replacing.
A shelf per whole set of locked sha256s avoided that and kept a copy of python, numpy...
per distinct lock (13 variants of one model: 13 copies).

A shelf is shared instead by every lock that agrees with it: ``pkgs/shelves.json`` records,
for each shelf, the sha256 of each ``name-version-build`` ever installed from it; a lock
goes to the first shelf where none of its packages has another sha256, else to a new one.
So a folder of a shelf only ever holds one archive's bytes (the locked sha256, checked
before the install by ``condainstall.verified``; rattler checks it again). The manifest is
read and written under its own lock; an install holds its shelf's lock (``shelf_lock``). The
locks lie in ``pkgs`` itself: caches that share that folder (a link) share them too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..core.atomic import atomic_write_bytes
from ..core.cachehome import cache_dir, cache_error
from ..core.errors import BuildError
from ..core.flock import held
from ..core.fsguard import read_regular
from ..core.storefile import real_dir
from ..lock.conda import CondaPackage

MANIFEST = "shelves.json"
PREFIX = "shelf-"  # shelf-0, shelf-1, ...: never the name of an older per-lock shelf (hex)
LIMIT = 16 << 20
# a shelf's name as _new makes it: a manifest's other keys ("shelf-/../../x", "shelf-²", a
# number of 5000 digits) name no shelf, never a folder outside pkgs, never int()'s error
_NAME = re.compile(r"shelf-[0-9]{1,9}")

Shelves = dict[str, dict[str, str]]  # shelf -> name-version-build -> sha256


def folder(pkg: CondaPackage) -> str:
    """The name rattler gives the package's extracted folder: what two locks may disagree on."""
    return f"{pkg.name}-{pkg.version}-{pkg.build}"


def _read(path: Path) -> Shelves:
    """The manifest; empty when missing or not what tritonpack writes (then every shelf on
    disk is left alone: ``_new`` never names one that exists)."""
    try:
        data = json.loads(read_regular(path, BuildError, "shelf manifest", limit=LIMIT))
    except (OSError, ValueError, RecursionError, BuildError):  # RecursionError: "[[[[..."
        return {}
    if not isinstance(data, dict):
        return {}
    return {shelf: {str(k): str(v) for k, v in entries.items()}
            for shelf, entries in data.items()
            if isinstance(shelf, str) and _NAME.fullmatch(shelf) and isinstance(entries, dict)}


def _ours(path: Path) -> bool:
    """A shelf that is not there yet, or a real folder: never a symlink to elsewhere."""
    return not os.path.lexists(path) or real_dir(path)


def _new(shelves: Shelves, pkgs: Path) -> str:
    n = 0
    while f"{PREFIX}{n}" in shelves or os.path.lexists(pkgs / f"{PREFIX}{n}"):
        n += 1
    return f"{PREFIX}{n}"


def choose(shelves: Shelves, packages: Sequence[CondaPackage], pkgs: Path) -> str:
    """The first shelf that agrees with every package of the lock, else a new one."""
    for shelf in sorted(shelves, key=lambda s: int(s[len(PREFIX):])):
        have = shelves[shelf]
        if not _ours(pkgs / shelf):
            continue  # a link planted in the cache: rattler would extract (and replace) there
        if all(have.get(folder(p), p.sha256) == p.sha256 for p in packages):
            return shelf
    return _new(shelves, pkgs)


def assign(packages: Sequence[CondaPackage]) -> str:
    """The shelf for ``packages``, recorded (with their sha256s) before anything is extracted
    into it: a run at once with a conflicting lock is sent to another shelf."""
    pkgs = cache_dir("pkgs")
    with held(pkgs / f".{MANIFEST}.lock"):  # in pkgs: caches that share it share its locks
        shelves = _read(pkgs / MANIFEST)
        shelf = choose(shelves, packages, pkgs)
        entries = shelves.setdefault(shelf, {})
        if any(entries.get(folder(p)) != p.sha256 for p in packages):
            entries.update({folder(p): p.sha256 for p in packages})
            try:
                atomic_write_bytes(pkgs / MANIFEST, json.dumps(shelves, indent=1,
                                                               sort_keys=True).encode())
            except OSError as exc:
                raise cache_error(exc) from exc
    return shelf


@contextlib.contextmanager
def shelf_lock(shelf: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """One install at a time into a shelf of rattler's package cache (``pkgs/SHELF``): builds
    of locks that agree share it, and rattler's extraction is not guarded between processes
    (with the test suite's xdist workers, one pack failed with exit 8, installing the locked
    conda packages failed, while another worker's build of the same packages ran). Installs
    into other shelves go on; ``on_wait`` is told when another run's install holds it."""
    with held(cache_dir("pkgs") / f".{shelf}.lock", on_wait=on_wait):
        yield
