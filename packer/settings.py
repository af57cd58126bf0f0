"""Configuration in one place: the command line > ``[options]`` in the model's tritonpack.toml >
the target already in tritonpack.lock > tritonpack's defaults. ``tritonpack config`` shows
the effective settings and where each came from.

Each setting is declared once, in ``SETTINGS``: the click options (``packer.options``), the
``tritonpack.toml`` keys, the values a lock remembers and ``tritonpack config``'s rows are
all derived from that table, and ``Options`` holds the values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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
    allow_secrets: tuple[str, ...] = ()  # --src files to bundle although they look secret
    recipes: Path | None = None
    channels: tuple[str, ...] = ()
    python_from: str | None = None
    offline: bool = False
    indexes: Indexes = field(default_factory=Indexes)
    resolver: str = "uv"
    wait: bool = True  # wait for another run on the same model (else fail: --no-wait)
    cache_from: tuple[str, ...] = ()  # oci://REGISTRY/REPO remote caches to pull from
    cache_to: tuple[str, ...] = ()  # ... and to push to (packer.caches.remote)
    insecure_registries: tuple[str, ...] = ()  # plain HTTP beyond loopback
    strip: bool = False  # --strip: debug sections out of the wheels' ELF files
    zip_packages: bool = True  # --no-zip-packages: pure-Python distributions stay files
    explicit: frozenset[str] = frozenset()  # settings given on the command line


Group = Literal["target", "source", "lock", "remote"]
Kind = Literal["str", "flag", "int", "dir"]


@dataclass(frozen=True)
class Setting:
    """One thing a user can choose: its name on the command line (``--NAME``) and in
    ``[options]``, the ``Options`` field it fills, and how the CLI shows it."""

    name: str
    field: str  # in Options, or in Options.indexes for the three index settings
    kind: Kind
    group: Group  # the option group of the commands (packer.options) that take it
    help: str
    metavar: str | None = None
    many: bool = False  # repeatable on the command line, a list in [options]
    choices: tuple[str, ...] = ()
    toml: bool = True  # an [options] key and a `tritonpack config` row
    from_lock: bool = False  # a lock remembers it (the target, and what shapes the env)
    envvar: str | None = None
    negates: bool = False  # a flag that sets its field to False (--no-wait -> wait)

    @property
    def param(self) -> str:
        """The keyword click passes the value under."""
        return self.name.replace("-", "_")

    @property
    def two_way(self) -> bool:
        """A flag tritonpack.toml may set (``strip = true``): the command line needs both
        ``--NAME`` and ``--no-NAME`` to override it either way (unset: None)."""
        return self.kind == "flag" and self.toml and not self.negates


def _newest() -> str:
    """The newest release of the built-in table: the default --help states."""
    from .resolve.target import releases

    return releases(load())[-1]


_INDEX_FIELDS = ("index_url", "extra_index_urls", "find_links")

SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("triton", "triton", "str", "target", metavar="RELEASE", from_lock=True,
            help="Triton release to target, e.g. 24.08. Default: [options] triton in "
            "tritonpack.toml, else the release tritonpack.lock was made for, else the newest "
            f"known ({_newest()}; see `tritonpack targets`)."),
    Setting("python", "python", "str", "target", metavar="X.Y", from_lock=True,
            help="Override the release's Python (only with a custom backend stub)."),
    Setting("platform", "platform", "str", "target", choices=tuple(sorted(PLATFORMS)),
            from_lock=True, help="Target platform (default: this machine's)."),
    Setting("torch", "torch", "str", "target", metavar="cpu|cuXYZ|none", from_lock=True,
            help="PyTorch wheel index when torch is required (default: the release's CUDA, "
            "recipes/torch.toml); none: only the indexes you give (a wheelhouse)."),
    Setting("src", "src", "dir", "source", metavar="DIR", many=True, from_lock=True,
            help="A source root holding your own modules (repeatable); they are bundled."),
    Setting("allow-secret", "allow_secrets", "str", "source", metavar="PATH", many=True,
            help="Bundle this --src file although its name or content looks like a secret "
            "(its path as the skipped list shows it, e.g. mypkg/certs/test-key.pem; "
            "repeatable)."),
    Setting("model-version", "version", "int", "source", metavar="N", toml=False,
            help="Model version dir to use (default: the highest holding model.py)."),
    Setting("recipes", "recipes", "dir", "source", metavar="DIR", toml=False,
            help="A recipe dir of your own (triton.toml, imports.toml, torch.toml, "
            "soft.toml, import_table.tsv) that adds to the built-in one."),
    Setting("channel", "channels", "str", "lock", many=True,
            metavar="URL|NAME", from_lock=True,
            help="Conda channel (repeatable; default conda-forge; file:// and mirrors work)."),
    Setting("python-from", "python_from", "str", "lock", metavar="PATH|auto",
            help="Make the env's Python from a shared-library CPython install "
            "(pyenv --enable-shared, uv python install) instead of a channel."),
    Setting("offline", "offline", "flag", "lock", toml=False,
            help="Never touch the network: packages from tritonpack's cache and local "
            "--find-links only, no remote cache; what is missing is named "
            "(implies --python-from auto)."),
    Setting("index-url", "index_url", "str", "lock", metavar="URL", from_lock=True,
            help=f"PyPI index to resolve against (default: {DEFAULT_INDEX})."),
    Setting("extra-index-url", "extra_index_urls", "str", "lock", many=True,
            metavar="URL", from_lock=True,
            help="Extra PyPI index."),
    Setting("find-links", "find_links", "str", "lock", many=True,
            metavar="DIR|URL", from_lock=True,
            help="Also look for wheels here (e.g. a local wheelhouse)."),
    Setting("strip", "strip", "flag", "lock", from_lock=True,
            help="Take the debug sections out of the ELF files the wheels installed (binutils' "
            "strip; signed wheels are left alone). The lock remembers it; --no-strip turns "
            "off a tritonpack.toml strip = true or the lock's choice."),
    Setting("zip-packages", "zip_packages", "flag", "lock", from_lock=True,
            help="Ship the pure-Python distributions in one zip inside the archive (the "
            "default: fewer files to unpack at each server start); --no-zip-packages keeps "
            "them as files. The lock remembers --no-zip-packages."),
    Setting("resolver", "resolver", "str", "lock", choices=tuple(sorted(RESOLVERS)),
            help="PyPI resolver (default: uv)."),
    Setting("no-wait", "wait", "flag", "lock", toml=False, negates=True,
            help="Fail (exit 14) instead of waiting when another run holds this model."),
    Setting("cache-from", "cache_from", "str", "remote", many=True,
            metavar="oci://REGISTRY/REPO",
            envvar="TRITONPACK_CACHE_FROM",
            help="Before building a lock, pull its packed environment from this OCI "
            "registry if it is there (repeatable)."),
    Setting("cache-to", "cache_to", "str", "remote", many=True,
            metavar="oci://REGISTRY/REPO",
            envvar="TRITONPACK_CACHE_TO",
            help="After packing, push the environment there for other machines "
            "(best-effort: a failed push is a warning)."),
    Setting("insecure-registry", "insecure_registries", "str", "remote", many=True,
            metavar="HOST[:PORT]",
            help="Talk plain HTTP to this registry (loopback registries always may)."),
)}
CONFIGURABLE = tuple(name for name, s in SETTINGS.items() if s.toml)
"""The ``[options]`` keys of tritonpack.toml, in ``tritonpack config``'s order."""


def _given(setting: Setting, value: Any) -> bool:
    """Given on the command line: not absent, not an unset one-way flag, not an empty repeat
    (``0``, as in ``--model-version 0``, is given; so is ``--no-strip``'s False)."""
    if isinstance(value, str | tuple | list):
        return bool(value)
    return value is not None and (setting.two_way or value is not False)


def from_command_line(values: dict[str, Any]) -> Options:
    """Options from the values click parsed, keyed by ``Setting.param`` (absent or empty:
    the default); ``explicit`` names the configurable settings the command line gave."""
    opts = Options()
    for s in SETTINGS.values():
        value: Any = values.get(s.param)
        if not _given(s, value):
            continue
        if s.kind == "flag":
            value = bool(value) if s.two_way else not s.negates
        elif s.many:
            value = tuple(value)
        opts = _set(opts, s, value)
    return dataclasses.replace(opts, explicit=frozenset(
        name for name in CONFIGURABLE if _given(SETTINGS[name], values.get(SETTINGS[name].param))))


def _get(opts: Options, setting: Setting) -> Any:
    if setting.field in _INDEX_FIELDS:
        return getattr(opts.indexes, setting.field)
    return getattr(opts, setting.field)


def _set(opts: Options, setting: Setting, value: Any) -> Options:
    if setting.field in _INDEX_FIELDS:
        return dataclasses.replace(opts, indexes=dataclasses.replace(
            opts.indexes, **{setting.field: value}))
    return dataclasses.replace(opts, **{setting.field: value})


def _coerce(name: str, value: Any, model_dir: Path, where: Path) -> Any:
    setting = SETTINGS[name]
    if setting.many:
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
    if setting.kind == "flag":
        if not isinstance(value, bool):
            raise ModelError(f"{where}: [options] {name} must be true or false")
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        meant = (f"{value:.2f}" if name in ("triton", "python") and isinstance(value, float)
                 else str(value))  # 24.1 was 24.10, 3.1 was 3.10
        raise ModelError(  # TOML reads triton = 24.10 as the float 24.1
            f"{where}: [options] {name} is the number {value!r}, not a string: quote it "
            f'({name} = "{meant}")')
    if not isinstance(value, str):
        raise ModelError(f"{where}: [options] {name} must be a string")
    choices = setting.choices
    if choices and value not in choices:
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
        "strip": lock.inputs.get("pack_options", {}).get("strip") is True,
    }
    remembered = {k: v for k, v in {**values, **shaping}.items() if v}
    if lock.inputs.get("pack_options", {}).get("zip_packages") is False:
        remembered["zip-packages"] = False  # a choice whose value is False
    return remembered


def effective(opts: Options, model_dir: Path) -> tuple[Options, dict[str, str]]:
    """The options a run uses, and for each setting the place its value came from."""
    declared = load_declared(model_dir)
    options = dict(declared.options)
    where = declared.path or model_dir / "tritonpack.toml"
    unknown = sorted(set(options) - set(CONFIGURABLE))
    if unknown:
        raise ModelError(f"{where}: unknown option {unknown[0]!r} in [options]",
                         hint=f"known: {', '.join(sorted(CONFIGURABLE))}")
    from_lock = _lock_target(model_dir)
    sources: dict[str, str] = {}
    for name in CONFIGURABLE:
        setting = SETTINGS[name]
        if name in opts.explicit:
            sources[name] = "command line"
        elif name in options:
            opts = _set(opts, setting, _coerce(name, options[name], model_dir, where))
            sources[name] = "tritonpack.toml"
        elif setting.from_lock and name in from_lock:
            opts = _set(opts, setting, from_lock[name])
            sources[name] = LOCK_NAME
        else:
            sources[name] = "default"
    return opts, sources


def describe(opts: Options, sources: dict[str, str]) -> list[tuple[str, str, str]]:
    rows = []
    for name in CONFIGURABLE:
        value = _get(opts, SETTINGS[name])
        shown = ", ".join(map(str, value)) if isinstance(value, tuple) else (value or "")
        if SETTINGS[name].kind == "flag":  # a word, not True's "1" (JSON: a string, as others)
            shown = "true" if value else ("false" if sources[name] != "default" else "")
        if name == "triton" and not shown:
            shown = f"{sorted(load().triton)[-1]} (newest)"
        if name == "python" and not shown:  # what the release's stub needs: the default
            release = opts.triton or sorted(load().triton)[-1]
            stub = load().triton.get(release, {}).get("python")
            shown = f"{stub} (Triton {release}'s stub)" if stub else ""
        if name == "index-url" and not shown:
            shown = DEFAULT_INDEX
        rows.append((name, shown, sources[name]))  # "" when unset: text shows '-', JSON null
    return rows


__all__ = ["CONFIGURABLE", "SETTINGS", "Indexes", "Options", "Setting", "describe", "effective",
           "from_command_line"]
