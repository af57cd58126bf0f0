"""``tritonpack bench``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .. import render
from ..cost.levels import BenchOptions
from ..options import (
    Output,
    bench_options,
    bundle,
    inputs_option,
    make_bench_options,
    make_options,
    make_output,
    model_dir,
    output_options,
    source_options,
    target_options,
    timeout_option,
    with_option,
)
from ..settings import Options
from .base import run


def _verify_args(kw: dict[str, Any]) -> dict[str, Any]:
    return {"inputs": kw.pop("inputs"), "with_models": tuple(kw.pop("with_models")),
            "timeout": kw.pop("timeout")}


@click.command("bench", short_help="What a packed model costs to serve: latency, memory, start.")
@model_dir
@target_options
@source_options
@inputs_option
@with_option
@timeout_option
@bench_options
@output_options
@bundle(opts=make_options, out=make_output, options=make_bench_options,
        verify_args=_verify_args)
def bench_cmd(model_dir: Path, opts: Options, out: Output, options: BenchOptions,
              verify_args: dict[str, Any]) -> None:
    """Verify a packed model (or every model of a repository) and measure what it costs to
    serve, in the same local tritonserver, with the inputs verify chose.

    \b
      tritonpack bench models/my_model/
      tritonpack bench models/ --json > cost.json
      tritonpack bench models/my_model/ --concurrency 1,4,16 --chart latency.png

    Latency p50/p90/p99 and throughput per concurrency level (perf_analyzer from the bench
    extra, or a bounded client loop, said so, when it cannot run); each stub's and the
    server's memory idle and under load; the /dev/shm the model's regions reached and the
    --shm-size a container needs; the time to READY split into unpacking, stub start and
    initialize(); one line of advice where the figures suggest a change.

    Exit codes as verify's (2: the model is not packed here; 5: a --src dir is missing; 11:
    does not load; 12: inference fails, under load too; 13: the runtime or an extra is
    missing; 17: made-up inputs rejected; 18: the model's own bug).
    """
    from ..serving import bench

    run(out, "bench", lambda rep: bench(model_dir, opts, rep, options, verify_args),
        render.bench_text, render.bench_payload, exit_code=lambda r: int(r.exit_code))
