"""``tritonpack why``."""

from __future__ import annotations

from pathlib import Path

import click

from .. import render
from ..context import prepare
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
from ..settings import Options
from .base import run


@click.command("why", short_help="Which import, file or dependency locked a package.")
@model_dir
@click.argument("name", metavar="PACKAGE")
@target_options
@source_options
@lock_options
@output_options
@bundle(opts=make_options, out=make_output)
def why_cmd(model_dir: Path, name: str, opts: Options, out: Output) -> None:
    """Say why PACKAGE is in MODEL_DIR's tritonpack.lock: the import of model.py (or of a
    bundled module), the declared file, or the chain of dependencies that brought it.
    PACKAGE is a distribution (pillow) or a name model.py imports (PIL).

    \b
      tritonpack why models/my_model/ idna
      tritonpack why models/my_model/ numpy --json
    """
    from ..lock.why import why

    run(out, "why", lambda rep: why(prepare(model_dir, opts, rep), name),
        render.why_text, render.why_payload)
