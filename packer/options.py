"""Click options, each defined once and shared by every command that takes it.

The settings' options are derived from ``packer.settings.SETTINGS``; ``bundle`` hands a
command its parsed options as a few objects (``Options``, ``Output``, a request) instead of
one keyword argument per option.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from .core import network
from .core.version import __version__
from .settings import SETTINGS, Group, Options, Setting, from_command_line

F = TypeVar("F", bound=Callable[..., Any])


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for dec in reversed(decorators):
            func = dec(func)
        return func
    return apply


model_dir = click.argument(
    "model_dir", type=click.Path(path_type=Path, file_okay=True, dir_okay=True), metavar="MODEL_DIR"
)


def _option(s: Setting) -> Callable[[F], F]:
    """The click option of one setting, as its declaration says."""
    kind: Any = {"str": None, "flag": None, "int": click.IntRange(min=0),
                 "dir": click.Path(path_type=Path, file_okay=False)}[s.kind]
    if s.choices:
        kind = click.Choice(s.choices)
    extra: dict[str, Any] = {"is_flag": True} if s.kind == "flag" else {"type": kind}
    if s.envvar:
        extra.update(envvar=s.envvar, show_envvar=True)
    names = [f"--{s.name}/--no-{s.name}"] if s.two_way else [f"--{s.name}"]
    if s.two_way:  # unset (None) lets tritonpack.toml and the lock decide
        extra["default"] = None
    return click.option(*names, s.param, multiple=s.many, metavar=s.metavar,
                        help=s.help, **extra)


def _settings(group: Group) -> Callable[[F], F]:
    return _stack(*(_option(s) for s in SETTINGS.values() if s.group == group))


target_options = _settings("target")
source_options = _settings("source")
lock_options = _settings("lock")
remote_options = _settings("remote")

inputs_option = click.option(
    "--inputs", type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Request inputs: JSON {name: nested list}, .npz, or perf_analyzer's --input-data "
    "JSON (default: the config's warm-up or a perf_analyzer data file in the model dir, else "
    "made up from config.pbtxt and execute()'s code).")
with_option = click.option(
    "--with", "with_models", multiple=True, metavar="MODEL",
    help="Also load MODEL from the same repository (repeatable): a model this one calls by a "
    "name computed at run time (BLS).")
timeout_option = click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), default=120.0, show_default=True,
    metavar="SECONDS", help="Give up on a server or a model load after this long.")

verify_options = _stack(
    click.option("--runtime", type=click.Choice(["local", "docker"]), default="local",
                 show_default=True,
                 help="local: the tritonserver from the nvidia-pytriton wheel, on this machine; "
                 "docker: the target release's image (Dockerfile.base)."),
    inputs_option,
    click.option("--expect", type=click.Path(path_type=Path, dir_okay=False, exists=True),
                 help="Expected outputs (JSON {name: nested list}) to compare values."),
    with_option,
    timeout_option,
    click.option("--image", metavar="IMAGE",
                 help="docker: the Triton image to build FROM (default: the release's "
                 "nvcr.io/nvidia/tritonserver:<release>-py3)."),
    click.option("--gpus", is_flag=True, help="docker: give the container every GPU."),
    click.option("--shm-size", default="256m", show_default=True,
                 help="docker: the container's /dev/shm (the Python backend lives in it)."),
    click.option("--tag", metavar="NAME", hidden=True),  # refused: `tritonpack image` builds it
)
VERIFY_KEYS = ("runtime", "inputs", "expect", "with_models", "timeout", "image", "gpus",
               "shm_size")



def _levels(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    """--concurrency 1,2,4: positive whole numbers, in order, each once."""
    try:
        levels = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        levels = []
    if not levels or levels[0] < 1:
        raise click.BadParameter(f"{value!r} is not a list of positive whole numbers, like 1,2,4")
    return tuple(levels)


bench_options = _stack(
    click.option("--concurrency", default="1,2,4", show_default=True, metavar="N[,N...]",
                 callback=_levels, help="The concurrency levels to measure."),
    click.option("--duration", type=click.FloatRange(min=0.3), default=3.0, show_default=True,
                 metavar="SECONDS", help="Measuring time per concurrency level."),
    click.option("--chart", type=click.Path(path_type=Path, dir_okay=False), metavar="PATH",
                 help="Also draw latency and throughput against concurrency as a PNG."),
    click.option("--load-tool", type=click.Choice(["auto", "perf_analyzer", "loop"]),
                 default="auto", show_default=True,
                 help="auto: perf_analyzer, or tritonpack's client loop when it cannot run; "
                 "loop: the client loop only."),
)
BENCH_KEYS = ("concurrency", "duration", "chart", "load_tool")

output_options = _stack(
    click.version_option(__version__, prog_name="tritonpack"),  # on every command, one meaning
    click.option("--json", "as_json", is_flag=True, help="Print a versioned JSON object."),
    click.option("-v", "--verbose", count=True,
                 help="Each step with its seconds and what it reused from the cache, and "
                 "underlying tool output on errors; -vv: also every command run, in full."),
    click.option("-q", "--quiet", is_flag=True, help="No progress lines."),
)


@dataclass(frozen=True)
class Output:
    """How a command shows what it did: ``--json``, ``--verbose``, ``--quiet``."""

    as_json: bool = False
    verbose: bool = False
    quiet: bool = False
    debug: bool = False  # -vv: every command run, in full, and the libraries' debug logs


def make_options(kw: dict[str, Any]) -> Options:
    """Options from the keyword arguments the shared decorators produced (the settings'
    keywords are removed from ``kw``)."""
    opts = from_command_line({s.param: kw.pop(s.param) for s in SETTINGS.values()
                             if s.param in kw})
    network.set_offline(opts.offline)  # every command, on or off: one process, many runs
    return opts


def make_output(kw: dict[str, Any]) -> Output:
    verbose = int(kw.pop("verbose", 0) or 0)
    return Output(bool(kw.pop("as_json", False)), verbose >= 1, bool(kw.pop("quiet", False)),
                  debug=verbose >= 2)


def make_bench_options(kw: dict[str, Any]) -> Any:
    """A ``packer.cost.levels.BenchOptions`` from the bench options (removed from ``kw``);
    None when the command has a ``--bench`` flag and it was not given."""
    from .cost.levels import BenchOptions

    given = {k: kw.pop(k) for k in BENCH_KEYS}
    if not kw.pop("bench", True):
        return None
    return BenchOptions(concurrency=given["concurrency"], seconds=given["duration"],
                        chart=given["chart"], tool=given["load_tool"])


def bundle(**builders: Callable[[dict[str, Any]], Any]) -> Callable[[F], F]:
    """Call the command with one object per builder (each takes the keywords it reads out
    of click's) and the keywords left over: ``pack_cmd(model_dir, opts, out, request)``."""
    def apply(func: F) -> F:
        @functools.wraps(func)
        def command(**kw: Any) -> Any:
            made = {name: build(kw) for name, build in builders.items()}
            return func(**kw, **made)
        return command  # type: ignore[return-value]
    return apply
