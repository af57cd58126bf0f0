"""Inference inputs synthesised from config.pbtxt (or read from a file) and output checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import VerifyInferError

# ModelConfig TYPE_* -> KServe v2 datatype
DATATYPES = {
    "TYPE_BOOL": "BOOL", "TYPE_UINT8": "UINT8", "TYPE_UINT16": "UINT16", "TYPE_UINT32": "UINT32",
    "TYPE_UINT64": "UINT64", "TYPE_INT8": "INT8", "TYPE_INT16": "INT16", "TYPE_INT32": "INT32",
    "TYPE_INT64": "INT64", "TYPE_FP16": "FP16", "TYPE_FP32": "FP32", "TYPE_FP64": "FP64",
    "TYPE_STRING": "BYTES", "TYPE_BF16": "BF16",
}


def _type_name(config: Any, value: int) -> str:
    from tritonclient.grpc import model_config_pb2

    return str(model_config_pb2.DataType.Name(value))


def _shape(config: Any, dims: list[int]) -> list[int]:
    shape = [d if d > 0 else 1 for d in dims]
    return [1, *shape] if config.max_batch_size > 0 else shape


def _fill(datatype: str, count: int) -> list[Any]:
    if datatype == "BYTES":
        return ["tritonpack"] * count
    if datatype == "BOOL":
        return [True] * count
    return [1] * count


def synthesise(config: Any) -> list[dict[str, Any]]:
    """One request's inputs: every required input, -1 dims as 1, a batch of 1 when batching."""
    inputs = []
    for inp in config.input:
        if inp.optional:
            continue
        datatype = DATATYPES.get(_type_name(config, inp.data_type))
        if datatype is None:
            raise VerifyInferError(f"input {inp.name}: datatype not supported for synthesis",
                                   hint="give the inputs with --inputs FILE")
        shape = _shape(config, list(inp.dims))
        count = 1
        for d in shape:
            count *= d
        inputs.append({"name": inp.name, "shape": shape, "datatype": datatype,
                       "data": _fill(datatype, count)})
    return inputs


def from_file(path: Path, config: Any) -> list[dict[str, Any]]:
    """Inputs from JSON ({name: nested list}) or .npz (one array per input name)."""
    types = {i.name: DATATYPES.get(_type_name(config, i.data_type), "FP32") for i in config.input}
    arrays: dict[str, Any]
    if path.suffix == ".npz":
        import numpy as np

        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        return [{"name": k, "shape": list(v.shape), "datatype": types.get(k, "FP32"),
                 "data": v.flatten().tolist()} for k, v in arrays.items()]
    raw = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for name, value in raw.items():
        flat, shape = _flatten(value)
        out.append({"name": name, "shape": shape, "datatype": types.get(name, "FP32"), "data": flat})
    return out


def _flatten(value: Any) -> tuple[list[Any], list[int]]:
    if not isinstance(value, list):
        return [value], []
    if not value:
        return [], [0]
    parts = [_flatten(v) for v in value]
    return [x for p in parts for x in p[0]], [len(value), *parts[0][1]]


def check_outputs(config: Any, result: dict[str, Any]) -> list[str]:
    """Problems with the response: missing outputs, wrong datatype or shape."""
    problems = []
    got = {o["name"]: o for o in result.get("outputs", [])}
    for out in config.output:
        if out.name not in got:
            problems.append(f"output {out.name} missing from the response")
            continue
        want_type = DATATYPES.get(_type_name(config, out.data_type))
        if want_type and got[out.name].get("datatype") != want_type:
            problems.append(f"output {out.name}: datatype {got[out.name].get('datatype')}, "
                            f"config says {want_type}")
        dims = list(out.dims)
        want = [-1, *dims] if config.max_batch_size > 0 else dims
        shape = got[out.name].get("shape", [])
        if len(shape) != len(want) or any(w not in (-1, s) for w, s in zip(want, shape, strict=False)):
            problems.append(f"output {out.name}: shape {shape}, config says {want}")
    return problems


def compare(result: dict[str, Any], expected_path: Path, rtol: float = 1e-5) -> list[str]:
    expected = json.loads(expected_path.read_text(encoding="utf-8"))
    got = {o["name"]: o.get("data", []) for o in result.get("outputs", [])}
    problems = []
    for name, value in expected.items():
        flat, _ = _flatten(value)
        have = got.get(name)
        if have is None:
            problems.append(f"expected output {name} missing")
        elif len(have) != len(flat) or any(
            (abs(a - b) > rtol * max(1.0, abs(b))) if isinstance(b, int | float) else a != b
            for a, b in zip(have, flat, strict=False)
        ):
            problems.append(f"output {name}: {have[:8]} differs from the expected {flat[:8]}")
    return problems
