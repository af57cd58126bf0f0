"""``tritonpack inspect``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .. import render
from ..envcheck.inspect import environment_of, inspect_env, inspect_target
from ..options import Output, bundle, make_output, output_options
from ..resolve.recipebook import load
from .base import run


@click.command("inspect", short_help="Check an environment against a Triton release.")
@click.argument("env", type=click.Path(path_type=Path, exists=True),
                metavar="ARCHIVE_OR_DIR|MODEL_DIR")
@click.option("--triton", metavar="RELEASE",
              help="The release to check against (default: the target recorded in the "
              "environment, else the newest known).")
@click.option("--python", metavar="X.Y", help="A custom stub's Python.")
@click.option("--platform", type=click.Choice(["linux-64", "linux-aarch64"]))
@click.option("--recipes", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="A recipe dir of your own (e.g. a release the built-in table lacks).")
@output_options
@bundle(out=make_output)
def inspect_cmd(env: Path, triton: str | None, python: str | None, platform: str | None,
                recipes: Path | None, out: Output) -> None:
    """Check any environment archive or directory against a Triton release, without running it.

    \b
      tritonpack inspect models/my_model/tritonpack-env.tar.gz --triton 24.08
      tritonpack inspect models/my_model/     # the environment its EXECUTION_ENV_PATH names
      tritonpack inspect some-hand-made-env.tar.gz --json

    Layout, Python vs the stub, numpy and its bound, unsafe entries (absolute paths, '..',
    links leaving the env, device files) and the newest GLIBC_/GLIBCXX_ versions its ELF files
    need vs the image's. Exit 0 when Triton would accept it, 1 naming each problem.
    """

    def action(rep: Any) -> Any:
        path = environment_of(env)
        target, assumed = inspect_target(path, load(recipes), triton, python, platform)
        return inspect_env(path, target), target, assumed

    run(out, "inspect", action, render.inspect_text, render.inspect_payload,
        exit_code=lambda res: 0 if res[0].ok else 1)
