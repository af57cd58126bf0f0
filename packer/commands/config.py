"""``tritonpack config``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .. import render
from ..options import (
    Output,
    bundle,
    lock_options,
    make_options,
    make_output,
    model_dir,
    output_options,
    source_options,
    target_options,
)
from ..scan.model import open_model
from ..settings import Options, describe, effective
from .base import run


@click.command("config", short_help="The effective settings and where each comes from.")
@model_dir
@target_options
@source_options
@lock_options
@output_options
@bundle(opts=make_options, out=make_output)
def config_cmd(model_dir: Path, opts: Options, out: Output) -> None:
    """Show the effective settings for MODEL_DIR and where each comes from.

    \b
    Precedence: the command line > [options] in MODEL_DIR/tritonpack.toml >
    the target already in tritonpack.lock > defaults. For example:

    \b
      # MODEL_DIR/tritonpack.toml
      [options]
      triton = "24.08"
      src = ["../../shared_src"]     # relative to the model dir
      index-url = "https://pypi.internal/simple"
    """

    def action(rep: Any) -> list[tuple[str, str, str]]:
        model = open_model(model_dir, opts.version)
        return describe(*effective(opts, model.path))

    run(out, "config", action, render.config_text, render.config_payload)
