"""Configuration in one place: the command line > ``[options]`` in the model's tritonpack.toml >
the target already in tritonpack.lock > tritonpack's defaults. ``tritonpack config`` shows
the effective settings and where each came from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .core.errors import LockError, ModelError, ScanError
from .lock.lockfile import LOCK_NAME, read_lock
from .lock.pypi import DEFAULT_INDEX, RESOLVERS, Indexes
from .resolve.recipebook import load
from .resolve.target import PLATFORMS
from .scan.declared import load_declared


@dataclass(frozen=True)
class Options:
    """Everything a user can choose; the CLI fills it, Python callers may too."""

    triton: str | None = None
    python: str | None = None
    platform: str | None = None
    torch: str | None = None
    version: int | None = None
    src: tuple[Path, ...] = ()
    recipes: Path | None = None
    channels: tuple[str, ...] = ()
    python_from: str | None = None
    offline: bool = False
    indexes: Indexes = field(default_factory=Indexes)
    resolver: str = "uv"
    wait: bool = True  # wait for another run on the same model (else fail: --no-wait)
    cache_from: tuple[str, ...] = ()  # oci://REGISTRY/REPO remote caches to pull from
    cache_to: tuple[str, ...] = ()  # ... and to push to (packer.pack.remote)
    insecure_registries: tuple[str, ...] = ()  # plain HTTP beyond loopback
    explicit: frozenset[str] = frozenset()  # settings given on the command line


# setting -> (Options field, kind); the names are the command-line option names
SETTINGS: dict[str, tuple[str, type]] = {
    "triton": ("triton", str), "python": ("python", str), "platform": ("platform", str),
    "torch": ("torch", str), "src": ("src", list), "channel": ("channels", list),
    "python-from": ("python_from", str), "index-url": ("index_url", str),
    "extra-index-url": ("extra_index_urls", list), "find-links": ("find_links", list),
    "resolver": ("resolver", str), "cache-from": ("cache_from", list),
    "cache-to": ("cache_to", list), "insecure-registry": ("insecure_registries", list),
}
_FROM_LOCK = ("triton", "python", "platform", "torch", "src", "channel", "index-url",
              "extra-index-url", "find-links")
_CHOICES = {"resolver": frozenset(RESOLVERS), "platform": frozenset(PLATFORMS)}


def _current(opts: Options, name: str) -> Any:
    field = SETTINGS[name][0]
    if field in ("index_url", "extra_index_urls", "find_links"):
        return getattr(opts.indexes, field)
    return getattr(opts, field)


def _with(opts: Options, name: str, value: Any) -> Options:
    field = SETTINGS[name][0]
    if field in ("index_url", "extra_index_urls", "find_links"):
        return dataclasses.replace(opts, indexes=dataclasses.replace(opts.indexes, **{field: value}))
    return dataclasses.replace(opts, **{field: value})


def _coerce(name: str, value: Any, model_dir: Path, where: Path) -> Any:
    kind = SETTINGS[name][1]
    if kind is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ModelError(f"{where}: [options] {name} must be a string or a list of strings")
        if name == "src":
            roots = tuple((model_dir / v).resolve() for v in value)
            missing = [v for v, root in zip(value, roots, strict=True) if not root.is_dir()]
            if missing:
                raise ScanError(f"{where}: [options] src {missing[0]!r}: no such directory "
                                "(relative to the model dir)")
            return roots
        return tuple(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        meant = (f"{value:.2f}" if name in ("triton", "python") and isinstance(value, float)
                 else str(value))  # 24.1 was 24.10, 3.1 was 3.10
        raise ModelError(  # TOML reads triton = 24.10 as the float 24.1
            f"{where}: [options] {name} is the number {value!r}, not a string: quote it "
            f'({name} = "{meant}")')
    if not isinstance(value, str):
        raise ModelError(f"{where}: [options] {name} must be a string")
    choices = _CHOICES.get(name)
    if choices is not None and value not in choices:
        raise ModelError(f"{where}: [options] {name} = {value!r} is not one of "
                         f"{', '.join(sorted(choices))}")
    return value


def _lock_target(model_dir: Path) -> dict[str, Any]:
    path = model_dir / LOCK_NAME
    if not path.is_file():
        return {}
    try:
        lock = read_lock(path)
    except LockError:
        return {}
    target = dict(lock.target)
    row = load().triton.get(target.get("release", ""), {})
    values: dict[str, Any] = {"triton": target.get("release", ""), "platform": target.get("platform", ""),
              "torch": target.get("torch", "")}
    if target.get("python") and target.get("python") != str(row.get("python", "")):
        values["python"] = target["python"]  # the lock was made for a custom stub
    shaping: dict[str, Any] = {  # options that shape the environment, remembered
        "src": tuple((model_dir / s).resolve() for s in lock.inputs.get("src", [])),
        "channel": tuple(lock.inputs.get("channels", [])),
        **{k: tuple(v) if isinstance(v, list) else v
           for k, v in lock.inputs.get("index_options", {}).items()},
    }
    return {k: v for k, v in {**values, **shaping}.items() if v}


def effective(opts: Options, model_dir: Path) -> tuple[Options, dict[str, str]]:
    """The options a run uses, and for each setting the place its value came from."""
    declared = load_declared(model_dir)
    options = dict(declared.options)
    where = declared.path or model_dir / "tritonpack.toml"
    unknown = sorted(set(options) - set(SETTINGS))
    if unknown:
        raise ModelError(f"{where}: unknown option {unknown[0]!r} in [options]",
                         hint=f"known: {', '.join(sorted(SETTINGS))}")
    from_lock = _lock_target(model_dir)
    sources: dict[str, str] = {}
    for name in SETTINGS:
        if name in opts.explicit:
            sources[name] = "command line"
        elif name in options:
            opts = _with(opts, name, _coerce(name, options[name], model_dir, where))
            sources[name] = "tritonpack.toml"
        elif name in _FROM_LOCK and name in from_lock:
            opts = _with(opts, name, from_lock[name])
            sources[name] = LOCK_NAME
        else:
            sources[name] = "default"
    return opts, sources


def describe(opts: Options, sources: dict[str, str]) -> list[tuple[str, str, str]]:
    rows = []
    for name in SETTINGS:
        value = _current(opts, name)
        shown = ", ".join(map(str, value)) if isinstance(value, tuple) else (value or "")
        if name == "triton" and not shown:
            shown = f"{sorted(load().triton)[-1]} (newest)"
        if name == "index-url" and not shown:
            shown = DEFAULT_INDEX
        rows.append((name, shown, sources[name]))  # "" when unset: text shows '-', JSON null
    return rows


__all__ = ["SETTINGS", "Indexes", "describe", "effective"]
