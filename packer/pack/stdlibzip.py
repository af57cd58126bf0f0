"""The standard library's pure-Python modules in one ``lib/pythonXY.zip``: one file to extract
instead of ~1,400.

Triton extracts the archive at every server start, and extraction is paid per file written
(bench/startup.py: 3,036 entries took 1.2 s to extract for 0.6 s of gunzip). CPython puts
``<prefix>/lib/pythonXY.zip`` on ``sys.path`` before ``lib/pythonX.Y`` (its embeddable
distributions ship the stdlib that way), and ``zipimport`` reads a hash-checked ``name.pyc``
stored beside ``name.py`` (the legacy location; it never looks in ``__pycache__``). The zip
is stored, not deflated: the archive's gzip compresses it once.

What stays a file, and why:
  * ``site-packages``, ``lib-dynload``, ``config-*``: installed packages, extension modules,
    the build's Makefile;
  * a package holding any file other than Python source or its bytecode (lib2to3's grammar,
    venv's scripts, pydoc_data's css): it may read it beside its ``__file__``, which a zip
    breaks; except the documentation files listed in ``DOCS`` that no code reads;
  * ``os.py``: the landmark by which ``bin/python3`` (run without ``PYTHONHOME``) finds
    its prefix, and with it the zip;
  * what ``bin/conda-unpack`` rewrites in place (``_sysconfigdata_*.py`` holds the prefix).
The zip is reproducible: sorted entries, a fixed timestamp and mode, no extra fields.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..core.reproducible import ZIP_EPOCH
from .bytecode import cached_pyc

KEEP_FILES = frozenset({"os.py"})  # getpath's landmark for the prefix
STAY = frozenset({"site-packages", "lib-dynload", "__pycache__"})
# documentation inside stdlib packages that no code reads (checked for 3.10 to 3.13)
DOCS = frozenset({
    "email/architecture.rst", "ctypes/README.ctypes", "ctypes/macholib/README.ctypes",
    "ctypes/macholib/fetch_macholib", "ctypes/macholib/fetch_macholib.bat",
    "distutils/README", "distutils/command/command_template",  # 3.10, 3.11
})

RULES = repr((1, sorted(KEEP_FILES), sorted(STAY), sorted(DOCS)))  # in the cache key


@dataclass(frozen=True)
class ZipReport:
    """What went into the zip, and the packages kept as files because of their data."""

    path: str = ""  # relative to the env root; "" when nothing was zipped
    modules: int = 0  # .py files moved into the zip
    files: int = 0  # files removed from the tree (sources and bytecode)
    kept: tuple[str, ...] = ()  # top-level stdlib packages kept as files (data beside them)


def zip_name(python: str) -> str:
    return "python" + python.replace(".", "") + ".zip"


def member_and_pyc(rel: str, source: Path, python: str) -> list[tuple[str, Path]]:
    """A zip member and, for Python source compiled already, its ``.pyc`` beside it
    (zipimport's legacy place: it never reads ``__pycache__``)."""
    pyc = cached_pyc(source, python)
    if source.suffix == ".py" and pyc.is_file():
        return [(rel, source), (rel[:-3] + ".pyc", pyc)]
    return [(rel, source)]


def _unpack_rewrites(root: Path, python: str) -> frozenset[str]:
    """Stdlib paths (relative to lib/pythonX.Y) that conda-unpack rewrites in place."""
    script = root / "bin" / "conda-unpack"
    if not script.is_file():
        return frozenset()
    text = script.read_text(encoding="utf-8", errors="replace")
    return frozenset(re.findall(rf"lib/python{re.escape(python)}/([^\"'\s,]+)", text))


def data_files(package: Path) -> list[str]:
    """Files in ``package`` that are neither Python source nor bytecode, nor listed ``DOCS``:
    anything that code could open beside its ``__file__``. Symlinks count as data."""
    lib = package.parent
    out = []
    for dirpath, _dirs, files in os.walk(package):
        for name in files:
            path = Path(dirpath) / name
            rel = path.relative_to(lib).as_posix()
            if path.is_symlink():
                out.append(rel)
            elif Path(dirpath).name == "__pycache__":
                continue
            elif not name.endswith(".py") and rel not in DOCS:
                out.append(rel)
    return sorted(out)


def plan(root: Path, python: str) -> tuple[list[Path], list[str]]:
    """(top-level modules and packages to zip, packages kept as files for their data)."""
    lib = root / "lib" / f"python{python}"
    rewrites = _unpack_rewrites(root, python)
    zipped: list[Path] = []
    kept: list[str] = []
    for entry in sorted(lib.iterdir()):
        name = entry.name
        if name in STAY or entry.is_symlink() or name.startswith("config-"):
            continue
        if entry.is_dir():
            if not (entry / "__init__.py").is_file():
                continue  # not a package (no namespace packages in the stdlib)
            if data_files(entry) or any(r.startswith(name + "/") for r in rewrites):
                kept.append(name)
                continue
            zipped.append(entry)
        elif name.endswith(".py") and name not in KEEP_FILES and name not in rewrites:
            zipped.append(entry)
    return zipped, kept


def _members(lib: Path, python: str, tops: list[Path]) -> list[tuple[str, Path]]:
    """(name in the zip, file on disk): sources, their bytecode as ``name.pyc``, docs."""
    out: list[tuple[str, Path]] = []
    for top in tops:
        sources = [top] if top.is_file() else [
            Path(d) / f for d, _dirs, files in os.walk(top) if Path(d).name != "__pycache__"
            for f in files]
        for src in sources:
            out += member_and_pyc(src.relative_to(lib).as_posix(), src, python)
    return sorted(out)


def write_zip(dest: Path, members: list[tuple[str, Path]]) -> None:
    """A stored (uncompressed) zip with sorted entries, fixed time and mode: same bytes in,
    same bytes out. Directory entries are written too (zipimport finds packages without
    them, but pkgutil and importlib.resources walk them)."""
    dirs = sorted({"/".join(n.split("/")[:i]) + "/" for n, _ in members
                   for i in range(1, n.count("/") + 1)})
    entries = sorted([(d, None) for d in dirs] + [(n, p) for n, p in members],
                     key=lambda e: e[0])
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, path in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.create_system = 3  # unix: the mode below is read
            info.compress_type = zipfile.ZIP_STORED
            if path is None:
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                zf.writestr(info, b"")
            else:
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                zf.writestr(info, path.read_bytes())


def zip_stdlib(root: Path, python: str) -> ZipReport:
    """Move the pure-Python stdlib of the staged env ``root`` into ``lib/pythonXY.zip``."""
    lib = root / "lib" / f"python{python}"
    if not lib.is_dir():
        return ZipReport()
    tops, kept = plan(root, python)
    if not tops:
        return ZipReport(kept=tuple(kept))
    members = _members(lib, python, tops)
    dest = root / "lib" / zip_name(python)
    write_zip(dest, members)
    for top in tops:
        if top.is_dir():
            shutil.rmtree(top)
        else:
            top.unlink()
            cached_pyc(top, python).unlink(missing_ok=True)
    return ZipReport(dest.relative_to(root).as_posix(),
                     sum(1 for n, _ in members if n.endswith(".py")), len(members), tuple(kept))
