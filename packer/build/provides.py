"""Proof at pack time, not at verify time, that the environment provides every scanned import.

After the install, each installed distribution's ``RECORD`` (its files) and ``top_level.txt``
say which modules it provides, read as text: nothing is imported. An import the environment
does not provide (a wrong guess, a declaration naming the wrong distribution, a wheel that
lays out its modules under another name) fails the pack in one sentence naming the import,
where it is used and the distribution that was expected to provide it. ``verify`` then
confirms it inside the server.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from packaging.utils import canonicalize_name

from ..core.errors import BuildError
from ..resolve.requirements import Resolution, toml_key
from . import dists

_MODULE_SUFFIXES = (".py", ".pyc", ".pyi")


def _module_names(path: str) -> list[str]:
    """Dotted module names a RECORD path provides (``a/b/c.py`` -> a, a.b, a.b.c)."""
    parts = path.split("/")
    if not parts or parts[0] in ("..", "") or parts[0].endswith((".dist-info", ".data")):
        return []
    last = parts[-1]
    if last.endswith(_MODULE_SUFFIXES):
        parts[-1] = last.rsplit(".", 1)[0]
    elif last.endswith((".so", ".pyd")):
        parts[-1] = last.split(".", 1)[0]
    else:
        parts = parts[:-1]  # a data file: its directories are packages (or namespace parts)
    parts = [p for p in parts if p != "__init__" and p != "__pycache__"]
    return [".".join(parts[:n]) for n in range(1, len(parts) + 1)]


def provided(site: Path) -> dict[str, set[str]]:
    """Module name -> the distributions (canonical names) whose files provide it."""
    out: dict[str, set[str]] = {}
    for dist in dists.installed(site):
        names = {name for path in dist.files for name in _module_names(path)}
        names.update(dist.top_level)
        for name in names:
            out.setdefault(name, set()).add(dist.key)
    return out


def _on_disk(site: Path, module: str) -> bool:
    """A module laid out in site-packages without a RECORD (conda packages)."""
    base = site.joinpath(*module.split("."))
    if not base.parent.is_dir():
        return False
    return base.is_dir() or base.with_name(base.name + ".py").is_file() or any(
        base.parent.glob(base.name + ".*.so"))


class Unprovided(BuildError):
    """A required import that nothing installed provides: ``row`` names what was expected."""

    def __init__(self, message: str, *, hint: str, row: Resolution, installed: bool):
        super().__init__(message, hint=hint)
        self.row = row
        self.installed = installed  # the expected distribution was installed (a wrong choice)


def check(site: Path, rows: Iterable[Resolution], installed: Iterable[str]) -> None:
    """Raise BuildError for the first required import that nothing in ``site`` provides."""
    modules = provided(site)
    wanted = {canonicalize_name(n) for n in installed}
    for row in rows:
        if row.distribution is None or row.key.startswith("."):
            continue
        dist = canonicalize_name(row.distribution)
        if not row.required and dist not in wanted:
            continue  # optional, and not installed: the model copes without it
        if row.key in modules or _on_disk(site, row.key):
            continue
        what = (f"{row.distribution!r} was installed but provides no module {row.key!r}"
                if dist in wanted else f"{row.distribution!r}, expected to provide it, "
                "was not installed")
        raise Unprovided(
            f"import {row.key!r} ({row.locations[0]}) is not provided by the built environment: "
            + what,
            hint=f"declare the distribution that provides it in tritonpack.toml: [imports] "
                 f'{toml_key(row.key)} = "NAME"'
                 + (", or pass your own code with --src DIR" if row.source == "guess" else ""),
            row=row, installed=dist in wanted)
