"""A module of the user's that was left out: ``from preproc import x`` with no ``--src``.

Without ``--src`` such an import looks third-party, and the name itself is the guess (or the
import table's project of that name): the lock would pull an unrelated PyPI project. When no
recipe or declaration names the import and a package or module of that name sits in the
model's repository (beside the
model dir or its parents, up to the repository root, and one level inside each of those),
the scan refuses and says which ``--src`` to pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ..core.errors import ResolveError
from .requirements import Requirements

_SKIP = frozenset({"node_modules", "site-packages", "dist-packages", "build", "dist", "venv",
                   "env", "__pycache__"})
_MAX_CHILDREN = 256  # per directory looked into: a home dir is not walked
_MAX_LEVELS = 8  # ancestors looked at without a repository marker: two


def repository_root(model_dir: Path) -> Path | None:
    """The nearest ancestor holding ``.git`` / ``.hg`` (a worktree's ``.git`` is a file)."""
    for parent in model_dir.resolve().parents:
        if (parent / ".git").exists() or (parent / ".hg").exists():
            return parent
    return None


def _ancestors(model_dir: Path) -> list[Path]:
    root = repository_root(model_dir)
    chain = list(model_dir.resolve().parents)
    if root is None:
        return chain[:2]  # the model repository and the dir holding it
    return chain[: min(chain.index(root) + 1, _MAX_LEVELS)]


def _children(directory: Path) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)[:_MAX_CHILDREN]
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".") or entry.name in _SKIP:
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                yield Path(entry.path)
        except OSError:
            continue


def _provides(root: Path, name: str) -> Path | None:
    """``root/name/`` holding Python files, or ``root/name.py``."""
    if not name.isidentifier() or len(os.fsencode(name)) > 250:  # no file can be named so
        return None
    package, module = root / name, root / f"{name}.py"
    if module.is_file():
        return module
    if package.is_dir() and not package.is_symlink() and (
            (package / "__init__.py").is_file() or any(package.glob("*.py"))):
        return package
    return None


def find_in_repository(model_dir: Path, name: str) -> Path | None:
    """Where a package or module ``name`` sits near the model, or None."""
    model = model_dir.resolve()
    for ancestor in _ancestors(model_dir):
        found = _provides(ancestor, name)
        if found is not None:
            return found
        for child in _children(ancestor):
            if child == model:
                continue  # the model dir's own modules are found by the scan
            found = _provides(child, name)
            if found is not None:
                return found
    return None


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def check(model_dir: Path, requirements: Requirements) -> None:
    """Refuse a guessed import whose name is a package or module in the model's repository."""
    for row in requirements.rows:
        if row.source not in ("guess", "table") or "." in row.key:  # a table row too: the
            # table lists what some project ships (roboflow's `inference`), not what you meant
            continue
        found = find_in_repository(model_dir, row.key)
        if found is None:
            continue
        root = _shown(found.parent)
        raise ResolveError(
            f"import {row.key!r} ({row.locations[0]}) is your own code at {_shown(found)}, "
            "outside the model dir: without --src it would be locked as the PyPI project "
            f"{row.distribution!r}",
            hint=f"pass --src {root} to bundle it (remembered in the lock), or declare the "
                 f'distribution in tritonpack.toml: [imports] {row.key} = "NAME"')
