"""What a serving environment never needs, removed after conda-pack chose what goes in.

Each rule is a glob relative to the environment root (``{py}`` is ``pythonX.Y``);
``--keep GLOB`` keeps whatever a rule would remove. Stubs are not always dead weight:
packages built on ``lazy_loader`` (librosa, scikit-image, ...) read ``__init__.pyi`` at
import time, so the ``.pyi`` files of a distribution that requires lazy_loader, and any
``X.pyi`` whose ``X.py`` reads stubs, are kept. What is pruned is held aside (``holding``)
until the pack has imported every scanned module with the environment's own Python
(packer.build.importcheck); a module that stopped importing gets its files back.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from ..build import dists

# (name, globs): documented in the README, in this order
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bytecode caches", ("**/__pycache__",)),
    ("static libraries", ("lib/*.a", "lib/{py}/config-*/*.a", "lib/{py}/site-packages/**/*.a")),
    ("headers", ("include",)),
    ("docs and man pages", ("share/man", "share/doc", "share/info", "share/gtk-doc")),
    ("stdlib test suite", ("lib/{py}/test", "lib/{py}/unittest/test", "lib/{py}/lib2to3/tests",
                           "lib/{py}/idlelib/idle_test", "lib/{py}/tkinter/test",
                           "lib/{py}/distutils/tests", "lib/{py}/ctypes/test",
                           "lib/{py}/sqlite3/test")),
    ("idle, tkinter, turtledemo", ("lib/{py}/idlelib", "lib/{py}/tkinter", "lib/{py}/turtledemo",
                                   "lib/{py}/turtle.py", "bin/idle*")),
    ("ensurepip", ("lib/{py}/ensurepip",)),
    # to four levels: scipy's (sparse/linalg/_isolve/tests...) are 283 entries of medium's
    # 3,800 beyond the second, sympy's and networkx's 441 in heavy
    ("package test dirs", ("lib/{py}/site-packages/*/tests", "lib/{py}/site-packages/*/*/tests",
                           "lib/{py}/site-packages/*/*/*/tests",
                           "lib/{py}/site-packages/*/*/*/*/tests")),
    ("package C/C++ headers and Cython sources",
     ("lib/{py}/site-packages/**/*.h", "lib/{py}/site-packages/**/*.hpp",
      "lib/{py}/site-packages/**/*.cuh", "lib/{py}/site-packages/**/*.pxd",
      "lib/{py}/site-packages/**/*.pyx")),
    ("type stubs", ("lib/{py}/site-packages/**/*.pyi",)),
    # C++ test programs and their data, and protoc, in torch's wheels (138 MB of torch 2.13's
    # CPU build); torch's code runs only bin/torch_shm_manager, which stays
    ("torch's C++ tests and build tools",
     ("lib/{py}/site-packages/torch/test", "lib/{py}/site-packages/torch/bin/*[Tt]est*",
      "lib/{py}/site-packages/torch/bin/protoc*", "lib/{py}/site-packages/torch/bin/*.pt",
      "lib/{py}/site-packages/torch/bin/*.ptl", "lib/{py}/site-packages/torch/bin/upgrader_models")),
    ("conda-pack's unused activation scripts", ("bin/activate.fish",)),
    # pip: no server runs it (Triton's stub does not, and tritonpack installs with uv or its
    # own pip); 500 files and 7 MB at every start. Kept when the model imports pip, the lock
    # installs it from PyPI (asked for), a distribution requires it, or with --keep 'pip*'
    ("pip", ("lib/{py}/site-packages/pip", "lib/{py}/site-packages/pip-*.dist-info",
             "bin/pip", "bin/pip3", "bin/pip3.*", "conda-meta/pip-*.json")),
)
PIP_RULE = "pip"


_READS_STUBS = (b"attach_stub", b"lazy_loader", b".pyi")


@dataclass(frozen=True)
class Held:
    """One pruned path, held aside until the import check says it may go."""

    rule: str
    rel: str  # relative to the env root
    files: int
    bytes: int


@dataclass(frozen=True)
class PruneReport:
    removed: dict[str, tuple[int, int]] = field(default_factory=dict)  # rule -> (files, bytes)
    kept: tuple[str, ...] = ()
    held: tuple[Held, ...] = ()
    notes: tuple[str, ...] = ()

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


def _move(source: Path, dest: Path) -> None:
    """Rename ``source`` to ``dest``, merging into a directory already there (a
    ``__pycache__`` held before the ``test`` dir that holds it)."""
    if dest.is_dir() and not dest.is_symlink() and source.is_dir() and not source.is_symlink():
        for child in list(source.iterdir()):
            _move(child, dest / child.name)
        source.rmdir()
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    source.rename(dest)


def stub_readers(root: Path, python: str) -> tuple[str, ...]:
    """Top-level packages (relative dirs) whose distribution requires lazy_loader."""
    site = root / "lib" / f"python{python}" / "site-packages"
    out: list[str] = []
    for dist in dists.installed(site):
        if not any(_needs_lazy_loader(line) for line in dist.requires):
            continue
        names = dist.top_level or sorted(
            {path.split("/", 1)[0] for path in dist.files if "/" in path}
            - {"..", ""} - {p for p in (f.split("/", 1)[0] for f in dist.files)
                            if p.endswith((".dist-info", ".data"))})
        out += [f"lib/python{python}/site-packages/{n}" for n in names]
    return tuple(sorted(set(out)))


def _kept(rel: str, name: str, keep: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(rel, k) or fnmatch.fnmatch(name, k) for k in keep)


def unmatched(keep: tuple[str, ...], report: PruneReport) -> tuple[str, ...]:
    """The --keep patterns that kept nothing the rules would have removed (a typo, most
    likely): said in a note, never an error."""
    return tuple(k for k in keep
                 if not any(_kept(rel, rel.rsplit("/", 1)[-1], (k,)) for rel in report.kept))


def _pip_needed(root: Path, python: str) -> bool:
    """Whether an installed distribution other than pip requires pip (not behind an extra)."""
    site = root / "lib" / f"python{python}" / "site-packages"
    for dist in dists.installed(site):
        if canonicalize_name(dist.name) == "pip":
            continue
        for line in dist.requires:
            name = re.match(r"\s*([A-Za-z0-9._-]+)", line)
            if name is not None and canonicalize_name(name[1]) == "pip" and "extra ==" not in line:
                return True
    return False


def _needs_lazy_loader(requirement: str) -> bool:
    """A ``Requires-Dist`` of lazy_loader itself, not one behind an extra."""
    name = re.match(r"\s*([A-Za-z0-9._-]+)", requirement)
    return (name is not None and canonicalize_name(name[1]) == "lazy-loader"
            and "extra ==" not in requirement)


def _reads_its_stub(path: Path) -> bool:
    """``X.pyi`` beside an ``X.py`` that loads stubs at run time (lazy_loader.attach_stub)."""
    source = path.with_suffix(".py")
    try:
        with source.open("rb") as fh:
            head = fh.read(64 << 10)
    except OSError:
        return False
    return any(marker in head for marker in _READS_STUBS)


def prune(root: Path, python: str, keep: tuple[str, ...] = (),
          holding: Path | None = None, imports: tuple[str, ...] = (),
          locked: tuple[str, ...] = ()) -> PruneReport:
    """Remove the rules' matches under ``root`` (a staged env), except what ``keep`` matches,
    the stubs read at run time and pip where it is needed (``imports``: the model's top-level
    imports; ``locked``: the PyPI distributions the lock installs, the user's requirements
    and theirs). With ``holding``, pruned paths are moved there, to be put back
    (``restore``) or dropped with it."""
    removed: dict[str, tuple[int, int]] = {}
    kept: list[str] = []
    held: list[Held] = []
    py = f"python{python}"
    readers = stub_readers(root, python)
    for name, globs in RULES:
        if name == PIP_RULE and ("pip" in imports or _pip_needed(root, python)
                                 or "pip" in {canonicalize_name(n) for n in locked}):
            continue
        if name == PIP_RULE:  # pip whole or not at all: a --keep of one part keeps every part
            parts = [p for g in globs for p in _matches(root, g.format(py=py))]
            rels = [p.relative_to(root).as_posix() for p in parts]
            if any(_kept(rel, p.name, keep) for rel, p in zip(rels, parts, strict=True)):
                kept += rels
                continue
        files = size = 0
        for pattern in globs:
            for path in _matches(root, pattern.format(py=py)):
                rel = path.relative_to(root).as_posix()
                if _kept(rel, path.name, keep):
                    kept.append(rel)
                    continue
                if path.suffix == ".pyi" and (
                        any(rel.startswith(r + "/") for r in readers) or _reads_its_stub(path)):
                    continue  # read at import time: not a stub for type checkers only
                if not (path.exists() or path.is_symlink()):
                    continue  # inside something removed already
                n, b = tree_size(path)
                files, size = files + n, size + b
                if holding is not None:
                    _move(path, holding / rel)
                    held.append(Held(name, rel, n, b))
                elif path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        if files:
            removed[name] = (files, size)
    return PruneReport(removed, tuple(kept), tuple(held))


def restore(root: Path, holding: Path, report: PruneReport, under: tuple[str, ...] | None,
            note: str) -> PruneReport:
    """Put back the held paths below ``under`` (relative dirs; None: all of them)."""
    removed = dict(report.removed)
    still: list[Held] = []
    back = 0
    for item in report.held:
        if under is not None and not any(item.rel == u or item.rel.startswith(u + "/")
                                         for u in under):
            still.append(item)
            continue
        source = holding / item.rel
        if source.exists() or source.is_symlink():
            _move(source, root / item.rel)
            files, size = removed.get(item.rule, (0, 0))
            removed[item.rule] = (files - item.files, size - item.bytes)
            back += item.files
    removed = {k: v for k, v in removed.items() if v[0] > 0}
    notes = report.notes + ((note,) if back and note else ())
    return PruneReport(removed, report.kept, tuple(still), notes)


def largest_packages(root: Path, python: str, top: int = 8) -> list[tuple[str, int]]:
    site = root / "lib" / f"python{python}" / "site-packages"
    sizes: list[tuple[str, int]] = []
    if site.is_dir():
        for entry in site.iterdir():
            if entry.name.endswith((".dist-info", ".egg-info")) or entry.name == "__pycache__":
                continue
            sizes.append((entry.name, tree_size(entry)[1]))
    return sorted(sizes, key=lambda x: -x[1])[:top]
