"""Refuse an unusable ``--inputs``/``--expect`` file before a server is started.

Only what makes a file unreadable is checked here: not JSON, nested deeper than any tensor
(a recursion bomb for a JSON reader), not a JSON object of tensors by name, a key given twice,
an integer too long for Python to read, perf_analyzer data whose ``b64`` values do not
decode, not a regular file (a FIFO would block), or a corrupt ``.npz``. What its values mean
for the model (a string where the config says FP32) is the request's business: see
samples.from_user_file.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import lzma
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

from ..core.errors import ExitCode, TritonPackError
from ..core.fsguard import read_regular

MAX_DEPTH = 32  # dimensions of a tensor, generously (Triton's own limit is far lower)
MAX_BYTES = 64 << 20
"""The file as given: JSON grows ~10x as Python lists (verify sends one request, not data)."""
MAX_ARRAY_BYTES = 256 << 20
"""All arrays of a .npz, decoded: read from each .npy header before any array is allocated
(a 4 MB .npz of zeros may declare gigabytes)."""
MAX_MEMBERS = 1024
MAX_CONTAINERS = 1_000_000
"""Lists and objects in a JSON request file, counted before it is parsed: a 64 MiB file of
``[[],[],...]`` would otherwise become 1.8 GB of Python lists."""


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
    if raw.count(b"[") + raw.count(b"{") > MAX_CONTAINERS:  # ~60 bytes each once read
        raise RequestFileError(f"{option} {path}: more than {MAX_CONTAINERS} JSON lists and "
                               "objects: no request of tensors needs that many",
                               hint="give JSON {name: nested list} or a .npz file")
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique)
    except _DuplicateKey as exc:
        raise RequestFileError(f"{option} {path}: key {exc.key!r} is given twice in one object",
                               hint="JSON readers keep only one of the two: remove the other"
                               ) from exc
    except UnicodeDecodeError as exc:
        raise RequestFileError(f"{option} {path}: not UTF-8 text (byte {exc.start})",
                               hint="give JSON {name: nested list} or a .npz file") from exc
    except json.JSONDecodeError as exc:
        raise RequestFileError(f"{option} {path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}",
                               hint="give JSON {name: nested list} or a .npz file") from exc
    except RecursionError as exc:
        raise _too_deep(path, option) from exc
    except ValueError as exc:  # an integer longer than sys.get_int_max_str_digits()
        digits = re.search(r"value has (\d+) digits", str(exc))
        why = (f"holds an integer of {digits[1]} digits: no tensor holds a number that long"
               if digits else f"not JSON: {exc}")
        raise RequestFileError(f"{option} {path}: {why}",
                               hint="give JSON {name: nested list} or a .npz file") from exc
    if _depth(value) > MAX_DEPTH:
        raise _too_deep(path, option)
    if option == "--expect" and isinstance(value, list):  # one object per response, in order
        _check_response_list(value, path)
        return
    if not isinstance(value, dict):
        raise RequestFileError(f"{option} {path}: is a JSON {json_kind(value)}, not an object "
                               "of tensors by name", hint="give JSON {name: nested list} or a "
                               ".npz file")
    if option == "--inputs" and isinstance(value.get("data"), list) and value["data"]:
        _check_perf_data(value["data"][0], path, option)  # perf_analyzer's --input-data


def _check_response_list(value: list[Any], path: Path) -> None:
    """--expect as a list: the responses of a decoupled model, each an object of outputs."""
    if not value:
        raise RequestFileError(f"--expect {path}: an empty list: no response to compare",
                               hint="give one object per response the model sends")
    for i, one in enumerate(value):
        if not isinstance(one, dict):
            raise RequestFileError(f"--expect {path}: entry {i + 1} is a JSON {json_kind(one)}, "
                                   "not an object of outputs by name",
                                   hint="give one object per response the model sends")


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's members, refusing a key given twice (json keeps the last one silently)."""
    out: dict[str, Any] = {}
    for key, item in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = item
    return out


def json_kind(value: object) -> str:
    """What a JSON reader made of a value, as a message names it."""
    if value is None:
        return "null"
    for kind, name in ((bool, "boolean"), (str, "string"), (list, "list"), (dict, "object")):
        if isinstance(value, kind):
            return name
    return "number"


def _check_perf_data(first: object, path: Path, option: str) -> None:
    """The request tritonpack sends from perf_analyzer's {"data": [{NAME: value}, ...]}: an
    object whose ``{"b64": "..."}`` values decode (as samples.from_perf_data decodes them)."""
    if not isinstance(first, dict):
        raise RequestFileError(f"{option} {path}: data[0] is a JSON {json_kind(first)}, not one "
                               "request {name: value}",
                               hint="a top-level \"data\" list is read as perf_analyzer's "
                               "--input-data, and tritonpack sends its first request: make it an "
                               "object of tensors by name")
    for name, item in first.items():
        if not isinstance(item, dict) or "b64" not in item:
            continue
        if not isinstance(item["b64"], str):
            raise RequestFileError(f"{option} {path}: input {name}: \"b64\" is a JSON "
                                   f"{json_kind(item['b64'])}, not a base64 string")
        try:
            base64.b64decode(item["b64"])
        except (binascii.Error, ValueError) as exc:
            raise RequestFileError(f"{option} {path}: input {name}: \"b64\" is not base64: "
                                   f"{exc}") from exc


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
        _check_npz_sizes(raw, path, option)
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            for key in data.files:
                if not isinstance(data[key], np.ndarray):  # numpy hands back raw bytes
                    raise RequestFileError(f"{option} {path}: member {key!r} is not a .npy "
                                           "array", hint="save it with numpy.savez")
    except (RuntimeError, NotImplementedError) as exc:  # encrypted, or an unknown compression
        why = ("a member is encrypted (it needs a password)" if "encrypted" in str(exc) else
               f"{str(exc)[:1].lower()}{str(exc)[1:]}")
        raise RequestFileError(f"{option} {path}: unusable .npz: {why}",
                               hint="save it with numpy.savez (no password, deflate or none)"
                               ) from exc
    except ValueError as exc:
        why = ("it holds pickled objects" if "pickle" in str(exc) else
               # numpy's header parser (ast.literal_eval) names an object address: no sentence
               "a member's .npy header is not one numpy writes (its shape is not a tuple of "
               "numbers)" if "malformed node" in str(exc) else str(exc))
        raise RequestFileError(f"{option} {path}: unusable .npz: {why}",
                               hint="save plain arrays with numpy.savez") from exc
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, zlib.error, lzma.LZMAError) as exc:
        raise RequestFileError(f"{option} {path}: corrupt .npz archive: {exc}",
                               hint="save it again with numpy.savez") from exc


def _check_npz_sizes(raw: bytes, path: Path, option: str) -> None:
    """Refuse a .npz whose arrays would decode past ``MAX_ARRAY_BYTES``, from the zip's
    directory and each .npy header alone (a member is never read past its declared size)."""
    import numpy as np

    if raw.count(b"PK\x01\x02") > MAX_MEMBERS:  # central-directory entries, before a
        raise RequestFileError(  # ZipInfo is made of each (a 64 MiB zip may list a million)
            f"{option} {path}: more than {MAX_MEMBERS} members, more than the inputs of any "
            "model", hint="save one array per input with numpy.savez")
    with zipfile.ZipFile(io.BytesIO(raw)) as zipped:
        members = zipped.infolist()
        if len(members) > MAX_MEMBERS:
            raise RequestFileError(f"{option} {path}: {len(members)} members, more than the "
                                   f"{MAX_MEMBERS} inputs of any model",
                                   hint="save one array per input with numpy.savez")
        total = 0
        for info in members:
            with zipped.open(info) as member:
                try:
                    version = np.lib.format.read_magic(member)  # type: ignore[no-untyped-call]
                except ValueError:  # not an array (np.load's own check names it): its size
                    total += info.file_size
                    what = f"{info.file_size} bytes"
                else:
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(member)  # type: ignore[no-untyped-call]
                    count = 1
                    for n in shape:
                        count *= int(n)
                    total += count * max(dtype.itemsize, 1)
                    what = f"shape {tuple(int(n) for n in shape)} of {dtype}"
            if total > MAX_ARRAY_BYTES:
                raise _too_big(path, option, info.filename, what)


def _too_big(path: Path, option: str, member: str, what: str) -> RequestFileError:
    return RequestFileError(
        f"{option} {path}: {member} ({what}) would decode past {MAX_ARRAY_BYTES >> 20} MiB, "
        "more than tritonpack sends in one request",
        hint="give a small sample: verify sends one request, not a dataset")
