"""Refuse an unusable ``--inputs``/``--expect`` file before a server is started.

Only what makes a file unreadable is checked here: not JSON, nested deeper than any tensor
(a recursion bomb for a JSON reader), not a regular file (a FIFO would block), or a
corrupt ``.npz``. What its values mean for the model is the request's business.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from ..core.errors import ExitCode, TritonPackError
from ..core.fsguard import read_regular

MAX_DEPTH = 32  # dimensions of a tensor, generously (Triton's own limit is far lower)
MAX_BYTES = 1 << 30


class RequestFileError(TritonPackError):
    """A file given on the command line that cannot be used: a bad command line."""

    exit_code = ExitCode.USAGE


def check_request_file(path: Path, option: str) -> None:
    """Raise RequestFileError naming ``option`` and ``path`` when the file cannot be read."""
    try:
        raw = read_regular(path, RequestFileError, "file", limit=MAX_BYTES,
                           shown=f"{option} {path}")
    except FileNotFoundError as exc:
        raise RequestFileError(f"{option} {path}: no such file") from exc
    except PermissionError as exc:
        raise RequestFileError(f"{option} {path}: permission denied") from exc
    if path.suffix == ".npz":
        _check_npz(raw, path, option)
        return
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RequestFileError(f"{option} {path}: not UTF-8 text (byte {exc.start})",
                               hint="give JSON {name: nested list} or a .npz file") from exc
    except json.JSONDecodeError as exc:
        raise RequestFileError(f"{option} {path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}",
                               hint="give JSON {name: nested list} or a .npz file") from exc
    except RecursionError as exc:
        raise _too_deep(path, option) from exc
    if _depth(value) > MAX_DEPTH:
        raise _too_deep(path, option)


def _too_deep(path: Path, option: str) -> RequestFileError:
    return RequestFileError(f"{option} {path}: nested deeper than {MAX_DEPTH} levels: no tensor "
                            "has that many dimensions")


def _depth(value: object) -> int:
    """How deeply lists and objects nest, without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, list | dict):
            level += 1
            deepest = max(deepest, level)
            if deepest > MAX_DEPTH:
                return deepest
            stack.extend((child, level) for child in
                         (item.values() if isinstance(item, dict) else item))
    return deepest


def _check_npz(raw: bytes, path: Path, option: str) -> None:
    import numpy as np

    if not raw.startswith(b"PK"):
        raise RequestFileError(f"{option} {path}: not a .npz archive (a zip of .npy arrays)",
                               hint="save it with numpy.savez(path, NAME=array)")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            for key in data.files:
                if not isinstance(data[key], np.ndarray):  # numpy hands back raw bytes
                    raise RequestFileError(f"{option} {path}: member {key!r} is not a .npy "
                                           "array", hint="save it with numpy.savez")
    except ValueError as exc:
        why = "it holds pickled objects" if "pickle" in str(exc) else str(exc)
        raise RequestFileError(f"{option} {path}: unusable .npz: {why}",
                               hint="save plain arrays with numpy.savez") from exc
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise RequestFileError(f"{option} {path}: corrupt .npz archive: {exc}",
                               hint="save it again with numpy.savez") from exc
