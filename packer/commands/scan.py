"""``tritonpack scan``."""

from __future__ import annotations

from pathlib import Path

import click

from .. import render
from ..context import Context, prepare
from ..core.progress import Reporter
from ..options import (
    Output,
    bundle,
    make_options,
    make_output,
    model_dir,
    output_options,
    source_options,
    target_options,
)
from ..resolve.requirements import guess_note
from ..scan.model import is_repository
from ..settings import Options
from .base import run


@click.command("scan", short_help="What model.py imports (never run) and what provides it.")
@model_dir
@target_options
@source_options
@output_options
@bundle(opts=make_options, out=make_output)
def scan_cmd(model_dir: Path, opts: Options, out: Output) -> None:
    """Show what model.py imports (read, never run) and which distribution provides each.

    \b
      tritonpack scan models/my_model/
      tritonpack scan models/my_model/ --src ../shared_src --json
      tritonpack scan models/                       # every Python model of a repository

    Kinds: stdlib (of the target's Python), backend (provided by Triton), local (your own
    code: found in the model dir or a --src root), third-party (to install).
    """
    if is_repository(model_dir):
        from ..each import scan_all

        run(out, "scan-repository", lambda rep: scan_all(model_dir, opts, rep), render.scans_text,
            render.scans_payload, exit_code=lambda res: res.exit_code)
        return

    def action(rep: Reporter) -> Context:
        ctx = prepare(model_dir, opts, rep)
        for guess in ctx.requirements.guesses:  # said here: scan never asks the index
            rep.note(guess_note(guess))
        return ctx

    run(out, "scan", action, render.scan_text, render.scan_payload)
