"""``tritonpack cache info`` and ``tritonpack cache prune``."""

from __future__ import annotations

from typing import Any

import click

from .. import render
from ..caches import envs as envcache
from ..caches import remote
from ..options import Output, bundle, make_output, output_options
from .base import run


@click.group("cache", short_help="Show or trim tritonpack's cache.")
def cache_group() -> None:
    """Show or trim tritonpack's cache ($TRITONPACK_CACHE, default ~/.cache/tritonpack)."""


@cache_group.command("info")
@output_options
@bundle(out=make_output)
def cache_info_cmd(out: Output) -> None:
    """Where the cache is and what it holds: packed envs, local channels, packages, wheels;
    the remote caches set by TRITONPACK_CACHE_FROM/_TO and what the last run pulled or pushed."""

    def action(rep: Any) -> render.CacheView:
        return envcache.info(), remote.configured(), remote.last_run()

    run(out, "cache-info", action, render.cache_info_text, render.cache_info_payload)


def _a_number(days: float) -> float:
    if days != days:  # nan: every comparison with it is false, so nothing would ever be old
        raise click.BadParameter("nan is not a number of days")
    return days


@cache_group.command("prune")
@click.option("--days", type=click.FloatRange(min=0), default=30.0,
              show_default=True, callback=lambda ctx, param, value: _a_number(value),
              help="Remove packed envs and store entries not used for this many days "
              "(0: all of them).")
@click.option("--all", "everything", is_flag=True, help="Remove everything in the cache.")
@output_options
@bundle(out=make_output)
def cache_prune_cmd(days: float, everything: bool, out: Output) -> None:
    """Trim the cache: unused packed envs (or everything with --all)."""
    run(out, "cache-prune", lambda rep: envcache.prune_cache(days, everything),
        render.cache_prune_text, render.cache_prune_payload)
