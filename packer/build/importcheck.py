"""Import the scanned modules with the environment's own Python, once per pack.

This runs third-party code (the packages the lock installed) and the standard library, never
the user's: the user's model is not imported. It exists to prove that pruning removed nothing
a package reads at import time (the import failures it sees are compared by the caller with
what was pruned), and to say which source files those imports loaded: what a server start
loads, so what ships with bytecode (``pack.bytecode``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..core import deadlines, proc, reused
from ..core.errors import BuildError, ProcessError
from ..core.fsguard import open_regular
from . import compileahead

_SEPARATOR = "--load-only--"
SCRIPT = r"""
import sys
sys.path[:] = [p for p in sys.path if p not in ("", ".")]  # nothing from the cwd, as -I
import importlib, json, os
report, ahead, args = sys.argv[1], sys.argv[2] == "compile", sys.argv[3:]
quiet = []  # set while the compile below writes a .pyc: its own files are no input
""" + compileahead.CLIENT + r"""
if ahead:  # each source the imports load compiled once, its canonical .pyc written
    _ahead(quiet)
opened, listed, scanned = set(), set(), set()
watching = [True]  # off once the imports are done: this script's own reads are no input
def _audit(event, args):  # what the imports read: their answer is a function of those bytes
    if not watching or quiet:
        pass
    elif event == "open" and isinstance(args[0], (str, bytes)):
        opened.add(os.fsdecode(args[0]))
    elif event in ("os.listdir", "os.scandir") and isinstance(args[0], (str, bytes)):
        code = sys._getframe(1).f_code  # the import system's own listing looks for modules
        finder = (code.co_name == "_fill_cache"
                  and code.co_filename.startswith("<frozen importlib"))
        (scanned if finder else listed).add(os.fsdecode(args[0]))
sys.addaudithook(_audit)
stated = set()  # what the imports asked os.stat / os.lstat about (os.path.exists & co): no
class _Watch:  # audit event; the import system's own stats go to posix, never here. An
    def __init__(self, real):  # object, not a function: a class that keeps os.stat as an
        self.real = real  # attribute (Python 3.10's pathlib._NormalAccessor) would bind a
    def __call__(self, path, *rest, **named):  # function as a method, passing itself too
        if watching and not quiet and isinstance(path, (str, bytes, os.PathLike)):
            name, fd = os.fsdecode(path), named.get("dir_fd")
            if fd is not None and not os.path.isabs(name):  # a name in the folder fd opened
                try:
                    name = os.path.join(os.readlink(f"/proc/self/fd/{int(fd)}"), name)
                except (OSError, TypeError, ValueError):
                    name = None
            if name is not None:
                stated.add(os.path.abspath(name))
        return self.real(path, *rest, **named)
for _name in ("stat", "lstat"):  # what os says the real one supports, said of its watch
    _real, _watch = getattr(os, _name), _Watch(getattr(os, _name))  # too (shutil asks at
    for _set in (os.supports_dir_fd, os.supports_fd, os.supports_follow_symlinks):  # import
        if _real in _set:  # whether rmtree can use dir_fd)
            _set.add(_watch)
    setattr(os, _name, _watch)
cut = args.index("--load-only--")
failed = {}
for name in args[cut + 1:]:  # what the server loads anyway: failures are not this check's
    try:
        importlib.import_module(name)
    except BaseException:
        pass
for name in args[:cut]:
    try:
        importlib.import_module(name)
    except BaseException as exc:  # SystemExit and friends are failures too
        failed[name] = f"{type(exc).__name__}: {exc}"[:300]
watching.clear()
root = os.path.realpath(sys.prefix) + os.sep
loaded, read = set(), set()
def _inside(path, into):
    real = os.path.realpath(path)
    if real.startswith(root):
        into.add(real[len(root):])
for module in list(sys.modules.values()):
    try:  # the module's own dict: a lazy module's __getattr__ would import (or raise)
        space = object.__getattribute__(module, "__dict__")
        path = space.get("__file__")
        if isinstance(path, str) and os.path.isfile(path):  # not a member of a zip: the
            _inside(path, read)                              # zip itself was opened
            if path.endswith(".py"):
                _inside(path, loaded)
        for folder in space.get("__path__") or ():
            scanned.add(folder)
    except BaseException:
        pass
for folder in sys.path:  # listed before the hook ran (.pth files read by site then too)
    scanned.add(folder)
    try:
        for name in os.listdir(folder):  # kept relative, as every input (were absolute:
            if name.endswith(".pth"):       # an env with a .pth file had no answer kept)
                _inside(os.path.join(folder, name), read)
    except (OSError, TypeError):
        pass
try:  # the shared libraries the imports mapped (and the interpreter, libpython)
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
        opened.update(f[5].strip() for f in (line.split(None, 5) for line in maps)
                      if len(f) == 6 and f[5].startswith("/"))
except OSError:
    pass
absent = set()  # opened and not there: its appearing could change the answer
for path in opened | stated:  # stated: a file's being there, or not, may decide an import
    if os.path.isfile(path):
        _inside(path, read)
    elif not os.path.lexists(path):
        _inside(path, absent)
folders, looked = set(), set()
for into, found in ((folders, listed), (looked, scanned)):
    for folder in found:
        if isinstance(folder, str) and os.path.isdir(folder):
            _inside(folder, into)
with open(report, "w", encoding="utf-8") as fh:  # not stdout: packages print there, at exit too
    json.dump([failed, sorted(loaded), sorted(read), sorted(folders), sorted(absent),
               sorted(looked - folders)], fh)
"""


_MISSING = re.compile(r"^ModuleNotFoundError: No module named '([A-Za-z0-9_.]+)'")


class MissingAtImport(BuildError):
    """A checked module imports another that the environment lacks (a package that imports
    ``setuptools`` at run time without declaring it): the environment is not shipped."""

    def __init__(self, missing: dict[str, str], failed: dict[str, str]):
        first = sorted(missing)[0]
        super().__init__(
            f"import {first!r} fails in the built environment: it needs module "
            f"{missing[first]!r}, which no locked distribution provides ({failed[first]})",
            hint=f"declare the distribution that provides {missing[first]!r} in tritonpack.toml: "
                 '[requirements] pypi = ["NAME"]')
        self.missing = missing  # checked module -> the module it needs
        self.failed = failed


def missing_modules(failed: dict[str, str]) -> dict[str, str]:
    """Checked module -> the module it needs that is missing, for each failure that is a
    ``ModuleNotFoundError`` naming another package (one naming a part of the checked package
    itself is that package's own fault, not a missing dependency)."""
    out: dict[str, str] = {}
    for module, why in failed.items():
        found = _MISSING.match(why)
        if found and found.group(1).split(".")[0] != module.split(".")[0]:
            out[module] = found.group(1)
    return out


def refuse_missing(failed: dict[str, str]) -> None:
    """Raise ``MissingAtImport`` when a failure is a missing module of another package."""
    missing = missing_modules(failed)
    if missing:
        raise MissingAtImport(missing, failed)


class CheckFailed(Exception):
    """The check itself could not run to its end (a crash, a timeout)."""


@dataclass(frozen=True)
class Outcome:
    failed: dict[str, str]  # module -> why it does not import, for each checked one
    loaded: tuple[str, ...]  # the .py files the imports loaded, relative to the env root
    # what the imports read inside the env (relative): files (sources, extensions, the
    # libraries mapped, what was opened) and folders listed; the answer is a function of them
    read: tuple[str, ...] = ()
    listed: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()  # files the imports tried to open that were not there
    # folders only the import system listed (its finders, site's .pth look-up): what they
    # hold matters only under the names an import or site could take (``import_names``)
    scanned: tuple[str, ...] = ()


_MODULE_SUFFIXES = ("py", "pyc")


def import_names(names: list[str]) -> list[str]:
    """The names of a folder that the import system's listing of it can act on: a module,
    package or extension an import may find (``json``, ``json.py``, ``_x.cpython-310-….so``)
    and the ``.pth`` files site reads. The rest (``numpy-2.1.dist-info``, ``numpy.libs``,
    ``README.txt``, ``__pycache__``, whose files are read by path and so are inputs when read)
    no finder matches: pip's and uv's trees of one wheel may differ there."""
    def matters(name: str) -> bool:
        base, dot, rest = name.partition(".")
        return name.endswith(".pth") or (base.isidentifier() and name != "__pycache__" and (
            not dot or rest in _MODULE_SUFFIXES or name.endswith(".so")))

    return sorted(n for n in names if matters(n))


def run(root: Path, python: str, modules: tuple[str, ...], load: tuple[str, ...] = (),
        timeout: float = deadlines.IMPORT_CHECK, pycache: Path | None = None,
        ahead: bool = False) -> Outcome:
    """Import ``load`` (failures ignored), then ``modules``; say which of ``modules`` do not
    import, and which source files of the environment all of them loaded. ``pycache``: where
    bytecode compiled before is read from (``-X pycache_prefix``), never written by the
    import system; with ``ahead``, the check writes there the canonical bytecode of each
    source it compiles to import it (``compileahead``): the bytecode step then has those
    files done."""
    if not modules and not load:
        return Outcome({}, ())
    reused.check(kept=False)
    return _run(root, python, modules, load, timeout, pycache, ahead and pycache is not None)


def check_env(home: str) -> dict[str, str]:
    """The check's environment: tritonpack's clean one, no ``PYTHON*`` setting of the caller's
    (what ``-I`` would ignore; not ``-I`` itself, which ignores ``PYTHONHASHSEED`` too), a
    fixed hash seed (the bytecode it compiles is canonical: ``compileahead``) and a scratch
    ``HOME`` (caches some packages write at import, matplotlib's or numba's, go there, not
    to the user's home or the archive)."""
    env = proc.clean_env({"HOME": home, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"})
    return {k: v for k, v in env.items()
            if not k.startswith("PYTHON") or k in ("PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED")}


def _run(root: Path, python: str, modules: tuple[str, ...], load: tuple[str, ...],
         timeout: float, pycache: Path | None, ahead: bool) -> Outcome:
    # -B: no .pyc written into the tree being packed by the import system; -s: no user site
    try:
        with tempfile.TemporaryDirectory(prefix="tritonpack-import-") as home:
            report = Path(home) / "report.json"
            # -X utf8: the same codecs load whatever the packing machine's locale
            argv: list[str | Path] = [
                root / "bin" / f"python{python}", "-s", "-B", "-X", "utf8",
                *(["-X", f"pycache_prefix={pycache}"] if pycache else []),
                "-c", SCRIPT, report, "compile" if ahead else "",
                *modules, _SEPARATOR, *load]
            proc.run_contained(argv, env=check_env(home), cwd=Path(home), timeout=timeout)
            try:
                fh = open_regular(report, follow=False)  # never a FIFO a package left there
                if isinstance(fh, str):
                    raise ValueError(fh)
                with fh:
                    if os.fstat(fh.fileno()).st_size > _MAX_REPORT:
                        raise ValueError("too large")
                    failed, loaded, read, listed, absent, scanned = json.loads(fh.read())
                return Outcome({str(k): str(v) for k, v in failed.items()},
                               *(tuple(str(p) for p in x) for x in (loaded, read, listed,
                                                                     absent, scanned)))
            except (OSError, ValueError, TypeError, AttributeError, RecursionError) as exc:
                raise CheckFailed("no readable report from the import check") from exc
    except ProcessError as exc:
        raise CheckFailed(exc.output.strip().splitlines()[-1] if exc.output.strip()
                          else f"exit {exc.returncode}") from exc


_MAX_REPORT = 64 << 20  # a report larger than this was not written by the check
