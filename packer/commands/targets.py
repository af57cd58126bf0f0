"""``tritonpack targets``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .. import render
from ..options import Output, bundle, make_output, output_options
from ..resolve.recipebook import load
from ..resolve.target import releases
from .base import run


@click.command("targets", short_help="The Triton releases tritonpack can target.")
@click.option("--recipes", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="A recipe dir of your own that adds releases.")
@output_options
@bundle(out=make_output)
def targets_cmd(recipes: Path | None, out: Output) -> None:
    """List the Triton releases tritonpack can target, with their Python and CUDA."""

    def rows(rep: Any) -> list[dict[str, Any]]:
        book = load(recipes)
        return [{"release": r, **book.triton[r]} for r in releases(book)]

    run(out, "targets", rows, render.targets_text, render.targets_payload)
