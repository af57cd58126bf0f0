"""What a serving environment never needs, removed after conda-pack chose what goes in.

Each rule is a glob relative to the environment root (``{py}`` is ``pythonX.Y``);
``--keep GLOB`` keeps whatever a rule would remove. Nothing a model imports at run
time is here: the verify probe imports every scanned module from the pruned env.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

# (name, globs): documented in the README, in this order
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bytecode caches", ("**/__pycache__",)),
    ("static libraries", ("lib/*.a", "lib/{py}/config-*/*.a", "lib/{py}/site-packages/**/*.a")),
    ("headers", ("include",)),
    ("docs and man pages", ("share/man", "share/doc", "share/info", "share/gtk-doc")),
    ("stdlib test suite", ("lib/{py}/test", "lib/{py}/unittest/test", "lib/{py}/lib2to3/tests",
                           "lib/{py}/idlelib/idle_test", "lib/{py}/tkinter/test")),
    ("idle, tkinter, turtledemo", ("lib/{py}/idlelib", "lib/{py}/tkinter", "lib/{py}/turtledemo",
                                   "lib/{py}/turtle.py", "bin/idle*")),
    ("ensurepip", ("lib/{py}/ensurepip",)),
    ("package test dirs", ("lib/{py}/site-packages/*/tests", "lib/{py}/site-packages/*/*/tests")),
    ("package C/C++ headers and Cython sources",
     ("lib/{py}/site-packages/**/*.h", "lib/{py}/site-packages/**/*.hpp",
      "lib/{py}/site-packages/**/*.cuh", "lib/{py}/site-packages/**/*.pxd",
      "lib/{py}/site-packages/**/*.pyx")),
    ("type stubs", ("lib/{py}/site-packages/**/*.pyi",)),
    ("conda-pack's unused activation scripts", ("bin/activate.fish",)),
)


@dataclass(frozen=True)
class PruneReport:
    removed: dict[str, tuple[int, int]] = field(default_factory=dict)  # rule -> (files, bytes)
    kept: tuple[str, ...] = ()

    @property
    def files(self) -> int:
        return sum(f for f, _ in self.removed.values())

    @property
    def bytes(self) -> int:
        return sum(b for _, b in self.removed.values())


def tree_size(path: Path) -> tuple[int, int]:
    """(files, bytes) of a file or a directory tree; symlinks count, entries that vanish don't."""
    if path.is_symlink() or path.is_file():
        return 1, path.lstat().st_size
    files = size = 0
    for dirpath, dirnames, filenames in os.walk(path):
        base = Path(dirpath)
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            with contextlib.suppress(OSError):
                size += (base / name).lstat().st_size
                files += 1
    return files, size


def _matches(root: Path, pattern: str) -> list[Path]:
    if pattern.startswith("**/"):
        name = pattern[3:]
        return sorted(p for p in root.rglob(name) if not p.is_symlink())
    if "/**/" in pattern:
        base, name = pattern.split("/**/", 1)
        return sorted(p for p in root.glob(base) for p in p.rglob(name)
                      if p.is_file() and not p.is_symlink())
    return sorted(root.glob(pattern))


def prune(root: Path, python: str, keep: tuple[str, ...] = ()) -> PruneReport:
    """Remove the rules' matches under ``root`` (a staged env), except what ``keep`` matches."""
    removed: dict[str, tuple[int, int]] = {}
    kept: list[str] = []
    py = f"python{python}"
    for name, globs in RULES:
        files = size = 0
        for pattern in globs:
            for path in _matches(root, pattern.format(py=py)):
                rel = path.relative_to(root).as_posix()
                if any(fnmatch.fnmatch(rel, k) or fnmatch.fnmatch(path.name, k) for k in keep):
                    kept.append(rel)
                    continue
                if not (path.exists() or path.is_symlink()):
                    continue  # inside something removed already
                n, b = tree_size(path)
                files, size = files + n, size + b
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        if files:
            removed[name] = (files, size)
    return PruneReport(removed, tuple(kept))


def largest_packages(root: Path, python: str, top: int = 8) -> list[tuple[str, int]]:
    site = root / "lib" / f"python{python}" / "site-packages"
    sizes: list[tuple[str, int]] = []
    if site.is_dir():
        for entry in site.iterdir():
            if entry.name.endswith((".dist-info", ".egg-info")) or entry.name == "__pycache__":
                continue
            sizes.append((entry.name, tree_size(entry)[1]))
    return sorted(sizes, key=lambda x: -x[1])[:top]
