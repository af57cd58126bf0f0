"""``tritonpack lock`` and ``tritonpack export``."""

from __future__ import annotations

from pathlib import Path

import click

from .. import render
from ..lock.stage import exported
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
from ..pipeline import check_lock, lock
from ..scan.model import is_repository
from ..settings import Options
from .base import run


@click.command("lock", short_help="Pin every conda and PyPI package with hashes.")
@model_dir
@target_options
@source_options
@lock_options
@click.option("--check", is_flag=True,
              help="Do not lock: exit 0 if tritonpack.lock is fresh, 1 naming what changed.")
@click.option("--upgrade", is_flag=True, help="Re-resolve even if the lock is fresh.")
@click.option("--upgrade-package", "packages", multiple=True, metavar="NAME",
              help="Move only NAME (repeatable) to its newest version the rest allows; every "
              "other PyPI pin stays where the lock has it.")
@output_options
@bundle(opts=make_options, out=make_output)
def lock_cmd(model_dir: Path, check: bool, upgrade: bool, packages: tuple[str, ...],
             opts: Options, out: Output) -> None:
    """Pin every conda and PyPI package with hashes in MODEL_DIR/tritonpack.lock.

    \b
      tritonpack lock models/my_model/ --triton 24.08
      tritonpack lock --check models/my_model/      # CI: is the lock stale?
      tritonpack lock --check models/               # every model of a repository
      tritonpack lock models/my_model/ --python-from auto   # no conda channel here

    Re-locking with unchanged inputs changes nothing on disk.
    """
    if check and is_repository(model_dir):
        from ..each import check_locks

        run(out, "lock-check-repository", lambda rep: check_locks(model_dir, opts, rep),
            render.lock_checks_text, render.lock_checks_payload,
            exit_code=lambda res: res.exit_code)
        return
    if check:
        run(out, "lock-check", lambda rep: check_lock(model_dir, opts, rep), render.check_text,
            render.check_payload, exit_code=lambda res: 0 if res.fresh else 1)
        return
    run(out, "lock", lambda rep: lock(model_dir, opts, rep, upgrade=upgrade,
                                        packages=tuple(packages)), render.lock_text,
        render.lock_payload)


@click.command("export", short_help="The lock's PyPI pins as a requirements file with --hash.")
@model_dir
@output_options
@bundle(out=make_output)
def export_cmd(model_dir: Path, out: Output) -> None:
    """Print the lock's PyPI part as a requirements file with --hash lines (pip-tools style).

    \b
      tritonpack export models/my_model/ > requirements.txt
      tritonpack export models/ > requirements.txt   # a repository: one file, or the clash
      pip install --require-hashes --no-deps -r requirements.txt
    """
    if is_repository(model_dir):
        from ..each import export_all

        run(out, "export-repository", lambda rep: export_all(model_dir), render.export_all_text,
            render.export_all_payload)
        return
    run(out, "export", lambda rep: exported(Path(model_dir)), render.export_text,
        render.export_payload)
