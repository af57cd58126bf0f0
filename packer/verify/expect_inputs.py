"""Inputs shaped as execute()'s code expects them (scan.inputuse read the code; this writes the
values): real PNG bytes where an image is decoded, base64 of them where base64 is decoded, JSON
with the keys the code reads, a sentence for a tokenizer, and arrays of the rank that ``h, w, c =
x.shape`` unpacks, 64 wide, with 3 channels where a channel count is checked.
"""

from __future__ import annotations

import base64
import json
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..scan.inputuse import Use
from .kinds import IMAGE_SIDE, Plan, Tensor

SENTENCE = "The quick brown fox jumps over the lazy dog."
TEXT = "tritonpack"
_BYTES_KINDS = frozenset({"image", "b64", "json", "text", "sentence"})
_CHANNEL_NAMES = frozenset({"c", "ch", "chan", "channel", "channels", "nc", "num_channels",
                            "n_c", "d"})
_MAX_SIDE = 1024  # "h < 224: raise" asks for 224; a bound beyond this is not a minimum side
_BATCH_NAMES = frozenset({"b", "n", "bs", "batch", "batch_size", "num", "nb"})


def png(side: int = IMAGE_SIDE) -> bytes:
    """A side x side RGB gradient PNG, written with zlib: PIL, OpenCV and TensorFlow decode it;
    it is neither tiny nor blank (models refuse both)."""
    rows = b"".join(b"\x00" + bytes(((x * 4) % 256, (y * 4) % 256, ((x + y) * 2) % 256)[c]
                                    for x in range(side) for c in range(3))
                    for y in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


@dataclass(frozen=True)
class Expected:
    """One request shaped by the code, and where each input's value came from."""

    arrays: dict[str, Any]
    sources: dict[str, str]  # input -> "synthesized from execute()'s use at model.py:12" | plain


class _Tree:
    """The uses of one input, by the path of decoding steps they were made at."""

    def __init__(self, uses: tuple[Use, ...]):
        self.uses = uses

    def at(self, path: tuple[str, ...], kind: str) -> list[Use]:
        return [u for u in self.uses if u.path == path and u.kind == kind]

    def below(self, path: tuple[str, ...]) -> bool:
        return any(u.path[:len(path)] == path for u in self.uses)

    def raw(self, path: tuple[str, ...] = ()) -> bytes:
        """The bytes (or text, encoded) the code expects at ``path``."""
        if self.at(path, "image"):
            return png()
        if self.at(path, "b64"):
            inner = (*path, "b64")
            return base64.b64encode(self.raw(inner) if self.below(inner) else png())
        if self.at(path, "json"):
            return json.dumps(self.value((*path, "json"))).encode()
        if self.below((*path, "text")):
            return self.raw((*path, "text"))
        return (SENTENCE if self.at(path, "sentence") else TEXT).encode()

    def value(self, path: tuple[str, ...]) -> Any:
        """A JSON value of the shape the code indexes at ``path``."""
        keys = self.at(path, "key")
        if keys:
            out: dict[str, Any] = {}
            for use in keys:
                key, default = str(use.args[0]), use.args[1]
                child = (*path, f"key:{key}")
                out[key] = default if default is not None and not self.below(child) else \
                    self.value(child)
            return out
        if self.at(path, "item"):
            return [self.value((*path, "item"))]
        if self.at(path, "number"):
            return 1
        if self.at(path, "b64") or self.at(path, "json") or self.at(path, "image"):
            return self.raw(path).decode("ascii", errors="replace")
        return SENTENCE if self.at(path, "sentence") else TEXT


def _informs(use: Use) -> bool:
    """Whether a use says more than the config: ``x.shape[0]`` or ``x.ndim == 3`` alone do not
    (the config fixes the rank), nor a use after the array was squeezed or reshaped."""
    if use.path or use.kind in _BYTES_KINDS or use.kind == "model_name":
        return True
    return use.kind in ("unpack", "dim", "image_array", "reshape") and use.offset is not None


def _fill_positions(sent: list[int], batching: bool) -> list[int]:
    return [i for i, d in enumerate(sent) if d < 0 and not (batching and i == 0)]


def _layout(tensor: Tensor, plan: Plan, uses: tuple[Use, ...]) -> tuple[list[int], bool]:
    """(shape, image-like) for a numeric input from what the code reads of its shape."""
    sent = ([1] if plan.batching else []) + list(tensor.dims)
    rank = len(sent)
    sizes: dict[int, int] = {}
    image = tensor.image_like
    for use in uses:
        if use.path or use.offset is None:
            continue
        if use.kind == "unpack" and len(use.args) + use.offset == rank:
            for i, name in enumerate(use.args):
                low = str(name).lower()
                if low in _CHANNEL_NAMES:
                    sizes.setdefault(use.offset + i, 3)
                    image = True
                elif low in _BATCH_NAMES:
                    sizes.setdefault(use.offset + i, 1)
            image = image or len(use.args) >= 3
        elif use.kind == "dim" and isinstance(use.args[0], int) and isinstance(use.args[1], int):
            k, size = use.args[0], use.args[1]
            index = use.offset + k if k >= 0 else rank + k
            if size < 0:  # at least -size: an image side of 64, or more when asked
                size = -size if IMAGE_SIDE < -size <= _MAX_SIDE else IMAGE_SIDE
            if 0 <= index < rank and size > 0:
                sizes.setdefault(index, size)
                image = image or size in (1, 3, 4)
        elif use.kind == "image_array" and use.offset + 3 == rank:
            sizes.setdefault(rank - 1, 3)
            image = True
    shape = []
    for i, d in enumerate(sent):
        if d > 0 or (plan.batching and i == 0):
            shape.append(max(d, 1))
        else:
            shape.append(sizes.get(i, IMAGE_SIDE))
    _reshape(shape, [i for i in _fill_positions(sent, plan.batching) if i not in sizes], uses)
    return shape, image


def _reshape(shape: list[int], free: list[int], uses: tuple[Use, ...]) -> None:
    """Make the element count fit ``x.reshape(...)`` of a literal shape, through the dims the
    config leaves free."""
    literal = next((u.args for u in uses if u.kind == "reshape" and not u.path), None)
    if not literal or not free:
        return
    dims = [int(str(d)) for d in literal]
    known = math.prod(d for d in dims if d > 0)
    for i in free:
        shape[i] = 1
    rest = math.prod(shape)
    if -1 in dims:  # a multiple of the known dims: 64 of them
        shape[free[0]] = known * IMAGE_SIDE // math.gcd(rest, known * IMAGE_SIDE)
    elif known % rest == 0:
        shape[free[0]] = known // rest


def _numeric(tensor: Tensor, plan: Plan, uses: tuple[Use, ...]) -> Any:
    import numpy as np
    from tritonclient.utils import triton_to_np_dtype

    shape, image = _layout(tensor, plan, uses)
    dtype = triton_to_np_dtype(tensor.datatype)
    if not image:
        return np.ones(shape, dtype=dtype)
    gradient = (np.arange(math.prod(shape)) % 256).reshape(shape)
    return gradient.astype(dtype) if tensor.datatype in ("UINT8", "INT8", "UINT16", "INT16",
                                                         "INT32", "INT64") \
        else (gradient / 255).astype(dtype)


def _encoded(tensor: Tensor, plan: Plan, data: bytes) -> Any:
    """``data`` as the input's tensor: every BYTES element, or a UINT8/INT8 vector of it."""
    import numpy as np

    shape = plan.shape(tensor)
    if tensor.datatype == "BYTES":
        return np.full(shape, data, dtype=np.object_)
    free = _fill_positions(([1] if plan.batching else []) + list(tensor.dims), plan.batching)
    if tensor.datatype not in ("UINT8", "INT8") or not free:
        return None
    for i in free:
        shape[i] = 1
    shape[free[-1]] = len(data)
    return np.frombuffer(data, dtype=np.uint8).astype(np.int8 if tensor.datatype == "INT8"
                                                      else np.uint8).reshape(shape)


def expected(plan: Plan, uses: tuple[Use, ...], plain: Callable[[], dict[str, Any]],
             file: str = "model.py", callee: str | None = None) -> Expected | None:
    """The request execute()'s code expects, or None when the code says nothing of any input
    (the plain request is all there is to send)."""
    base = plain()
    arrays: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for tensor in plan.inputs:
        mine = tuple(u for u in uses if u.input == tensor.name and _informs(u))
        value = None
        if any(u.kind == "model_name" for u in mine):  # the model a BLS call goes to
            value = _encoded(tensor, plan, callee.encode()) if callee else None
        elif any(u.kind in _BYTES_KINDS for u in mine):
            value = _encoded(tensor, plan, _Tree(mine).raw())
        elif mine and tensor.datatype not in ("BYTES", "BF16", "BOOL", ""):
            value = _numeric(tensor, plan, mine)
        if value is None:
            arrays[tensor.name] = base[tensor.name]
            sources[tensor.name] = "plain"
        else:
            arrays[tensor.name] = value
            sources[tensor.name] = f"synthesized from execute()'s use at {file}:{mine[0].line}"
    if all(s == "plain" for s in sources.values()):
        return None
    return Expected(arrays, sources)
