"""Every module imports on its own (no circular imports), and the public API is complete."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import packer

MODULES = sorted(m.name for m in pkgutil.walk_packages(packer.__path__, "packer.")
                 if m.name != "packer.__main__")


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(module: str) -> None:
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)


def test_public_api() -> None:
    for name in packer.__all__:
        assert hasattr(packer, name), name


def test_a_public_name_means_one_thing() -> None:
    """The stage packages keep their names; their entry points are exported under others (the
    package root used to swap its own class so that a function shadowed a subpackage)."""
    import packer.lock
    import packer.verify
    from packer.pipeline import lock
    from packer.verify.stage import verify

    assert type(packer) is types.ModuleType
    assert isinstance(packer.lock, types.ModuleType) and packer.lock.__name__ == "packer.lock"
    assert isinstance(packer.verify, types.ModuleType)
    assert packer.lock_model is lock and packer.verify_model is verify


# --- the import graph, read with ast (module-level imports; TYPE_CHECKING blocks excluded) ---

ROOT = Path(packer.__file__).parent
STAGES = ("core", "scan", "resolve", "lock", "build", "archive", "envcheck", "pack", "caches", "patch",
          "verify", "cost")
# the one edge against the flow: verify re-runs scan + resolve through packer.context.prepare
AGAINST_THE_FLOW = {("packer.verify.stage", "packer.context")}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run at import: the module body and its try/if/with blocks, but not
    ``if TYPE_CHECKING:`` and not function or class bodies."""
    for node in body:
        if isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                yield from _top_level(node.body)
            yield from _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _top_level(block)
        elif isinstance(node, ast.With):
            yield from _top_level(node.body)
        else:
            yield node


def _everywhere(tree: ast.Module) -> Iterator[ast.AST]:
    """Every node, function bodies included, but not ``if TYPE_CHECKING:`` blocks."""
    hidden = {id(n) for node in ast.walk(tree)
              if isinstance(node, ast.If) and isinstance(node.test, ast.Name)
              and node.test.id == "TYPE_CHECKING"
              for stmt in node.body for n in ast.walk(stmt)}
    return (n for n in ast.walk(tree) if id(n) not in hidden)


def import_graph(root: Path = ROOT, deferred: bool = False) -> dict[str, set[str]]:
    """Each packer module -> the packer modules it imports when it is imported; with
    ``deferred``, also those its functions import when they run (a function-local import hides
    a cycle from the import system, not from the design)."""
    files = {_module_name(p, root): p for p in root.rglob("*.py") if "__pycache__" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in (_everywhere(tree) if deferred else _top_level(tree.body)):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in files}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:  # `from . import x` imports the module x
                    sub = f"{target}.{alias.name}"
                    edges.add(sub if sub in files else target)
        graph[name] = {e for e in edges if e in files and e != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_no_import_cycle_through_function_local_imports() -> None:
    """A lazy import breaks a cycle for the interpreter only: the two modules still depend on
    each other. None may (``packer/__init__`` loads its API by name, not by import)."""
    cycle = find_cycle(import_graph(deferred=True))
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    """The check itself: two modules importing each other, one through ``from . import``."""
    pkg = tmp_path / "packer"
    (pkg / "core").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text("from __future__ import annotations\nfrom .b import X\n")
    (pkg / "core" / "b.py").write_text("def f():\n    from . import c\nfrom . import a\nX = 1\n")
    (pkg / "core" / "c.py").write_text("from typing import TYPE_CHECKING\n"
                                       "if TYPE_CHECKING:\n    from .a import X\n")
    graph = import_graph(pkg)
    assert graph["packer.core.c"] == set()  # TYPE_CHECKING and function bodies do not count
    assert find_cycle(graph) == ["packer.core.a", "packer.core.b", "packer.core.a"]
    deferred = import_graph(pkg, deferred=True)
    assert deferred["packer.core.b"] == {"packer.core.a", "packer.core.c"}  # the function's import
    assert deferred["packer.core.c"] == set()  # TYPE_CHECKING still does not count


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in STAGES else None


def test_stages_import_only_earlier_stages_and_core() -> None:
    """`ls -R packer/` is the data flow: a stage never imports a later stage or the top level
    (cli, pipeline, ...), so each package reads without the ones after it."""
    against = set()
    for module, imports in import_graph().items():
        here = _stage(module)
        if here is None:
            continue
        for target in imports:
            there = _stage(target)
            if target == "packer" or (there is None and target.count(".") == 1) or (
                    there is not None and STAGES.index(there) > STAGES.index(here)):
                against.add((module, target))
    assert against == AGAINST_THE_FLOW
