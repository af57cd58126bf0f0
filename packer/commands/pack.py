"""``tritonpack pack`` (the default command: ``tritonpack MODEL_DIR``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .. import render, ship
from ..archive.writer import DEFAULT_LEVEL
from ..options import (
    Output,
    bundle,
    lock_options,
    make_options,
    make_output,
    model_dir,
    output_options,
    remote_options,
    source_options,
    target_options,
    verify_options,
)
from ..pack.output import FORMATS
from ..pack.stage import PackOptions
from ..scan.model import is_repository
from ..settings import Options
from ..ship import PackRequest
from .base import run
from .verify import make_verify_request

_BYTECODE = {None: "imported", True: "all", False: "none"}


def make_pack_request(kw: dict[str, Any]) -> PackRequest:
    """The pack options click parsed (removed from ``kw``), as one request."""
    verify = make_verify_request(kw)
    popts = PackOptions(format=kw.pop("fmt"), level=kw.pop("compress_level"),
                        prune=not kw.pop("no_prune"), keep=tuple(kw.pop("keep")),
                        bytecode=_BYTECODE[kw.pop("bytecode")])
    return PackRequest(pack_options=popts, frozen=kw.pop("frozen"), output=kw.pop("output"),
                       use_cache=not kw.pop("no_cache"),
                       allow_incompatible=kw.pop("allow_incompatible"), sbom=kw.pop("sbom"),
                       shared_env=kw.pop("shared_env"),
                       verify=verify if kw.pop("then_verify") else None)


@click.command("pack", short_help="Scan, lock, build, pack, patch config.pbtxt (the default).")
@model_dir
@target_options
@source_options
@lock_options
@remote_options
@click.option("--frozen", is_flag=True,
              help="Use tritonpack.lock as it is: fail if it is missing or stale (CI, releases).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="tar.gz", show_default=True,
              help="tar.gz: an archive Triton unpacks at start; dir: the environment unpacked "
              "(no extraction at start; for images), its files read-only hard links to "
              "tritonpack's cache where they share a file system (models of one lock hold one "
              "copy on disk).")
@click.option("--output", metavar="NAME",
              help="Archive or directory name inside the model dir "
              "(default: tritonpack-env.tar.gz, or tritonpack-env/ with --format dir).")
@click.option("--compress-level", type=click.IntRange(1, 9), default=DEFAULT_LEVEL,
              show_default=True, help="gzip level of the archive's members, deflated by "
              "zlib-ng (the default is the knee bench/ measured).")
@click.option("--keep", multiple=True, metavar="GLOB",
              help="Keep what the default pruning would remove (repeatable), e.g. 'include' or "
              "'pip*'.")
@click.option("--no-prune", is_flag=True, help="Ship everything conda-pack chose.")
@click.option("--bytecode/--no-bytecode", default=None,
              help="Hash-checked .pyc for everything (read-only --format dir images) / for "
              "nothing. Default: for the files a start loads (the stub's imports and the "
              "model's packages, imported once by the env's Python after pruning).")
@click.option("--no-cache", is_flag=True,
              help="Build even if the cache holds an environment for this lock.")
@click.option("--shared-env", metavar="PATH",
              help="Repository mode: one environment for every model, at PATH inside the "
              "repository (e.g. _envs/common.tar.gz); all models must have the same lock.")
@click.option("--sbom", is_flag=True,
              help="Also write a CycloneDX JSON bill of materials beside the environment.")
@click.option("--allow-incompatible", is_flag=True,
              help="Pack even if `tritonpack inspect` finds the env would fail in the target "
              "(a newer GLIBC than the image's, a Python or numpy mismatch): warn instead.")
@click.option("--verify", "then_verify", is_flag=True,
              help="Then load it in a real tritonserver and send it a request (tritonpack verify).")
@verify_options
@output_options
@bundle(opts=make_options, out=make_output, request=make_pack_request)
def pack_cmd(model_dir: Path, opts: Options, out: Output, request: PackRequest) -> None:
    """Scan, lock, build, pack and point config.pbtxt at the environment (the default command).

    \b
      tritonpack models/my_model/
      tritonpack models/my_model/ --triton 24.08
      tritonpack models/my_model/ --src ../shared_src --format dir
      tritonpack models/my_model/ --frozen          # release pipelines: never re-lock

    Nothing in MODEL_DIR changes until the environment is complete; the archive and
    config.pbtxt are replaced atomically. The summary's `reused` line (--json: `reused`)
    says what the cache spared a pack that built: the import check's kept answer, bytecode,
    large files' gzip members; -v shows each step with its seconds.
    """
    if is_repository(model_dir):
        run(out, "pack-repository",
            lambda rep: ship.pack_repository(model_dir, opts, rep, request),
            render.repo_text, render.repo_payload, exit_code=render.repo_exit_code)
    elif request.shared_env is not None:
        raise click.UsageError("--shared-env is for a model repository (a directory of models)")
    elif request.verify is None:
        run(out, "pack", lambda rep: ship.pack(model_dir, opts, rep, request),
            render.pack_text, render.pack_payload)
    else:
        run(out, "pack", lambda rep: ship.pack_and_verify(model_dir, opts, rep, request),
            lambda r: render.pack_text(r[0]) + "\n" + render.verify_text(r[1]),
            lambda r: {**render.pack_payload(r[0]), "verify": render.verify_payload(r[1])})
