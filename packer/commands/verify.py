"""``tritonpack verify``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .. import render
from ..core.errors import ExitCode
from ..options import (
    VERIFY_KEYS,
    Output,
    bench_options,
    bundle,
    make_bench_options,
    make_options,
    make_output,
    model_dir,
    output_options,
    source_options,
    target_options,
    verify_options,
)
from ..settings import Options
from ..ship import VerifyRequest
from ..verify.stage import verify
from .base import run


def make_verify_request(kw: dict[str, Any]) -> VerifyRequest:
    """The verify options click parsed (removed from ``kw``), as one request. ``--tag`` is
    refused: verify's image holds tritonpack's probe and loads nothing at start, so it is no
    release artifact; ``tritonpack image`` builds the one that serves."""
    if kw.pop("tag", None) is not None:
        raise click.UsageError("--tag is not kept by verify (its image holds tritonpack's probe "
                               "and serves nothing): build the serving image with "
                               "`tritonpack image MODEL_DIR --tag NAME`")
    given = {k: kw.pop(k) for k in VERIFY_KEYS}
    return VerifyRequest(**{**given, "with_models": tuple(given["with_models"])})


@click.command("verify", short_help="Load the packed model in a real tritonserver and ask it.")
@model_dir
@target_options
@source_options
@verify_options
@click.option("--bench", is_flag=True,
              help="Then measure what it costs to serve, in the same server (tritonpack bench).")
@bench_options
@output_options
@bundle(opts=make_options, out=make_output, request=make_verify_request,
        bench=make_bench_options)
def verify_cmd(model_dir: Path, opts: Options, out: Output, request: VerifyRequest,
               bench: Any) -> None:
    """Load the packed model in a real tritonserver and prove it answers.

    \b
      tritonpack verify models/my_model/
      tritonpack verify models/my_model/ --inputs request.json --expect response.json
      tritonpack verify models/my_model/ --runtime docker --gpus

    Static checks first (archive layout, Python vs the stub, numpy's bound); then the model
    and tritonpack's probe (which imports every module the scan found, from inside Triton)
    load, and one inference runs with inputs from --inputs, the config's model_warmup, a
    perf_analyzer input-data JSON in the model dir, or made from config.pbtxt.

    
    Exit 2: a bad --inputs/--expect file (a name the model does not have, a value that is
    no number); 11: does not load; 12: loads but inference fails; 13: the runtime is missing
    or cannot run this environment (an extra not installed, another numpy bound); 17: loads,
    but its execute() rejects tritonpack's made-up inputs (give real ones).
    """
    if bench is not None:
        if request.runtime != "local":
            raise click.UsageError("--bench measures the local runtime's processes: drop "
                                   "--runtime docker")
        from ..serving import verify_with_bench

        def action(rep: Any) -> Any:
            return verify_with_bench(model_dir, opts, rep, bench, request.arguments())
    else:
        def action(rep: Any) -> Any:
            return verify(model_dir, opts, rep, **request.arguments())
    run(out, "verify", action,
        render.verify_text, render.verify_payload,
        exit_code=lambda r: 0 if r.passed else int(ExitCode.VERIFY_INFER))
