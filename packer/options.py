"""Click options, each defined once and shared by every command that takes it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .core.version import __version__
from .lock.pypi import DEFAULT_INDEX, RESOLVERS, Indexes
from .resolve.target import PLATFORMS
from .settings import Options

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

target_options = _stack(
    click.option("--triton", "triton", metavar="RELEASE",
                 help="Triton release to target, e.g. 24.08 (default: the newest known; "
                 "see `tritonpack targets`)."),
    click.option("--python", "python", metavar="X.Y",
                 help="Override the release's Python (only with a custom backend stub)."),
    click.option("--platform", type=click.Choice(sorted(PLATFORMS)),
                 help="Target platform (default: this machine's)."),
    click.option("--torch", metavar="cpu|cuXYZ|none",
                 help="PyTorch wheel index when torch is required (default: the release's CUDA, "
                 "recipes/torch.toml); none: only the indexes you give (a wheelhouse)."),
)

source_options = _stack(
    click.option("--src", "src", multiple=True, metavar="DIR",
                 type=click.Path(path_type=Path, file_okay=False),
                 help="A source root holding your own modules (repeatable); they are bundled."),
    click.option("--model-version", "model_version", type=click.IntRange(min=0), metavar="N",
                 help="Model version dir to use (default: the highest holding model.py)."),
    click.option("--recipes", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
                 help="A recipe dir of your own (triton.toml, imports.toml, torch.toml) "
                 "that adds to the built-in one."),
)

lock_options = _stack(
    click.option("--channel", "channels", multiple=True, metavar="URL|NAME",
                 help="Conda channel (repeatable; default conda-forge; file:// and mirrors work)."),
    click.option("--python-from", metavar="PATH|auto",
                 help="Make the env's Python from a shared-library CPython install "
                 "(pyenv --enable-shared, uv python install) instead of a channel."),
    click.option("--offline", is_flag=True,
                 help="Never try a remote conda channel (implies --python-from auto)."),
    click.option("--index-url", metavar="URL",
                 help=f"PyPI index to resolve against (default: {DEFAULT_INDEX})."),
    click.option("--extra-index-url", multiple=True, metavar="URL", help="Extra PyPI index."),
    click.option("--find-links", multiple=True, metavar="DIR|URL",
                 help="Also look for wheels here (e.g. a local wheelhouse)."),
    click.option("--resolver", type=click.Choice(sorted(RESOLVERS)),
                 help="PyPI resolver (default: uv)."),
    click.option("--no-wait", is_flag=True,
                 help="Fail (exit 14) instead of waiting when another run holds this model."),
)

remote_options = _stack(
    click.option("--cache-from", "cache_from", multiple=True, metavar="oci://REGISTRY/REPO",
                 envvar="TRITONPACK_CACHE_FROM", show_envvar=True,
                 help="Before building a lock, pull its packed environment from this OCI "
                 "registry if it is there (repeatable)."),
    click.option("--cache-to", "cache_to", multiple=True, metavar="oci://REGISTRY/REPO",
                 envvar="TRITONPACK_CACHE_TO", show_envvar=True,
                 help="After packing, push the environment there for other machines "
                 "(best-effort: a failed push is a warning)."),
    click.option("--insecure-registry", "insecure_registry", multiple=True, metavar="HOST[:PORT]",
                 help="Talk plain HTTP to this registry (loopback registries always may)."),
)

verify_options = _stack(
    click.option("--runtime", type=click.Choice(["local", "docker"]), default="local",
                 show_default=True,
                 help="local: the tritonserver from the nvidia-pytriton wheel, on this machine; "
                 "docker: the target release's image (Dockerfile.base)."),
    click.option("--inputs", type=click.Path(path_type=Path, dir_okay=False, exists=True),
                 help="Request inputs: JSON {name: nested list} or .npz (default: made from "
                 "config.pbtxt)."),
    click.option("--expect", type=click.Path(path_type=Path, dir_okay=False, exists=True),
                 help="Expected outputs (JSON {name: nested list}) to compare values."),
    click.option("--with", "with_models", multiple=True, metavar="MODEL",
                 help="Also load MODEL from the same repository (repeatable): a model this one "
                 "calls by a name computed at run time (BLS)."),
    click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=120.0,
                 show_default=True, metavar="SECONDS",
                 help="Give up on a server or a model load after this long."),
    click.option("--image", metavar="IMAGE",
                 help="docker: the Triton image to build FROM (default: the release's "
                 "nvcr.io/nvidia/tritonserver:<release>-py3)."),
    click.option("--gpus", is_flag=True, help="docker: give the container every GPU."),
    click.option("--shm-size", default="256m", show_default=True,
                 help="docker: the container's /dev/shm (the Python backend lives in it)."),
    click.option("--tag", metavar="NAME",
                 help="docker: keep the verified image under this name (for a release pipeline)."),
)

output_options = _stack(
    click.version_option(__version__, prog_name="tritonpack"),  # on every command, one meaning
    click.option("--json", "as_json", is_flag=True, help="Print a versioned JSON object."),
    click.option("-v", "--verbose", is_flag=True, help="Show underlying tool output on errors."),
    click.option("-q", "--quiet", is_flag=True, help="No progress lines."),
)


def make_options(kw: dict[str, Any]) -> Options:
    """Options from the keyword arguments the shared decorators produced."""
    return Options(
        triton=kw.get("triton"),
        python=kw.get("python"),
        platform=kw.get("platform"),
        torch=kw.get("torch"),
        version=kw.get("model_version"),
        src=tuple(kw.get("src") or ()),
        recipes=kw.get("recipes"),
        channels=tuple(kw.get("channels") or ()),
        python_from=kw.get("python_from"),
        offline=bool(kw.get("offline")),
        indexes=Indexes(
            index_url=kw.get("index_url") or DEFAULT_INDEX,
            extra_index_urls=tuple(kw.get("extra_index_url") or ()),
            find_links=tuple(kw.get("find_links") or ()),
        ),
        resolver=kw.get("resolver") or "uv",
        wait=not kw.get("no_wait"),
        cache_from=tuple(kw.get("cache_from") or ()),
        cache_to=tuple(kw.get("cache_to") or ()),
        insecure_registries=tuple(kw.get("insecure_registry") or ()),
        explicit=frozenset(
            name for name, key in _CLI_KEYS.items() if kw.get(key) not in (None, (), "", False)
        ),
    )


# setting name (settings.SETTINGS) -> the click parameter that sets it
_CLI_KEYS = {
    "triton": "triton", "python": "python", "platform": "platform", "torch": "torch",
    "src": "src", "channel": "channels", "python-from": "python_from", "index-url": "index_url",
    "extra-index-url": "extra_index_url", "find-links": "find_links", "resolver": "resolver",
    "cache-from": "cache_from", "cache-to": "cache_to", "insecure-registry": "insecure_registry",
}
