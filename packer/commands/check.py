"""``tritonpack check``."""

from __future__ import annotations

from pathlib import Path

import click

from .. import render
from ..freshness import check
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
from ..settings import Options
from .base import run


@click.command("check", short_help="CI: locks fresh, envs from their locks, configs point at them.")
@model_dir
@target_options
@source_options
@output_options
@click.option("--deep", is_flag=True,
              help="Also read every entry of each environment again (what `tritonpack inspect` "
              "checks), not only its sha256 record: catches an archive replaced together with "
              "its record. Seconds per GB.")
@click.option("--locks", is_flag=True,
              help="Only what the committed files decide: every lock fresh against its model "
              "dir, tritonpack.toml, declared files and --src modules, and config.pbtxt pointing "
              "into the model dir. Needs no environment: the gate for a fresh clone whose "
              "archives are not committed.")
@bundle(opts=make_options, out=make_output)
def check_cmd(model_dir: Path, opts: Options, out: Output, deep: bool, locks: bool) -> None:
    """For release pipelines: exit 0 only if every lock is fresh, every environment was packed
    from its lock, and every config.pbtxt points at its environment. No network, no build.

    \b
      tritonpack check models/            # a whole model repository
      tritonpack check models/my_model/
      tritonpack check --locks models/    # CI on a fresh clone: no archives needed

    Exit 1 with one line per problem, naming the model; a model whose config.pbtxt cannot be
    read is exit 3 (the other models' problems are still listed).
    """
    if deep and locks:
        raise click.UsageError("--deep reads the environments, --locks needs none: choose one")
    run(out, "check", lambda rep: check(model_dir, opts, deep=deep, locks=locks),
        render.repo_check_text,
        render.repo_check_payload, exit_code=lambda rep: rep.exit_code)
