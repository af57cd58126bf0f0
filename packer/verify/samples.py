"""Inputs the model accepts, before made-up ones: what the user already wrote down for Triton's
own tools.

``--inputs FILE`` (``{name: nested list}``, ``.npz``, or perf_analyzer's ``--input-data`` JSON)
is the only request sent when given. Else every plausible request, in order: the config's
``model_warmup`` (Triton runs it at load, so a model that loaded accepts it), a perf_analyzer
input-data JSON shipped in the model dir, inputs shaped as execute()'s code expects them
(expect_inputs), the plain values with a variable last dim as wide as a scikit-learn
estimator pickled beside model.py was fitted (``n_features_in_``, read without unpickling),
plain made-up values (infer.synthesise), the same with every variable dim as 1, zeros; verify
keeps the first the model accepts.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import VerifyInferError
from ..scan import pickles
from .expect_inputs import Expected
from .kinds import DATATYPES, Plan
from .requestfile import RequestFileError, json_kind


@dataclass(frozen=True)
class Request:
    arrays: dict[str, Any]
    source: str  # where the inputs came from, for the report
    made_up: bool  # synthesized by tritonpack (a model that rejects them needs real ones)
    sources: dict[str, str] = field(default_factory=dict)  # per input, when they differ


def _np_type(datatype: str) -> Any:
    import numpy as np
    from tritonclient.utils import triton_to_np_dtype

    return np.object_ if datatype == "BYTES" else triton_to_np_dtype(datatype)


class UnusableValue(ValueError):
    """A value of a request file that cannot become the tensor it names; the message names the
    input and says why (the caller adds which file)."""


def _why(exc: Exception, datatype: str) -> str:
    """numpy's complaint, in words about the file rather than about numpy."""
    text = str(exc)
    for prefix, what in (("could not convert string to float: ", "a number"),
                         ("invalid literal for int() with base 10: ", "an integer")):
        if text.startswith(prefix):
            return f"{text.removeprefix(prefix)} is not {what}"
    if "inhomogeneous" in text or "sequence" in text:
        return "its nested lists are not all the same length (a tensor is rectangular)"
    if isinstance(exc, OverflowError):
        return f"a value is out of the range of {datatype}"
    kind = re.search(r"not '(\w+)'$", text)  # float() or int() of a JSON object, list, null
    if isinstance(exc, TypeError) and kind:
        shown = {"dict": "a JSON object", "list": "a list", "NoneType": "null"}
        return f"{shown.get(kind[1], kind[1])} is not a number"
    return text


def _array(name: str, value: Any, datatype: str) -> Any:
    """``value`` as an array of ``datatype``; BYTES elements as bytes."""
    import numpy as np
    try:
        if datatype == "BYTES":
            array = np.array(value, dtype=np.object_)
            return np.vectorize(lambda v: v if isinstance(v, bytes) else str(v).encode(),
                                otypes=[np.object_])(array)
        return np.asarray(value, dtype=_np_type(datatype))
    except (ValueError, TypeError, OverflowError) as exc:
        raise UnusableValue(f"input {name} ({datatype}): {_why(exc, datatype)}") from exc


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
        dtype = np.dtype(_np_type(datatype))
        if len(raw) < count * dtype.itemsize:  # Triton itself refuses a short warmup file
            raise VerifyInferError(
                f"model_warmup: {path.name} holds {len(raw)} bytes, {count * dtype.itemsize} "
                f"needed for {datatype} {shape}", hint="input_data_file is the raw tensor bytes")
        return np.frombuffer(raw[:count * dtype.itemsize], dtype=dtype).reshape(shape)
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
    value being a flat or nested list, {"content": [...], "shape": [...]} or {"b64": "..."}.
    Raises UnusableValue naming the input whose value cannot be sent."""
    types = {t.name: t.datatype for t in plan.inputs}
    shapes = {t.name: plan.shape(t) for t in plan.inputs}
    first = raw["data"][0]
    if not isinstance(first, dict):
        raise UnusableValue(f"data[0] is a JSON {json_kind(first)}, not one request "
                            "{name: value}")
    arrays = {}
    for name, value in first.items():
        datatype = types.get(name, "FP32")
        try:
            arrays[name] = _perf_value(name, value, datatype, shapes.get(name, []), plan)
        except UnusableValue:
            raise
        except (ValueError, TypeError, OverflowError) as exc:  # b64, shape, content
            raise UnusableValue(f"input {name} ({datatype}): {_why(exc, datatype)}") from exc
    return arrays


def _perf_value(name: str, value: Any, datatype: str, default: list[int], plan: Plan) -> Any:
    import numpy as np
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
            array = _array(name, value, datatype)
    want = default
    if shape:
        want = [1, *map(int, shape)] if plan.batching else [int(d) for d in shape]
    if want and int(np.prod(want)) == array.size:
        array = array.reshape(want)
    return array


def _user_arrays(path: Path, plan: Plan) -> dict[str, Any]:
    """{name: nested list} JSON or .npz (one array per input name), as arrays of the datatypes
    the config declares."""
    import numpy as np
    types = {t.name: t.datatype for t in plan.inputs}
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            raw = {k: data[k] for k in data.files}
    else:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):  # requestfile.check_request_file refuses it earlier
            raise UnusableValue(f"is a JSON {json_kind(raw)}, not an object of tensors by name")
    return {name: _array(name, value, types.get(name, "FP32")) for name, value in raw.items()}


def from_user_file(path: Path, plan: Plan) -> Request:
    """--inputs FILE: perf_analyzer's input-data JSON, or {name: nested list}, or .npz; a value
    that cannot become its input's datatype (only the config the server loaded tells) is a
    RequestFileError, like the file check_request_file refused before the server started."""
    try:
        if path.suffix != ".npz":
            raw = json.loads(path.read_text(encoding="utf-8"))
            if is_perf_data(raw):
                if isinstance(raw["data"][0], dict):
                    _known_names(raw["data"][0], path, plan)
                return Request(from_perf_data(raw, plan), f"--inputs {path.name}",
                               made_up=False)
            if isinstance(raw, dict):
                _known_names(raw, path, plan)
        arrays = _user_arrays(path, plan)
    except UnusableValue as exc:
        raise RequestFileError(f"--inputs {path}: {exc}",
                               hint="give each input values of the datatype its config "
                               "declares") from exc
    _known_names(arrays, path, plan)  # a .npz's names
    return Request(arrays, f"--inputs {path.name}", made_up=False)


def _known_names(arrays: dict[str, Any], path: Path, plan: Plan) -> None:
    """A name the model does not take is a typo in the file, refused here in one sentence,
    before its values are read as the datatype of an input it does not name, and rather than
    as the server's 'unexpected inference input' (the plan is the config the server
    completed, so auto_complete_config inputs count)."""
    _only_known(arrays, [t.name for t in plan.inputs], "--inputs", path, plan, "input")
    missing = [t.name for t in plan.inputs if not t.optional and t.name not in arrays]
    if missing:
        raise RequestFileError(
            f"--inputs {path}: gives no {', '.join(missing)}, which model {plan.name!r} "
            "requires", hint="give every input the config does not mark optional")


def check_expected_names(path: Path, plan: Plan) -> None:
    """--expect names outputs: one the model does not have is a typo in the file (exit 2),
    not a model that 'answered wrongly' (exit 12)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    known = [t.name for t in plan.outputs]
    listed = raw if isinstance(raw, list) else [raw]
    for i, one in enumerate(listed):
        if not isinstance(one, dict):
            raise RequestFileError(
                f"--expect {path}: entry {i + 1} is not an object {{output name: values}}",
                hint="give one object (every response must match it) or a list of them, "
                "one per response")
        if known:  # no declared outputs: the response decides
            _only_known(one, known, "--expect", path, plan, "output")


def _only_known(given: Iterable[str], known: list[str], option: str, path: Path, plan: Plan,
                kind: str) -> None:
    for name in given:
        if name not in known:
            raise RequestFileError(
                f"{option} {path}: {name!r} is not an {kind} of model {plan.name!r} "
                f"(its {kind}s: {', '.join(known) or 'none'})",
                hint=f"name each tensor as the config's {kind} section does")


def shipped_perf_data(model_dir: Path) -> Path | None:
    """A perf_analyzer input-data JSON in the model dir (``*input_data*.json``), if any."""
    for path in sorted(model_dir.glob("*input_data*.json")):
        try:
            if is_perf_data(json.loads(path.read_text(encoding="utf-8"))):
                return path
        except (OSError, ValueError, RecursionError):
            continue
    return None


# the widest input made from a pickled estimator's column count (a hashing vectorizer's 2**20
# columns of float64 are 8 MB); the count is read from bytes, a pickle may say anything
FITTED_MAX_BYTES = 64 << 20


def fitted_width(model_dir: Path) -> tuple[str, int] | None:
    """The file and column count of a fitted estimator pickled in the model dir or a version
    dir (scikit-learn's ``n_features_in_``), when the pickles there agree on one count."""
    dirs = (model_dir, *sorted(p for p in model_dir.glob("[0-9]*") if p.is_dir()))
    found = {path: count for path in pickles.candidates(dirs)
             if (count := pickles.feature_count(path)) is not None}
    if len(set(found.values())) != 1:
        return None
    path, count = next(iter(found.items()))
    return path.name, count


def from_estimator(plan: Plan, model_dir: Path, plain: dict[str, Any]) -> Request | None:
    """The plain request with a variable last dim of each numeric input made as wide as the
    estimator pickled beside model.py was fitted (a table of N rows by that many columns,
    which is what production sends it); None when there is no such input or estimator."""
    import numpy as np
    fitted = fitted_width(model_dir)
    if fitted is None:
        return None
    name, width = fitted
    arrays, sources = dict(plain), {}
    for tensor in plan.inputs:
        array = plain.get(tensor.name)
        if array is None or array.dtype == np.object_ or not tensor.dims or tensor.dims[-1] >= 0:
            continue
        shape = (*array.shape[:-1], width)
        if math.prod(shape) * array.dtype.itemsize > FITTED_MAX_BYTES:
            continue  # a count no table has: made, it filled the memory (2**31 - 1: 8 GB)
        arrays[tensor.name] = np.resize(array, shape)
        sources[tensor.name] = f"{width} columns, as the estimator in {name} was fitted"
    if not sources:
        return None
    return Request(arrays, next(iter(sources.values())), made_up=True,
                   sources={t: sources.get(t, "made up from the config") for t in arrays})


def _zeros(arrays: dict[str, Any]) -> dict[str, Any]:
    """The plain request with zeros (strings of "0", as Triton's zero_data warmup sends)."""
    import numpy as np
    return {name: np.full(a.shape, b"0", dtype=np.object_) if a.dtype == np.object_
            else np.zeros_like(a) for name, a in arrays.items()}


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import numpy as np
    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape and a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k])
        for k in a)


def candidates(plan: Plan, config: dict[str, Any], model_dir: Path, user: Path | None,
               synthesised: Callable[[], dict[str, Any]],
               expected: Callable[[], Expected | None] = lambda: None,
               minimal: Callable[[], dict[str, Any]] | None = None) -> list[Request]:
    """The requests to try, in order; only --inputs FILE's when it is given."""
    if user is not None:
        return [from_user_file(user, plan)]
    out: list[Request] = []
    warm = from_warmup(config, plan, model_dir)
    if warm is not None:
        out.append(warm)
    shipped = shipped_perf_data(model_dir)
    if shipped is not None:
        raw = json.loads(shipped.read_text(encoding="utf-8"))
        try:
            arrays = from_perf_data(raw, plan)
        except UnusableValue as exc:
            raise VerifyInferError(f"perf_analyzer data {shipped}: {exc}",
                                   hint="fix it, or give verify --inputs FILE") from exc
        out.append(Request(arrays, f"perf_analyzer data {shipped.name}", made_up=False))
    code = expected()
    if code is not None:
        shown = set(code.sources.values())
        source = shown.pop() if len(shown) == 1 else \
            "; ".join(f"{name}: {where}" for name, where in code.sources.items())
        out.append(Request(code.arrays, source, made_up=True, sources=code.sources))
    plain = synthesised()
    fitted = from_estimator(plan, model_dir, plain)
    if fitted is not None:
        out.append(fitted)
    out.append(Request(plain, "made up from the config", made_up=True))
    small = minimal() if minimal is not None else plain
    if not _same(small, plain):  # images made 64x64 may disagree with inputs of size 1
        out.append(Request(small, "made up from the config, variable dims as 1", made_up=True))
    zeros = _zeros(small)
    if not _same(zeros, plain):
        out.append(Request(zeros, "zeros", made_up=True))
    return out


def choose(plan: Plan, config: dict[str, Any], model_dir: Path, user: Path | None,
           synthesised: Callable[[], dict[str, Any]]) -> Request:
    """The first request to send (see candidates)."""
    return candidates(plan, config, model_dir, user, synthesised)[0]
