"""Inputs the model accepts, before made-up ones: what the user already wrote down for Triton's
own tools.

In order: ``--inputs FILE`` (``{name: nested list}``, ``.npz``, or perf_analyzer's
``--input-data`` JSON), the config's ``model_warmup`` (Triton runs it at load, so a model that
loaded accepts it), a perf_analyzer input-data JSON shipped in the model dir, and only then
synthesized inputs that look like data (see infer.synthesise).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import VerifyInferError
from . import tensors
from .kinds import DATATYPES, Plan


@dataclass(frozen=True)
class Request:
    arrays: dict[str, Any]
    source: str  # where the inputs came from, for the report
    made_up: bool  # synthesized by tritonpack (a model that rejects them needs real ones)


def _np_type(datatype: str) -> Any:
    import numpy as np
    from tritonclient.utils import triton_to_np_dtype

    return np.object_ if datatype == "BYTES" else triton_to_np_dtype(datatype)


def _bytes_elements(raw: bytes) -> list[bytes]:
    """Triton's serialized BYTES: each element a 4-byte little-endian length, then the bytes."""
    out, pos = [], 0
    while pos + 4 <= len(raw):
        n = int.from_bytes(raw[pos:pos + 4], "little")
        out.append(raw[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


def _warmup_tensor(spec: dict[str, Any], shape: list[int], warmup_dir: Path) -> Any:
    import numpy as np
    datatype = DATATYPES.get(str(spec.get("data_type", "")), "")
    if not datatype:
        raise VerifyInferError(f"model_warmup: datatype {spec.get('data_type')} not supported")
    count = int(np.prod(shape)) if shape else 1
    if spec.get("input_data_file"):
        path = warmup_dir / str(spec["input_data_file"])
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise VerifyInferError(f"model_warmup: cannot read {path}: {exc.strerror}",
                                   hint="input_data_file is relative to the model's warmup/ "
                                   "dir") from exc
        if datatype == "BYTES":
            items = _bytes_elements(raw)
            return np.array((items * count)[:count] or [b""] * count,
                            dtype=np.object_).reshape(shape)
        return np.frombuffer(raw, dtype=_np_type(datatype))[:count].reshape(shape)
    if datatype == "BYTES":  # Triton's zero/random data for strings: a string of zeros
        return np.full(shape, b"0", dtype=np.object_)
    if spec.get("random_data"):
        rng = np.random.default_rng(0)
        return rng.integers(0, 100, size=shape).astype(_np_type(datatype))
    return np.zeros(shape, dtype=_np_type(datatype))


def from_warmup(config: dict[str, Any], plan: Plan, model_dir: Path) -> Request | None:
    """The first ``model_warmup`` entry's inputs (with a batch of its batch_size), or None."""
    for entry in config.get("model_warmup") or []:
        inputs = entry.get("inputs") or {}
        if not inputs:
            continue
        batch = int(entry.get("batch_size", 1) or 1)
        arrays = {}
        for name, spec in inputs.items():
            dims = [int(d) for d in spec.get("dims", [])]
            shape = [batch, *dims] if plan.batching else dims
            arrays[name] = _warmup_tensor(spec, shape, model_dir / "warmup")
        return Request(arrays, f"model_warmup {entry.get('name', '')!r}".replace(" ''", ""),
                       made_up=False)
    return None


def is_perf_data(raw: Any) -> bool:
    return isinstance(raw, dict) and isinstance(raw.get("data"), list) and bool(raw["data"])


def from_perf_data(raw: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """The first request of perf_analyzer's --input-data JSON: {"data": [{NAME: value}]}, a
    value being a flat or nested list, {"content": [...], "shape": [...]} or {"b64": "..."}."""
    import numpy as np
    types = {t.name: t.datatype for t in plan.inputs}
    shapes = {t.name: plan.shape(t) for t in plan.inputs}
    first = raw["data"][0]
    arrays = {}
    for name, value in first.items():
        datatype = types.get(name, "FP32")
        shape = None
        if isinstance(value, dict) and "b64" in value:
            data = base64.b64decode(value["b64"])
            array = np.array(_bytes_elements(data), dtype=np.object_) if datatype == "BYTES" \
                else np.frombuffer(data, dtype=_np_type(datatype))
            shape = value.get("shape")
        else:
            if isinstance(value, dict):
                shape = value.get("shape")
                value = value.get("content", [])
            if datatype == "BYTES":
                array = np.array([v if isinstance(v, bytes) else str(v).encode()
                                  for v in np.asarray(value, dtype=object).flatten()],
                                 dtype=np.object_)
            else:
                array = np.asarray(value, dtype=_np_type(datatype))
        if shape:
            want = [1, *map(int, shape)] if plan.batching else [int(d) for d in shape]
        else:
            want = shapes.get(name, [])
        if want and int(np.prod(want)) == array.size:
            array = array.reshape(want)
        arrays[name] = array
    return arrays


def from_user_file(path: Path, plan: Plan) -> Request:
    """--inputs FILE: perf_analyzer's input-data JSON, or {name: nested list}, or .npz."""
    if path.suffix != ".npz":
        raw = json.loads(path.read_text(encoding="utf-8"))
        if is_perf_data(raw):
            return Request(from_perf_data(raw, plan), f"--inputs {path.name}", made_up=False)
    return Request(tensors.from_file(path, plan), f"--inputs {path.name}", made_up=False)


def shipped_perf_data(model_dir: Path) -> Path | None:
    """A perf_analyzer input-data JSON in the model dir (``*input_data*.json``), if any."""
    for path in sorted(model_dir.glob("*input_data*.json")):
        try:
            if is_perf_data(json.loads(path.read_text(encoding="utf-8"))):
                return path
        except (OSError, ValueError):
            continue
    return None


def choose(plan: Plan, config: dict[str, Any], model_dir: Path, user: Path | None,
           synthesised: Any) -> Request:
    """The request to send, from the first source that has one."""
    if user is not None:
        return from_user_file(user, plan)
    warm = from_warmup(config, plan, model_dir)
    if warm is not None:
        return warm
    shipped = shipped_perf_data(model_dir)
    if shipped is not None:
        raw = json.loads(shipped.read_text(encoding="utf-8"))
        return Request(from_perf_data(raw, plan), f"perf_analyzer data {shipped.name}",
                       made_up=False)
    return Request(synthesised(), "made up from the config", made_up=True)
