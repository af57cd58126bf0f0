"""The pure-Python distributions of ``site-packages`` in one ``tritonpack-site.zip``: a few
files to extract instead of thousands.

Triton extracts the archive at every server start and pays per file written
(``stdlibzip``'s docstring; bench/startup.py). The stdlib is zipped already; this does the
same for the installed distributions that can be imported from a zip without noticing. The
zip lies in ``site-packages`` and is put on ``sys.path`` by ``tritonpack-site.pth``, a path
line (no code) that ``site`` appends after ``site-packages``: a file left in
``site-packages`` always wins over the zip. The gate (``envcheck.inspect``) knows that one
``.pth`` by its name and exact bytes; any other unowned ``.pth`` is still refused.

The unit is a distribution (its ``.dist-info/RECORD`` says which top-level modules and
packages are its own); each is zipped whole or kept as files. Kept as files, and why:
  * a native file (``.so``, ``.pyd``, anything ELF): an extension module cannot load from a
    zip;
  * code that finds its own files (``static_reads``: ``__file__``, ``__path__``, ``__spec__``,
    ``importlib.resources``, ``pkgutil.get_data``, ``pkg_resources``, ``inspect.getfile``...):
    a static AST look, never an import; any hit keeps the distribution as files. Without a
    hit its code has no way to name a data file beside it, so its data files (a man page,
    ``py.typed``, ``.pyi`` stubs) go into the zip too, where ``importlib.resources`` and
    ``pkgutil.get_data`` still read them through the zip's loader;
  * a namespace package (a directory without ``__init__.py``) or a top-level name another
    distribution also installs into: zipimport would split it;
  * a ``.pth`` of its own, a symlink, no RECORD, or a file ``bin/conda-unpack`` rewrites.
Sources ship with their hash-checked bytecode beside them as ``name.pyc`` (zipimport's
legacy layout; it never reads ``__pycache__``), so tracebacks still show the source line.
``dist-info`` directories stay files (``importlib.metadata``, entry points). The caller
imports the model's modules from the zipped layout afterwards (``staging``): a wrong guess
puts the files back instead of shipping.
"""

from __future__ import annotations

import ast
import csv
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..envcheck.inspect import SITE_PTH, SITE_PTH_TEXT, SITE_ZIP
from .bytecode import cached_pyc
from .stdlibzip import member_and_pyc, write_zip

NATIVE = (".so", ".pyd", ".dylib", ".dll")  # or ELF by its magic, whatever its name
# names and attributes by which code finds the files beside it (any use, not only a read)
SELF_NAMES = frozenset({"__file__", "__path__", "__spec__", "__loader__"})
SELF_ATTRS = frozenset({"__file__", "__path__", "__spec__", "__loader__", "co_filename",
                        "get_data", "get_resource_reader", "getfile", "getsourcefile",
                        "getabsfile", "resource_filename", "resource_stream",
                        "resource_string", "origin", "submodule_search_locations",
                        "locate_file", "getsitepackages", "getusersitepackages"})
# functions imported by name (``from inspect import getfile``) and strings that name a module's
# file or site-packages (``getattr(mod, "__file__")``, ``sysconfig.get_paths()["purelib"]``)
SELF_FUNCS = SELF_ATTRS - {"origin"}
SELF_STRINGS = frozenset({*SELF_NAMES, "purelib", "platlib", "site-packages"})
RESOURCE_MODULES = frozenset({"importlib.resources", "importlib_resources", "pkg_resources",
                              "pkgutil"})

# every hit names one of these (an identifier is spelt in ASCII, or NFKC-normalised to it:
# non-ASCII sources are always parsed)
_WORDS = tuple(w.encode() for w in (*SELF_NAMES, *SELF_ATTRS, *SELF_STRINGS, "resources",
                                    "pkgutil", "pkg_resources"))

RULES = repr((2, NATIVE, sorted(SELF_NAMES), sorted(SELF_ATTRS), sorted(SELF_STRINGS),
              sorted(RESOURCE_MODULES)))  # in the cache key


@dataclass(frozen=True)
class Dist:
    """One installed distribution: its dist-info dir and the top-level names it installs."""

    name: str  # the dist-info dir's name
    tops: tuple[str, ...]  # top-level packages (dirs) and modules (``name.py``) in site-packages


@dataclass(frozen=True)
class SiteZipReport:
    """What went into the zip, and the distributions kept as files with the reason."""

    path: str = ""  # relative to the env root; "" when nothing was zipped
    dists: tuple[str, ...] = ()  # dist-info names zipped
    tops: tuple[str, ...] = ()  # top-level names zipped
    files: int = 0  # files taken out of the tree
    kept: tuple[tuple[str, str], ...] = ()  # (dist-info name, why it stays files)


_MODULE = re.compile(r"(?!__pycache__)[A-Za-z_][A-Za-z0-9_]*(?:\.py)?")


def site_dir(root: Path, python: str) -> Path:
    return root / "lib" / f"python{python}" / "site-packages"


def _record_rows(record: Path) -> list[str]:
    try:
        with record.open(encoding="utf-8", newline="") as fh:
            return [row[0] for row in csv.reader(fh) if row and row[0]]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def distributions(site: Path) -> tuple[list[Dist], list[tuple[str, str]]]:
    """Every dist-info with a RECORD and its top-level names; those that cannot be zipped
    for what their RECORD says (no RECORD, a ``.pth``)."""
    dists: list[Dist] = []
    kept: list[tuple[str, str]] = []
    for info in sorted(site.glob("*.dist-info")):
        rows = _record_rows(info / "RECORD") if (info / "RECORD").is_file() else []
        if not rows:
            kept.append((info.name, "no RECORD names its files"))
            continue
        tops: set[str] = set()
        why = ""
        for row in rows:
            parts = PurePosixPath(row).parts
            if not parts or parts[0].endswith(".dist-info"):
                continue  # its metadata, or a file outside site-packages (``../../bin``)
            if len(parts) == 1 and row.endswith(".pth"):
                why = f"it installs {row}"
            elif len(parts) == 1 and row.endswith(NATIVE):
                why = f"{row} is a native file"
            elif _MODULE.fullmatch(parts[0]) and (len(parts) > 1 or row.endswith(".py")):
                tops.add(parts[0])  # an importable name only: never "/", "..", "__pycache__"
        if why:
            kept.append((info.name, why))
        elif tops:
            dists.append(Dist(info.name, tuple(sorted(tops))))
    return dists, kept


def _walk(path: Path) -> Iterator[Path]:
    """Every file and link under ``path`` (a file: itself), ``__pycache__`` left out."""
    if not path.is_dir() or path.is_symlink():
        yield path
        return
    for dirpath, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        here = Path(dirpath)
        yield from (here / d for d in dirs if (here / d).is_symlink())
        yield from (here / n for n in sorted(names))


def _namespace(top: Path) -> str:
    """A directory of Python files without ``__init__.py`` under ``top`` (or top itself)."""
    if not top.is_dir():
        return ""
    for dirpath, dirs, names in os.walk(top):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        if "__init__.py" not in names and (dirs or names):
            return Path(dirpath).relative_to(top.parent).as_posix()
    return ""


def static_reads(source: bytes) -> str:
    """What in this module's code finds its own files (``""``: nothing), read with ``ast``.
    Conservative: an unparsable file counts as a hit. An ASCII file naming none of the words
    a hit is made of has none, and is not parsed (sympy: a thousand files)."""
    if source.isascii() and not any(word in source for word in _WORDS):
        return ""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "it does not parse"
    for node in ast.walk(tree):
        if hit := _hit(node):
            return hit
    return ""


def _hit(node: ast.AST) -> str:
    """What this one node does to find its module's files (``""``: nothing)."""
    if isinstance(node, ast.Name) and node.id in SELF_NAMES | SELF_FUNCS:
        return node.id
    if isinstance(node, ast.Constant) and node.value in SELF_STRINGS:
        return repr(node.value)
    if isinstance(node, ast.Attribute) and (node.attr in SELF_ATTRS or (
            node.attr == "resources" and isinstance(node.value, ast.Name)
            and node.value.id == "importlib")):
        return f".{node.attr}"
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in RESOURCE_MODULES:
                return f"import {alias.name}"
    if isinstance(node, ast.ImportFrom) and node.module and (
            {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            & RESOURCE_MODULES or {a.name for a in node.names} & SELF_FUNCS):
        return f"from {node.module} import"
    return ""


_RECORD = re.compile(r"^\('([^'\n]+)', '([^'\n]+)', '(?:text|binary)'\),?$", re.MULTILINE)


def unpack_rewrites(root: Path) -> dict[str, str]:
    """File -> the prefix ``bin/conda-unpack`` replaces in it. conda-pack lists every text file
    a wheel installed, whether or not the prefix is in it: only a file that holds it is
    rewritten (and must stay a file)."""
    script = root / "bin" / "conda-unpack"
    if not script.is_file() or script.is_symlink():
        return {}
    text = script.read_text(encoding="utf-8", errors="replace")
    return {m.group(1): m.group(2) for m in _RECORD.finditer(text)}


def _head(file: Path) -> bytes:
    with file.open("rb") as fh:
        return fh.read(4)


def judge(site: Path, dist: Dist, shared: set[str], rewrites: dict[str, str]) -> str:
    """Why ``dist`` stays files (``""``: it may be zipped)."""
    rel_site = "/".join(site.parts[-3:])  # lib/pythonX.Y/site-packages
    for top in dist.tops:
        path = site / top
        if top in shared:
            return f"{top} is shared with another distribution"
        if not path.exists() and not path.is_symlink():
            continue  # pruned, or a RECORD row for a file gone
        if ns := _namespace(path):
            return f"{ns} is a namespace package"
        for file in _walk(path):
            rel = file.relative_to(site).as_posix()
            if file.is_symlink():
                return f"{rel} is a symlink"
            if file.name.endswith(NATIVE) or _head(file) == b"\x7fELF":
                return f"{rel} is a native file"
            prefix = rewrites.get(f"{rel_site}/{rel}")
            if not prefix and file.suffix != ".py":
                continue  # a data file: not read
            data = file.read_bytes()
            if prefix and prefix.encode() in data:
                return f"{rel} is rewritten by conda-unpack"
            if file.suffix == ".py" and (hit := static_reads(data)):
                return f"{rel} finds its own files ({hit})"
    return ""


def plan(root: Path, python: str) -> tuple[list[Dist], list[tuple[str, str]]]:
    """(distributions to zip, (distribution, why it stays files) for the others)."""
    site = site_dir(root, python)
    if not site.is_dir():
        return [], []
    dists, kept = distributions(site)
    owners: dict[str, int] = {}
    for dist in dists:
        for top in dist.tops:
            owners[top] = owners.get(top, 0) + 1
    shared = {top for top, n in owners.items() if n > 1}
    rewrites = unpack_rewrites(root)
    zipped = []
    for dist in dists:
        if not any((site / t).exists() for t in dist.tops):
            continue  # nothing of it left to zip
        why = judge(site, dist, shared, rewrites)
        if why:
            kept.append((dist.name, why))
        else:
            zipped.append(dist)
    return zipped, sorted(kept)


def members(site: Path, python: str, tops: list[str]) -> list[tuple[str, Path]]:
    """(name in the zip, file on disk): sources and their bytecode beside them as ``.pyc``."""
    out: list[tuple[str, Path]] = []
    for top in tops:
        for file in _walk(site / top):
            out += member_and_pyc(file.relative_to(site).as_posix(), file, python)
    return sorted(out)


def zip_site(root: Path, python: str, holding: Path | None = None) -> SiteZipReport:
    """Move the zippable distributions of the staged env ``root`` into
    ``site-packages/tritonpack-site.zip`` and write its ``.pth``. With ``holding``, the
    files are moved there (``unzip`` puts them back) instead of removed."""
    site = site_dir(root, python)
    dists, kept = plan(root, python)
    taken = [name for name in (SITE_ZIP, SITE_PTH) if os.path.lexists(site / name)]
    if taken:  # a distribution's own file of that name: never overwritten, nothing zipped
        why = f"site-packages already holds {taken[0]} (not tritonpack's): nothing is zipped"
        return SiteZipReport(kept=tuple(sorted([*kept, *((d.name, why) for d in dists)])))
    tops = sorted({t for d in dists for t in d.tops if (site / t).exists()})
    if not tops:
        return SiteZipReport(kept=tuple(kept))
    entries = members(site, python, tops)
    write_zip(site / SITE_ZIP, entries)
    (site / SITE_PTH).write_bytes(SITE_PTH_TEXT)
    for top in tops:
        _take(site / top, holding / top if holding else None, python)
    return SiteZipReport((site / SITE_ZIP).relative_to(root).as_posix(),
                         tuple(d.name for d in dists), tuple(tops), len(entries), tuple(kept))


def _take(path: Path, into: Path | None, python: str) -> None:
    if into is not None:
        into.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file():
            pyc = cached_pyc(path, python)
            if pyc.is_file():
                (into.parent / "__pycache__").mkdir(exist_ok=True)
                pyc.rename(into.parent / "__pycache__" / pyc.name)
        path.rename(into)
    elif path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
        cached_pyc(path, python).unlink(missing_ok=True)


def unzip(root: Path, python: str, report: SiteZipReport, holding: Path) -> None:
    """Undo ``zip_site``: the held files back in place, the zip and its ``.pth`` gone."""
    site = site_dir(root, python)
    for top in report.tops:
        held = holding / top
        held.rename(site / top)
        if held.suffix == ".py":
            pyc = cached_pyc(held, python)
            if pyc.is_file():
                (site / "__pycache__").mkdir(exist_ok=True)
                pyc.rename(site / "__pycache__" / pyc.name)
    (site / SITE_ZIP).unlink(missing_ok=True)
    (site / SITE_PTH).unlink(missing_ok=True)


def zipped_module(name: str, report: SiteZipReport) -> bool:
    """Whether importing ``name`` reads the zip (its top-level name went in)."""
    top = name.split(".")[0]
    return top in report.tops or f"{top}.py" in report.tops

