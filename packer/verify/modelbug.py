"""A bug in the model, told apart from inputs it rejects and from a broken environment.

A ``NameError`` (``Tuple`` never imported), an ``UnboundLocalError``, a ``SyntaxError`` or
``IndentationError``, ``module 'X' has no attribute 'Y'``, or an attribute missing from a value
whose type the config fixes (``'bytes' object has no attribute 'tobytes'``: an element of a
BYTES tensor is always bytes) is raised whatever the request holds:
giving verify real inputs would not help, and re-packing the same lock would not either. The
sentence names the file and line that raised it (the innermost frame the server reported that
is not Python's own import machinery) and, for a module without the attribute the code uses,
the distribution and version the lock has for that import.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from packaging.utils import canonicalize_name

from ..resolve.requirements import Requirements

BUG_TYPES = ("NameError", "UnboundLocalError", "SyntaxError", "IndentationError", "TabError")

# the server writes the exception as "TYPE: WHAT" then "\n\nAt:\n" and the frames, innermost
# first; in its log the newlines are escaped ("\\n"), in a gRPC error message they are not
_EXC = re.compile(r"(?:message: |Failed to create instance: |version \d+: Internal: )"
                  r"(?P<type>[A-Za-z_][\w.]*): (?P<what>.*?)(?:\\n|\n)(?:\\n|\n)At:"
                  r"(?P<frames>.*?)(?:\"|$)", re.S)
_FRAME = re.compile(r"(?:^|\\n|\n)\s*(\S+\.py)\((\d+)\): ([\w<>]+)")
_SYNTAX_AT = re.compile(r"\((?P<file>[^,()]+\.py), line (?P<line>\d+)\)")
# what a request's tensors hold whatever their content: numpy arrays (and the numpy scalars taken
# from them) and, as the elements of a BYTES tensor, Python bytes. An attribute such a value lacks
# is lacked for every request (bytes.tobytes(), ndarray.decode(): one kind taken for another);
# None, str, dict or list may come from what the request holds (a missing optional input,
# json.loads) and stay the inputs' possible doing
_TENSOR_ATTR = re.compile(r"^'(?P<type>bytes|numpy\.\w+)' object has no attribute '\w+'")
_MODULE_ATTR = re.compile(r"^(?:partially initialized )?module '(?P<module>[\w.]+)' "
                          r"(?:\([^)]*\) )?has no attribute '(?P<attr>\w+)'")


@dataclass(frozen=True)
class Raised:
    """An exception the model's code raised, as the server reported it."""

    type: str
    what: str
    frames: tuple[tuple[str, int, str], ...]  # (file, line, function), innermost first


def raised(text: str) -> Raised | None:
    """The first exception with a traceback in ``text`` (a gRPC message or a server log)."""
    m = _EXC.search(text)
    if not m:
        return None
    what = re.split(r"\\n|\n", m.group("what"))[0]  # numpy's long AttributeErrors: line 1
    what = what.replace("\\'", "'").replace('\\"', '"').strip().rstrip(".")
    frames = tuple((f, int(n), fn) for f, n, fn in _FRAME.findall(m.group("frames")))
    return Raised(m.group("type").rsplit(".", 1)[-1], what, frames)


def _shown(file: str) -> str:
    """A path as the user knows it: the model's own files from the model dir (MODEL/1/...,
    wherever the server's repository was), installed ones from site-packages."""
    path = PurePosixPath(file)
    if "site-packages" in path.parts:
        return str(PurePosixPath(*path.parts[path.parts.index("site-packages") + 1:]))
    for i in range(len(path.parts) - 2, 0, -1):  # MODEL/VERSION/...: a repository elsewhere
        if path.parts[i].isdigit():
            return str(PurePosixPath(*path.parts[i - 1:]))
    return file


def _where(exc: Raised, skip: str = "", *, models_own: bool = False) -> str:
    """FILE:LINE of the innermost frame of code (not <frozen importlib...>, not inside the
    package ``skip``: the module whose __getattr__ raised for a name it lacks), or "". ``models_own``:
    the innermost frame outside site-packages when there is one (a library that was handed
    bytes for an array raised, but the model's line is the one to fix)."""
    if exc.type in ("SyntaxError", "IndentationError", "TabError"):
        m = _SYNTAX_AT.search(exc.what)
        if m:
            own = [f for f, _, _ in exc.frames if PurePosixPath(f).name == m.group("file")]
            return f"{_shown(own[0]) if own else m.group('file')}:{m.group('line')}"
    real = [f for f in exc.frames if not f[0].startswith("<")
            and not (skip and _shown(f[0]).startswith(f"{skip}/"))]
    if models_own:
        real = [f for f in real if "site-packages" not in PurePosixPath(f[0]).parts] or real
    return f"{_shown(real[0][0])}:{real[0][1]}" if real else ""


def _module_attr(what: str, requirements: Requirements | None, versions: Mapping[str, str],
                 providers: Mapping[str, tuple[str, ...]]) -> str | None:
    """For ``module 'X' has no attribute 'Y'``: which distribution the lock has for X and the
    others that provide a module X (the generated import table), or None when the message is
    about something else (an object's attribute: maybe the inputs')."""
    m = _MODULE_ATTR.match(what)
    if not m:
        return None
    top = m.group("module").split(".")[0]
    row = next((r for r in (requirements.rows if requirements else ())
                if r.key.split(".")[0] == top and r.distribution), None)
    if row is None or row.distribution is None:
        return ""
    version = versions.get(canonicalize_name(row.distribution), "")
    said = f": the lock has {row.distribution} {version}".rstrip() + f" for import {top}"
    others = [d for d in providers.get(top, ())
              if canonicalize_name(d) != canonicalize_name(row.distribution)]
    if others:
        said += f"; other distributions providing {top}: {', '.join(others[:5])}"
    return said


def model_bug(text: str, *, requirements: Requirements | None = None,
              versions: Mapping[str, str] | None = None,
              providers: Mapping[str, tuple[str, ...]] | None = None) -> str:
    """One sentence when ``text`` reports a bug whatever the inputs, else "".

    ``versions``: the lock's distribution versions by normalized name."""
    exc = raised(text)
    if exc is None:
        return ""
    attr = _MODULE_ATTR.match(exc.what) if exc.type == "AttributeError" else None
    where = _where(exc, attr.group("module").split(".")[0] if attr else "")
    head = f"{where} raises" if where else "the model raises"
    if exc.type in BUG_TYPES:
        return f"{head} {exc.type}: {exc.what} (a bug in the model, not in its inputs)"
    if exc.type == "AttributeError" and (kind := _TENSOR_ATTR.match(exc.what)):
        where = _where(exc, "", models_own=True)
        held = ("a BYTES tensor's elements are bytes" if kind.group("type") == "bytes"
                else "a tensor's values are numpy arrays")
        return (f"{where or 'the model'} raises AttributeError: {exc.what} (a bug in the model, "
                f"not in its inputs: {held}, whatever the request holds)")
    if exc.type == "AttributeError":
        package = _module_attr(exc.what, requirements, versions or {}, providers or {})
        if package is not None:
            return (f"{head} AttributeError: {exc.what} (a bug in the model or a wrong "
                    f"package, not in its inputs{package})")
    return ""
