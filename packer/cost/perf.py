"""perf_analyzer, Triton's own load generator: the binary the ``tritonclient`` wheel (<= 2.51)
ships in its data ``bin/`` (the ``bench`` extra installs it), run once per concurrency level
over gRPC with the request verify chose, written as its ``--input-data`` JSON.

It needs ``libb64.so.0d`` (Debian's libb64-0d) and ``libcudart.so.12`` (the
nvidia-cuda-runtime-cu12 wheel, put on LD_LIBRARY_PATH for this process only). When it cannot
run, ``Unusable`` says why in one line and the caller falls back to the client loop.
"""

from __future__ import annotations

import base64
import csv
import importlib.util
import io
import json
import re
import sysconfig
from pathlib import Path
from typing import Any

from ..core import proc
from ..core.errors import ProcessError
from ..verify.kinds import Plan
from .levels import Level

BINARY = "perf_analyzer"
SEQUENCE_LENGTH = 3  # start, middle, end: as verify sends a sequence


class Unusable(Exception):
    """perf_analyzer cannot measure this model here; the message says why, in one line."""


def binary() -> Path:
    """The perf_analyzer the installed tritonclient wheel put beside this Python's scripts."""
    path = Path(sysconfig.get_path("scripts")) / BINARY
    if not path.is_file():
        raise Unusable("perf_analyzer is not installed (tritonpack's bench extra ships "
                       "it with tritonclient<=2.51)")
    return path


def _cudart_dir() -> str:
    spec = importlib.util.find_spec("nvidia.cuda_runtime")
    if spec is None or not spec.submodule_search_locations:
        raise Unusable("perf_analyzer needs libcudart.so.12 (pip install "
                       "'tritonpack[bench]' installs nvidia-cuda-runtime-cu12)")
    return str(Path(next(iter(spec.submodule_search_locations))) / "lib")


def _entry(datatype: str, array: Any, batching: bool) -> dict[str, Any]:
    """One input in perf_analyzer's --input-data form: raw bytes as b64, strings as content."""
    import numpy as np

    shape = list(array.shape[1:] if batching else array.shape)
    if datatype == "BYTES":
        try:
            content = [v.decode() if isinstance(v, bytes) else str(v) for v in array.ravel()]
        except UnicodeDecodeError as exc:
            raise Unusable("a BYTES input is not text, which perf_analyzer's JSON cannot "
                           "carry") from exc
        return {"content": content, "shape": shape}
    if datatype == "BF16":
        raw = (np.asarray(array, dtype=np.float32).view(np.uint32) >> 16).astype("<u2")
        return {"b64": base64.b64encode(raw.tobytes()).decode(), "shape": shape}
    return {"b64": base64.b64encode(np.ascontiguousarray(array).tobytes()).decode(),
            "shape": shape}


def input_data(plan: Plan, arrays: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The request as perf_analyzer's --input-data JSON, and the batch size (-b)."""
    types = {t.name: t.datatype for t in plan.inputs}
    step = {name: _entry(types.get(name, ""), array, plan.batching)
            for name, array in arrays.items()}
    batch = int(next(iter(arrays.values())).shape[0]) if plan.batching and arrays else 1
    return {"data": [step]}, batch


def _argv(plan: Plan, url: str, data: Path, batch: int, concurrency: int,
          seconds: float) -> list[str]:
    argv = [str(binary()), "-m", plan.name, "-u", url, "-i", "grpc", "--input-data", str(data),
            "-b", str(batch), "--concurrency-range", str(concurrency),
            "--measurement-interval", str(max(100, int(seconds * 1000 / 3))),
            # stable = 3 windows in a row within 1000 %; up to 10 windows for a loaded machine,
            # where 3 in a row failed ("Failed to obtain stable measurement within 3
            # measurement windows"): 10 windows of seconds / 3 stay inside measure()'s timeout
            "--max-trials", "10", "--stability-percentage", "1000", "-f", "-"]
    if plan.decoupled:
        argv.append("--streaming")
    if plan.sequence:
        argv += ["--sequence-length", str(SEQUENCE_LENGTH)]
    return argv


def check(plan: Plan) -> None:
    """Refuse (Unusable) what this perf_analyzer cannot send the way verify did."""
    if plan.sequence and plan.string_id:
        raise Unusable("perf_analyzer 2.51 sends integer correlation IDs; this sequence model "
                       "takes strings")
    binary()
    _cudart_dir()


def _parse(csv_path: Path, output: str, concurrency: int) -> Level:
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8"))))
    row = next((r for r in rows if r.get("Concurrency") == str(concurrency)), None)
    if row is None:
        raise Unusable(f"perf_analyzer wrote no figures for concurrency {concurrency}")
    count = re.search(r"Request count: (\d+)", output)
    return Level(concurrency, int(count[1]) if count else 0,
                 float(row["p50 latency"]) / 1000, float(row["p90 latency"]) / 1000,
                 float(row["p99 latency"]) / 1000, float(row["Inferences/Second"]))


def measure(plan: Plan, arrays: dict[str, Any], url: str, work: Path, concurrency: int,
            seconds: float) -> Level:
    """One level measured by perf_analyzer; Unusable (with its own words) if it fails."""
    data, batch = input_data(plan, arrays)
    data_path = work / "perf-input.json"
    data_path.write_text(json.dumps(data), encoding="utf-8")
    csv_path = work / f"perf-{concurrency}.csv"
    argv = _argv(plan, url, data_path, batch, concurrency, seconds)
    argv[argv.index("-f") + 1] = str(csv_path)
    env = proc.clean_env({"LD_LIBRARY_PATH": _cudart_dir()})
    try:
        output = proc.run(argv, env=env, cwd=work, timeout=seconds * 4 + 60)
    except ProcessError as exc:
        if "libb64.so.0d" in exc.output:
            raise Unusable("perf_analyzer needs libb64.so.0d (Debian's libb64-0d)") from exc
        lines = [ln.strip() for ln in exc.output.splitlines() if ln.strip()]
        said = next((ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower()),
                    lines[-1] if lines else f"exit status {exc.returncode}")
        raise Unusable(f"perf_analyzer failed: {said[:200]}") from exc
    return _parse(csv_path, output, concurrency)
