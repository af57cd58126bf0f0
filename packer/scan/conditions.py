"""Conditions the scan can decide for the target without running anything.

``if sys.version_info >= (3, 11): import tomllib`` / ``else: import tomli`` names a different
module on each Python: the scan keeps only the branch the target's Python takes. Decided:
comparisons of ``sys.version_info`` (whole, sliced, indexed, ``.major`` / ``.minor``) with
integer literals or tuples of them, ``sys.platform`` against string literals (``==``, ``!=``,
``in``, ``.startswith``), ``platform.system()`` against string literals, and ``and`` / ``or`` /
``not`` of those. Anything else is undecided: both branches are scanned, as before.
Triton's Python backend runs on Linux only.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

PLATFORM = "linux"  # sys.platform inside every Triton container
SYSTEM = "Linux"  # platform.system()

_OPS: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
_UNKNOWN = object()


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


class Target:
    """The values the target gives the names a condition may read."""

    def __init__(self, python: str):
        major, _, minor = python.partition(".")
        self.version = (int(major), int(minor) if minor.isdigit() else 0)

    def value(self, node: ast.expr) -> Any:
        """The target's value of ``node``, or _UNKNOWN."""
        name = _dotted(node)
        if name in ("sys.version_info", "version_info"):
            return self.version  # (major, minor): compared with 2-tuples, or the prefix below
        if name in ("sys.version_info.major", "version_info.major"):
            return self.version[0]
        if name in ("sys.version_info.minor", "version_info.minor"):
            return self.version[1]
        if name == "sys.platform":
            return PLATFORM
        if isinstance(node, ast.Subscript) and _dotted(node.value) in (
                "sys.version_info", "version_info"):
            return self._subscript(node.slice)
        if isinstance(node, ast.Call) and not node.args and _dotted(node.func) == "platform.system":
            return SYSTEM
        if isinstance(node, ast.Constant) and isinstance(node.value, int | str):
            return node.value
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = [self.value(e) for e in node.elts]
            return _UNKNOWN if _UNKNOWN in items else tuple(items)
        return _UNKNOWN

    def _subscript(self, index: ast.expr) -> Any:
        if isinstance(index, ast.Constant) and isinstance(index.value, int) and \
                index.value in (0, 1):
            return self.version[index.value]
        if isinstance(index, ast.Slice) and index.lower is None and index.step is None and \
                isinstance(index.upper, ast.Constant) and isinstance(index.upper.value, int) and \
                index.upper.value in (1, 2):
            return self.version[: index.upper.value]
        return _UNKNOWN

    def decide(self, test: ast.expr) -> bool | None:
        """True or False when the target decides ``test``; None when it cannot be known."""
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            inner = self.decide(test.operand)
            return None if inner is None else not inner
        if isinstance(test, ast.BoolOp):
            values = [self.decide(v) for v in test.values]
            if isinstance(test.op, ast.And):
                return False if False in values else None if None in values else True
            return True if True in values else None if None in values else False
        if isinstance(test, ast.Call) and isinstance(test.func, ast.Attribute) and \
                test.func.attr == "startswith" and len(test.args) == 1 and not test.keywords:
            subject, prefix = self.value(test.func.value), self.value(test.args[0])
            if isinstance(subject, str) and isinstance(prefix, str | tuple):
                return subject.startswith(prefix)
            return None
        if isinstance(test, ast.Compare):
            return self._compare(test)
        return None

    def _compare(self, test: ast.Compare) -> bool | None:
        left = self.value(test.left)
        if left is _UNKNOWN:
            return None
        for op, node in zip(test.ops, test.comparators, strict=True):
            right = self.value(node)
            fn = _OPS.get(type(op))
            if right is _UNKNOWN or fn is None:
                return None
            if isinstance(left, tuple) and isinstance(right, tuple) and len(right) > len(left):
                head, tail = right[: len(left)], right[len(left):]
                if head == left:  # (3, 10) against (3, 10, 4): the micro version decides
                    zeros = all(x == 0 for x in tail)
                    if not zeros or not isinstance(op, ast.GtE | ast.Lt):
                        return None
                right = head
            try:
                if not fn(left, right):
                    return False
            except TypeError:
                return None
            left = right
        return True
