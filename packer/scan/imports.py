"""AST import scan: what model.py and the user's own modules import. Never imports or runs them.

Local modules are searched where the Python backend puts them on ``sys.path``
(``<model>/<version>`` and ``<model>``) and in ``--src`` roots; every local module
found is scanned in turn. Each import is classified for the *target* Python.
"""

from __future__ import annotations

import ast
import os
import sys
import tokenize
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ..core.errors import ScanError
from ..core.fsguard import read_regular
from . import pickles
from .conditions import Target as Conditions

BACKEND_MODULES = frozenset({"triton_python_backend_utils", "c_python_backend_utils"})
_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


class Kind(StrEnum):
    STDLIB = "stdlib"
    BACKEND = "backend"
    LOCAL = "local"
    THIRD_PARTY = "third-party"


@dataclass(frozen=True)
class ImportUse:
    """One import statement (or literal dynamic import) at one place."""

    module: str  # dotted name as imported
    kind: Kind
    file: str  # display path
    line: int
    optional: bool = False  # guarded by try/except ImportError
    lazy: bool = False  # inside a function or method
    dynamic: bool = False  # importlib.import_module / __import__ with a literal
    names: tuple[str, ...] = ()  # `from module import a, b`: a namespace package maps by these
    attrs: tuple[str, ...] = ()  # `import bson` then `bson.loads(...)`: loads (decides providers)

    @property
    def top(self) -> str:
        return self.module.split(".")[0]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file  # line 0: a data file


@dataclass(frozen=True)
class LocalModule:
    """A user module the model imports: inside the model dir, or under a --src root."""

    name: str  # dotted module name
    path: Path  # the .py file (a package's __init__.py)
    root: Path  # the sys.path entry it was found under
    in_model_dir: bool


@dataclass(frozen=True)
class ImportReport:
    model_dir: Path
    python: str
    uses: tuple[ImportUse, ...]
    local: tuple[LocalModule, ...]
    files: tuple[str, ...] = field(default=())
    notes: tuple[str, ...] = ()  # data files that could not be read, classes from __main__
    pickled: tuple[tuple[str, str, str], ...] = ()  # (distribution, version, file) a pickle records

    def of_kind(self, kind: Kind) -> tuple[ImportUse, ...]:
        return tuple(u for u in self.uses if u.kind is kind)

    def bundled(self) -> tuple[LocalModule, ...]:
        """User modules from outside the model dir: these go into the environment."""
        return tuple(m for m in self.local if not m.in_model_dir)

    def to_import(self) -> dict[str, tuple[str, ...]]:
        """What the pack's import check imports in the built environment: the third-party
        top-level names (``imports``), the modules as imported, unless guarded (``modules``),
        and, for what they load only, the stdlib modules and each ``from X import Y``'s
        ``X.Y``, which is a submodule (``PIL.Image``) when it is not a name in ``X``
        (``also``)."""
        third = self.of_kind(Kind.THIRD_PARTY)
        stdlib = tuple(u for u in self.of_kind(Kind.STDLIB) if not u.optional)
        subs = {f"{u.module}.{n}" for u in (*third, *stdlib) if not u.optional
                for n in u.names if n != "*"}
        return {"imports": tuple(sorted({u.top for u in third})),
                "modules": tuple(sorted({u.module for u in third if not u.optional})),
                "also": tuple(sorted({u.module for u in stdlib} | subs))}


def _display(path: Path, model_dir: Path) -> str:
    """``MODEL/1/model.py`` inside the model dir; the absolute path elsewhere (a --src root)."""
    try:
        return str(path.relative_to(model_dir.parent))
    except ValueError:
        return str(path)


def _grammar(python: str | None) -> tuple[int, int] | None:
    """The target's (major, minor) for ``ast.parse``; None when unknown."""
    if python is None:
        return None
    major, _, minor = python.partition(".")
    try:
        return (int(major), int(minor))
    except ValueError:
        return None


def parse_source(path: Path, shown: str, python: str | None = None) -> ast.Module:
    """Parse without running: under the target Python's grammar when it is this one's or older
    (a model using ``except*`` fails here, not in a 3.10 stub)."""
    try:
        raw = read_regular(path, ScanError, "Python source file", shown=shown)  # FIFO: no hang
    except PermissionError as exc:
        raise ScanError(f"{shown}: permission denied") from exc
    except OSError as exc:
        raise ScanError(f"{shown}: cannot read: {exc.strerror}") from exc
    try:
        encoding, _ = tokenize.detect_encoding(iter(raw.splitlines(keepends=True)).__next__)
        raw.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        raise ScanError(
            f"{shown}: not valid UTF-8 source",
            hint="save the file as UTF-8, or declare its encoding (# -*- coding: latin-1 -*-)",
        ) from exc
    grammar = _grammar(python)
    running = sys.version_info[:2]
    older = grammar if grammar is not None and grammar < running else None
    try:
        return ast.parse(raw, filename=shown, feature_version=older)
    except SyntaxError as exc:
        if exc.lineno is None:  # e.g. null bytes: no line to point at
            raise ScanError(f"{shown}: not Python source: {exc.msg}") from exc
        if older is not None and _parses(raw, shown):
            raise ScanError(
                f"{shown}:{exc.lineno}: syntax error under Python {python}, the target's: "
                f"{exc.msg}",
                hint=f"the Triton stub runs Python {python}: write code for it, or pick a "
                     "release whose stub is newer (tritonpack targets)",
            ) from exc
        newer = grammar is not None and grammar > running
        raise ScanError(
            f"{shown}:{exc.lineno}: syntax error: {exc.msg}",
            hint="tritonpack reads your code without running it; it must parse as Python"
                 + (f" (tritonpack runs on Python {running[0]}.{running[1]}: for syntax new in "
                    f"Python {python}, run it on {python} or later)" if newer else ""),
        ) from exc
    except ValueError as exc:  # null bytes
        raise ScanError(f"{shown}: not Python source: {exc}") from exc
    except (RecursionError, MemoryError) as exc:  # the parser's own nesting limit
        raise ScanError(f"{shown}: nested too deeply for Python's parser",
                        hint="Python cannot compile it either (the stub would fail to import "
                             "it): split the expression") from exc


def _parses(raw: bytes, shown: str) -> bool:
    try:
        ast.parse(raw, filename=shown)
    except (SyntaxError, ValueError):
        return False
    return True


MODEL_CLASS = "TritonPythonModel"


def binds_model_class(tree: ast.Module) -> bool:
    """Whether model.py binds ``TritonPythonModel`` at module level: the class the backend
    looks up. A class statement, an import (a star import may bring it), or an assignment."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == MODEL_CLASS:
            return True
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*" or (alias.asname or alias.name) == MODEL_CLASS:
                    return True
        targets = (node.targets if isinstance(node, ast.Assign) else
                   [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == MODEL_CLASS for t in targets):
            return True
        if isinstance(node, ast.If | ast.Try) and binds_model_class(
                ast.Module(body=[*node.body, *node.orelse, *getattr(node, "finalbody", []),
                                 *(s for h in getattr(node, "handlers", []) for s in h.body)],
                           type_ignores=[])):
            return True
    return False


def _check_link(path: Path, model_dir: Path) -> None:
    """A module path that is a symlink must resolve: a loop is an error, not a missing module."""
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError as exc:  # Python 3.11: symlink loop
            raise ScanError(f"{_display(path, model_dir)}: symlink loop") from exc
        except OSError as exc:
            if exc.errno == 40:  # ELOOP
                raise ScanError(f"{_display(path, model_dir)}: symlink loop") from exc


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _guards_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        if handler.type is None:
            return True
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        for t in types:
            name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else ""
            if name in _IMPORT_ERRORS:
                return True
    return False


@dataclass(frozen=True)
class _Raw:
    """An import before classification: absolute name, or relative with its level."""

    module: str
    level: int
    names: tuple[str, ...]  # for `from X import a, b`: candidate submodules
    line: int
    optional: bool
    lazy: bool
    dynamic: bool
    bound: str = ""  # the name `import X` / `import X as Y` binds, its attributes read later


class _Collector(ast.NodeVisitor):
    def __init__(self, conditions: Conditions | None = None) -> None:
        self.conditions = conditions
        self.found: list[_Raw] = []
        self._optional = 0
        self._lazy = 0

    def _add(self, module: str, level: int, names: tuple[str, ...], line: int, dyn: bool,
             bound: str = "") -> None:
        self.found.append(
            _Raw(module, level, names, line, self._optional > 0, self._lazy > 0, dyn, bound)
        )

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, 0, (), node.lineno, False, alias.asname or alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        names = tuple(a.name for a in node.names if a.name != "*")
        star = any(a.name == "*" for a in node.names)
        self._add(node.module or "", node.level, ("*",) if star else names, node.lineno, False)

    def visit_Try(self, node: ast.Try) -> None:
        guarded = _guards_import_error(node)
        self._optional += guarded
        for stmt in node.body:
            self.visit(stmt)
        self._optional -= guarded
        for handler in node.handlers:
            self.visit(handler)
        for stmt in [*node.orelse, *node.finalbody]:
            self.visit(stmt)

    visit_TryStar = visit_Try  # type: ignore[assignment]

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for stmt in node.orelse:
                self.visit(stmt)
            return
        decided = self.conditions.decide(node.test) if self.conditions else None
        if decided is not None:  # the branch the target's Python (on Linux) takes, only
            for stmt in node.body if decided else node.orelse:
                self.visit(stmt)
            return
        self.generic_visit(node)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self._lazy += 1
        self.generic_visit(node)
        self._lazy -= 1

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit(self, node: ast.AST) -> None:
        """Statements recursively (the parser bounds their nesting); an expression with a loop:
        valid code such as a 500-term ``a + b + ...`` nests deeper than Python's recursion
        limit, and an expression holds no statement, only calls and lambdas that matter."""
        if not isinstance(node, ast.expr):
            super().visit(node)
            return
        stack: list[tuple[ast.AST, int]] = [(node, self._lazy)]
        saved = self._lazy
        while stack:
            item, self._lazy = stack.pop()
            if isinstance(item, ast.Call):
                self._call(item)
            inner = self._lazy + isinstance(item, ast.Lambda)
            stack.extend((child, inner) for child in reversed(list(ast.iter_child_nodes(item))))
        self._lazy = saved

    def _call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(
            func, ast.Attribute
        ) else ""
        if name in ("import_module", "__import__") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value:
                literal = arg.value
                level = len(literal) - len(literal.lstrip("."))
                self._add(literal.lstrip("."), level, (), node.lineno, True)


@dataclass
class _Found:
    path: Path
    root: Path
    is_package: bool


class Scanner:
    """Follows model.py through the user's own modules; classifies every import."""

    def __init__(self, model_dir: Path, version_dir: Path, src: tuple[Path, ...],
                 stdlib: frozenset[str], python: str):
        self.model_dir = model_dir
        self.roots = (version_dir, model_dir, *src)
        self.stdlib = stdlib
        self.python = python
        self.conditions = Conditions(python) if _grammar(python) else None
        self.uses: list[ImportUse] = []
        self.local: dict[str, LocalModule] = {}
        self._queue: deque[tuple[str, Path, Path]] = deque()
        self._seen: set[Path] = set()

    def _find(self, dotted: str, roots: tuple[Path, ...] | None = None) -> _Found | None:
        parts = dotted.split(".")
        if not all(part.isidentifier() and len(os.fsencode(part)) < 250 for part in parts):
            return None  # from a pickle, or too long to be a file name: never a path
        for root in roots or self.roots:
            base = root.joinpath(*parts)
            for candidate in (base, base.with_name(base.name + ".py")):
                _check_link(candidate, self.model_dir)
            init = base / "__init__.py"
            if init.is_file():
                return _Found(init, root, True)
            mod = base.with_name(base.name + ".py")
            if mod.is_file() or (mod.exists() and not mod.is_dir()):  # a FIFO: named, not read
                return _Found(mod, root, False)
            if base.is_dir() and not base.is_symlink() and any(base.glob("*.py")):
                return _Found(base, root, True)  # namespace package
        return None

    def _enqueue(self, dotted: str, found: _Found) -> None:
        if dotted in self.local:
            return
        in_model = found.root in (self.roots[0], self.roots[1])
        self.local[dotted] = LocalModule(dotted, found.path, found.root, in_model)
        if not found.path.is_dir():
            self._queue.append((dotted, found.path, found.root))

    def _local_chain(self, dotted: str, root: Path | None = None) -> bool:
        """Register a local module and its parent packages; False if the top isn't local."""
        parts = dotted.split(".")
        roots = (root,) if root is not None else None
        top = self._find(parts[0], roots)
        if top is None:
            return False
        roots = (top.root,)
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            found = self._find(name, roots)
            if found is None:
                break
            self._enqueue(name, found)
        return True

    def _classify(self, top: str) -> Kind:
        if top in BACKEND_MODULES:
            return Kind.BACKEND
        if top in self.stdlib:
            return Kind.STDLIB
        if self._find(top) is not None:
            return Kind.LOCAL
        return Kind.THIRD_PARTY

    def _absolute(self, raw: _Raw, current: str, is_pkg: bool) -> str:
        if raw.level == 0:
            return raw.module
        package = current.split(".") if is_pkg else current.split(".")[:-1]
        if raw.level > 1:
            package = package[: len(package) - (raw.level - 1)]
        return ".".join([*package, raw.module] if raw.module else package)

    def scan_file(self, dotted: str, path: Path, root: Path) -> None:
        if path in self._seen:
            return
        self._seen.add(path)
        shown = _display(path, self.model_dir)
        collector = _Collector(self.conditions)
        tree = parse_source(path, shown, self.python)
        if dotted == "model" and root == self.roots[0] and not binds_model_class(tree):
            raise ScanError(
                f"{shown}: defines no {MODEL_CLASS} class: Triton's Python backend loads "
                f"that class from {path.name}",
                hint=f"define `class {MODEL_CLASS}:` with an `execute(self, requests)` method",
            )
        collector.visit(tree)
        chains = attribute_chains(tree)
        is_pkg = path.name == "__init__.py"
        for raw in collector.found:
            module = self._absolute(raw, dotted, is_pkg) if raw.level else raw.module
            if raw.level and not module:
                module = ""
            if raw.level:
                self._relative(raw, module, root, shown)
                continue
            kind = self._classify(module.split(".")[0])
            self.uses.append(ImportUse(module, kind, shown, raw.line, raw.optional, raw.lazy,
                                       raw.dynamic, tuple(n for n in raw.names if n != "*"),
                                       _attrs_of(raw.bound, chains) if raw.bound else ()))
            if kind is Kind.LOCAL:
                self._local_chain(module)
                self._submodules(module, raw.names)

    def _relative(self, raw: _Raw, module: str, root: Path, shown: str) -> None:
        """A relative import always names the user's own code."""
        targets = [module] if module else []
        if not module or raw.names:
            targets += [f"{module}.{n}" if module else n for n in raw.names if n != "*"]
        for target in targets:
            if self._find(target, (root,)) is not None:
                self._local_chain(target, root)
        name = module or ".".join(raw.names)
        self.uses.append(ImportUse(module or "." * raw.level + name, Kind.LOCAL,
                                   shown, raw.line, raw.optional, raw.lazy, raw.dynamic))
        if module:
            self._submodules(module, raw.names, root)

    def _submodules(self, module: str, names: tuple[str, ...], root: Path | None = None) -> None:
        """`from pkg import sub` follows pkg/sub.py; `from pkg import *` follows __all__."""
        found = self._find(module, (root,) if root else None)
        if found is None or not found.is_package:
            return
        if names == ("*",):
            names = _literal_all(found.path) if found.path.is_file() else ()
        for name in names:
            sub = f"{module}.{name}"
            if self._find(sub, (found.root,)) is not None:
                self._local_chain(sub, found.root)

    def run(self, model_py: Path) -> ImportReport:
        self._queue.append(("model", model_py, self.roots[0]))
        notes, pickled = self._pickles()
        while self._queue:
            self.scan_file(*self._queue.popleft())
        files = tuple(sorted(_display(p, self.model_dir) for p in self._seen))
        local = tuple(sorted(self.local.values(), key=lambda m: m.name))
        return ImportReport(self.model_dir, self.python, tuple(self.uses), local, files,
                            tuple(notes), tuple(pickled))

    def _pickles(self) -> tuple[list[str], list[tuple[str, str, str]]]:
        """Modules named inside pickles beside model.py: imports like any other, marked with
        the data file (line 0); and the versions they record. Read with pickletools, never
        unpickled."""
        notes: list[str] = []
        pickled: list[tuple[str, str, str]] = []
        for refs in pickles.scan_dirs((self.roots[0], self.roots[1])):
            shown = _display(refs.file, self.model_dir)
            pickled += [(dist, version, shown) for dist, version in refs.versions]
            if refs.problem:
                notes.append(f"{shown}: {refs.problem}")
            for module in refs.modules:
                if module.split(".")[0] in ("__main__", "__mp_main__"):
                    notes.append(f"{shown} names {module}: a class defined in the script that "
                                 "saved it, which the server cannot import (move it into a "
                                 "module of yours and save again)")
                    continue
                kind = self._classify(module.split(".")[0])
                self.uses.append(ImportUse(module, kind, shown, 0))
                if kind is Kind.LOCAL:
                    self._local_chain(module)
        return notes, pickled


def attribute_chains(tree: ast.Module) -> frozenset[str]:
    """Every dotted read of a name in the file (``bson.loads``, ``np.random.rand``), once."""
    chains: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        parts = [node.attr]
        value = node.value
        while isinstance(value, ast.Attribute):
            parts.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name):
            chains.add(".".join([value.id, *reversed(parts)]))
    return frozenset(chains)


def _attrs_of(bound: str, chains: frozenset[str]) -> tuple[str, ...]:
    """The attributes read on a bound module name: ``bson.loads(x)`` -> loads (whatever
    follows: ``fd.vision.detection`` -> vision)."""
    prefix = bound + "."
    return tuple(sorted({c[len(prefix):].split(".")[0] for c in chains if c.startswith(prefix)}))


def _literal_all(init: Path) -> tuple[str, ...]:
    try:
        tree = ast.parse(init.read_bytes())
    except (SyntaxError, ValueError, OSError):
        return ()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ) and isinstance(node.value, ast.List | ast.Tuple):
            return tuple(
                e.value for e in node.value.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            )
    return ()


def scan(
    model_dir: Path,
    version_dir: Path,
    model_py: Path,
    *,
    python: str,
    stdlib: frozenset[str],
    src: tuple[Path, ...] = (),
) -> ImportReport:
    """Scan ``model_py`` and every local module it reaches."""
    for root in src:
        if not root.is_dir():
            raise ScanError(f"--src {root}: no such directory")
    roots = tuple(r.resolve() for r in src)
    return Scanner(model_dir, version_dir, roots, stdlib, python).run(model_py)
