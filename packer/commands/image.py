"""``tritonpack image``."""

from __future__ import annotations

from pathlib import Path

import click

from .. import render
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
from ..verify.docker import SHM_DEFAULT
from .base import run


@click.command("image", short_help="Build the image that serves the packed models, prove it, tag it.")
@model_dir
@target_options
@source_options
@click.option("--tag", required=True, metavar="NAME",
              help="The image's name (registry/name:version); set only once it is proven.")
@click.option("--image", "base", metavar="IMAGE",
              help="The Triton image to build FROM (default: the release's "
              "nvcr.io/nvidia/tritonserver:<release>-py3).")
@click.option("--gpus", is_flag=True,
              help="Give the proving container every GPU (KIND_GPU models need it).")
@click.option("--shm-size", default=SHM_DEFAULT, show_default=True,
              help="The proving container's /dev/shm (the Python backend lives in it).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=300.0,
              show_default=True, metavar="SECONDS",
              help="Give up when the models are not READY, or a request not answered, by then.")
@output_options
@bundle(opts=make_options, out=make_output)
def image_cmd(model_dir: Path, opts: Options, out: Output, tag: str, base: str | None,
              gpus: bool, shm_size: str, timeout: float) -> None:
    """Build the image that serves the packed model(s), prove it serves them, then tag it.

    \b
      tritonpack image models/my_model/ --tag registry.example.com/my_model:1.2
      tritonpack image models/ --triton 24.10 --tag registry.example.com/models:1.2

    FROM the release's Triton image (--image to override), with the model (or every model of
    the repository), its environment and the models it calls; no tritonpack probe, and a
    command that loads every model at start. The image is then run as it is: every model
    must be READY and answer the request `tritonpack verify` sends, or no tag is set and the
    image is removed. Labels carry the release, the base image and each lock's hash.

    \b
    Exit 11: a model does not load in the image; 12: one loads but does not answer; 13: no
    Docker engine, the base image is not available, or a KIND_GPU model without --gpus.
    """
    from ..imaging import REFERENCE, build_image

    if not REFERENCE.fullmatch(tag):
        raise click.BadParameter(f"{tag!r} is not an image name (registry/name:version)",
                                 param_hint="'--tag'")
    run(out, "image", lambda rep: build_image(model_dir, opts, rep, tag=tag, base=base,
                                              gpus=gpus, shm_size=shm_size, timeout=timeout),
        render.image_text, render.image_payload)
