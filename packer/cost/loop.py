"""The fallback when perf_analyzer cannot run: a bounded client loop over gRPC, ``concurrency``
threads each with its own connection (and its own sequence ID), sending verify's request for a
fixed time. The same statistics: nearest-rank p50/p90/p99 of each call and inferences a second.

A call is one request, or for a sequence model the whole sequence (start, middle, end), or for
a decoupled model every response up to the final flag: what verify sends, timed as one.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..core.deadlines import LOAD_JOIN_SLACK
from ..core.errors import VerifyInferError
from ..verify.infer import GrpcModel, InferFailed
from ..verify.kinds import Plan
from .levels import Level, level_from


def _worker(model: GrpcModel, arrays: dict[str, Any], until: float, latencies: list[float],
            failures: list[str]) -> None:
    try:
        while time.monotonic() < until and not failures:
            t0 = time.perf_counter()
            model.run(arrays)
            latencies.append((time.perf_counter() - t0) * 1000)
    except InferFailed as exc:
        failures.append(exc.message)
    finally:
        model.close()


def measure(plan: Plan, arrays: dict[str, Any], url: str, concurrency: int, seconds: float,
            timeout: float) -> Level:
    """One level: ``concurrency`` clients for ``seconds`` (each call bounded by ``timeout``)."""
    per_call = 3 if plan.sequence else 1
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    failures: list[str] = []
    models = [GrpcModel(url, plan, timeout, sequence_id=i + 1) for i in range(concurrency)]
    start = time.monotonic()
    threads = [threading.Thread(target=_worker, args=(m, arrays, start + seconds, lat, failures),
                                name=f"tritonpack-load-{i}", daemon=True)
               for i, (m, lat) in enumerate(zip(models, latencies, strict=True))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + timeout + LOAD_JOIN_SLACK)
    elapsed = time.monotonic() - start
    if failures:
        raise VerifyInferError(f"{plan.name} failed under load at concurrency {concurrency}: "
                               f"{failures[0].strip().splitlines()[0] if failures[0].strip() else '?'}",
                               detail="\n".join(failures))
    flat = [x for lat in latencies for x in lat]
    return level_from(concurrency, flat, elapsed, len(flat) * per_call)
