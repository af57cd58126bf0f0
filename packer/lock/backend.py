"""The PyPI backends: one interface, ``compile`` (resolve) and ``install``, for uv and pip-tools.

Every uv and pip command line tritonpack runs is built here, as pypa/build's ``_EnvBackend``
keeps its pip and uv environments behind one class: the lock stage compiles a hashed
requirements file, the build stage installs one. The build stage installs with uv whatever
resolved the lock (hard links from uv's cache: 0.29 s against pip's 18.8 s for the torch
model); pip-tools' ``install`` serves a pip-only installer through the same door.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..core import deadlines, network, proc
from ..core.cachehome import cache_dir
from ..core.errors import (
    BuildError,
    ProcessError,
    ProcessTimeout,
    ResolveError,
    TritonPackError,
)
from ..core.fsguard import not_regular
from ..core.redact import restore, strip
from ..core.reproducible import SOURCE_DATE_EPOCH
from ..core.version import install_hint
from ..resolve.target import Target, host_platform
from . import wheelhouse
from .pychannel import find_python

DEFAULT_INDEX = "https://pypi.org/simple"
# What an sdist build's CC and CXX name: no such program, so a compile fails with this name in it.
NO_COMPILER = "tritonpack-no-compiler"
# sdists that set no timestamps get this one (1980-01-01, the zip format's epoch)


# What the build's environment keeps of tritonpack's own: where programs are, the locale, and
# how to reach an index (proxies, CA certificates, uv's netrc). Nothing else: no HOME, no
# TRITONPACK_CACHE or registry credentials, no PIP_*/UV_*/XDG_* settings.
_BUILD_KEEPS = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR",
                "NETRC", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
                "https_proxy", "all_proxy", "no_proxy")


def build_env(home: Path) -> dict[str, str]:
    """The whole environment of an sdist's build: ``home`` (a throwaway directory) as HOME
    and TMPDIR, no compiler, a fixed SOURCE_DATE_EPOCH, and of the caller's environment only
    ``_BUILD_KEEPS``. Not a sandbox (the build runs as the user): it keeps tritonpack's
    settings and secrets out of the build's hands, and its HOME off the user's."""
    env = {key: os.environ[key] for key in _BUILD_KEEPS if key in os.environ}
    netrc = Path.home() / ".netrc"  # uv's credentials for an index, where HOME put them
    if "NETRC" not in env and netrc.is_file():
        env["NETRC"] = str(netrc)
    env.update({"HOME": str(home), "TMPDIR": str(home), "PYTHONNOUSERSITE": "1",
                "PIP_CONFIG_FILE": os.devnull, "UV_NO_CONFIG": "1", "CC": NO_COMPILER,
                "CXX": NO_COMPILER, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH})
    return env


@dataclass(frozen=True)
class Indexes:
    index_url: str = DEFAULT_INDEX
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()

    def args(self) -> list[str]:
        out = ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            out += ["--extra-index-url", url]
        for link in self.find_links:
            out += ["--find-links", link]
        return out

    def as_dict(self) -> dict[str, object]:
        """As a lock records them: without credentials (``packer.core.redact.strip``)."""
        return {"index_url": strip(self.index_url),
                "extra_index_urls": [strip(u) for u in self.extra_index_urls],
                "find_links": [strip(u) for u in self.find_links]}

    def urls(self) -> tuple[str, ...]:
        return (self.index_url, *self.extra_index_urls, *self.find_links)

    def with_credentials(self, given: tuple[str, ...]) -> Indexes:
        """A lock's indexes with the credentials of the URLs the user gave for their hosts."""
        return Indexes(restore(self.index_url, given),
                       tuple(restore(u, given) for u in self.extra_index_urls),
                       tuple(restore(u, given) for u in self.find_links))

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Indexes:
        """The lock's ``inputs.indexes`` table back into Indexes."""
        extra = data.get("extra_index_urls", [])
        links = data.get("find_links", [])
        return cls(str(data.get("index_url", DEFAULT_INDEX)),
                   tuple(str(u) for u in extra) if isinstance(extra, list) else (),
                   tuple(str(u) for u in links) if isinstance(links, list) else ())


_PACKAGE_FILES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar")


def check_find_links(indexes: Indexes, error: type[TritonPackError]) -> None:
    """Refuse a package file in a --find-links directory that is not a regular file: uv (and
    tritonpack's own sdist lookup) would open a FIFO there and wait for a writer forever."""
    for link in indexes.find_links:
        if "://" in link and not link.startswith("file://"):
            continue
        folder = Path(link.removeprefix("file://"))
        try:
            entries = sorted(folder.iterdir()) if folder.is_dir() else []
        except OSError:
            continue
        for path in entries:
            kind = not_regular(path) if path.name.endswith(_PACKAGE_FILES) else None
            if kind is not None and kind != "a directory":
                raise error(f"--find-links {link}: {path.name} is {kind}, not a package file",
                            hint="tritonpack and uv read the package files there: remove it, "
                                 "or point --find-links elsewhere")


class Backend(Protocol):
    """A resolver and installer of hashed PyPI requirements."""

    name: str

    def compile(self, requirements: Sequence[str], target: Target, indexes: Indexes,
                python_from: str = "auto", from_source: Sequence[str] = (),
                build_tools: bool = False, prefer: Prefer = None) -> str:
        """A requirements file with hashes, resolved for ``target`` (``python_from``: where
        a backend that runs in the target's Python finds it, as ``--python-from``), wheels
        only except for the distributions named in ``from_source`` (built from their sdist).
        ``build_tools``: an sdist's build requirements, where setuptools and pip are kept (pip-tools
        leaves them out of a requirements file unless told). ``prefer``: the pins to keep
        (``name==version`` lines, as the resolver's earlier output) and the names to upgrade
        anyway (``lock --upgrade-package``)."""
        ...

    def install(self, requirements: Path, python: Path, indexes: Indexes) -> None:
        """Install the hashed, pinned ``requirements`` file into the environment of
        ``python``: wheels only, no dependencies beyond the file, every hash checked."""
        ...


def _source_env(tmp: str, from_source: Sequence[str]) -> tuple[dict[str, str] | None,
                                                              Path | None]:
    """The resolver's environment and working directory: its usual ones, but ``build_env``'s
    when it may build an sdist for its metadata (that runs the sdist's setup.py)."""
    if not from_source:
        return None, None
    home = Path(tmp) / "home"
    home.mkdir()
    return build_env(home), home


Prefer = tuple[tuple[str, ...], tuple[str, ...]] | None  # (kept pins, names to upgrade)


def _requirements_in(tmp: str, requirements: Sequence[str],
                     prefer: Prefer = None) -> tuple[Path, Path, list[str]]:
    """requirements.in, the output file and the arguments that upgrade only some names: both
    resolvers keep what an existing output file pins unless told to upgrade it, so the kept
    pins are written there first."""
    req_in = Path(tmp) / "requirements.in"
    req_in.write_text("".join(f"{r}\n" for r in requirements), encoding="utf-8")
    out = Path(tmp) / "requirements.txt"
    if prefer is None:
        return req_in, out, []
    kept, upgrade = prefer
    out.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    return req_in, out, _each("--upgrade-package", upgrade)


class UvBackend:
    """uv resolves for a Python version and platform it does not need to have installed."""

    name = "uv"

    def compile(self, requirements: Sequence[str], target: Target, indexes: Indexes,
                python_from: str = "auto", from_source: Sequence[str] = (),
                build_tools: bool = False, prefer: Prefer = None, annotate: bool = False) -> str:
        """``python_from`` is not needed: uv resolves for a version without its interpreter,
        and keeps setuptools and pip in its output (``build_tools`` changes nothing).
        ``annotate``: with uv's ``# via`` lines (``tritonpack why``)."""
        check_find_links(indexes, ResolveError)
        with tempfile.TemporaryDirectory(prefix="tritonpack-uv-") as tmp:
            req_in, out, upgrade = _requirements_in(tmp, requirements, prefer)
            env, cwd = _source_env(tmp, from_source)
            argv: list[str | Path] = [
                uv_bin(), "pip", "compile", req_in, "--quiet",
                "--no-config", "--no-python-downloads", "--python", sys.executable,
                "--no-header", *([] if annotate else ["--no-annotate"]),
                "--python-version", target.python, "--python-platform", target.pypi_platform,
                "--only-binary", ":all:", *_each("--no-binary", from_source),
                "--cache-dir", cache_dir("uv"), *network.uv_args(), *upgrade,
            ]
            ends = time.monotonic() + deadlines.RESOLVE_UV  # both passes, one deadline
            dirs = wheelhouse.local_dirs(indexes)
            served = _first_pass(argv, requirements, Path(tmp), out, indexes, dirs,
                                 (env, cwd, ends), from_source) if dirs else None
            argv += ["-o", out, "--generate-hashes"]
            if served is None:
                proc.run([*argv, *indexes.args()], env=env, cwd=cwd, timeout=_left(ends))
            else:
                _second_pass([*argv, *served], env, cwd, ends)
            return out.read_text(encoding="utf-8")

    def install(self, requirements: Path, python: Path, indexes: Indexes) -> None:
        check_find_links(indexes, BuildError)
        proc.run([
            uv_bin(), "pip", "install", "--no-config", "--no-python-downloads",
            "--quiet", "--python", python, "--require-hashes", "--no-deps",
            # hard links from uv's cache (measured for the torch model, warm cache: 0.29 s
            # against 3.0 s copying and 18.8 s with pip). Nothing later writes into an installed
            # file: bundling refuses existing names, conda-pack and pruning write or unlink
            # their own copies, --format dir is a real copy. uv copies where it cannot link.
            "--only-binary", ":all:", "--link-mode", "hardlink", "--cache-dir", cache_dir("uv"),
            *network.uv_args(), *indexes.args(), "-r", requirements,
        ], timeout=deadlines.INSTALL)


    def build(self, sdist: Path, python: Path, out: Path, indexes: Indexes,
              env: dict[str, str], constraints: Path, cwd: Path | None = None) -> None:
        """Build ``sdist`` into a wheel in ``out`` with ``python``, in an isolated build
        environment whose build requirements come from ``indexes``, pinned by
        ``constraints`` (a hashed requirements file, maybe empty): uv checks each hash, and
        ``--require-hashes`` refuses a tool the file does not pin (one the backend asks for at
        build time), so nothing unpinned enters the build. ``env`` is the build's whole
        environment (``build_env``: no compiler, a throwaway HOME, nothing of
        tritonpack's settings), ``cwd`` its working directory.
        Not quiet: the backend's own output says what a failed build needed."""
        check_find_links(indexes, BuildError)
        proc.run([uv_bin(), "build", "--wheel", "--no-config",
                  "--no-python-downloads", "--python", python, "--out-dir", out,
                  "--build-constraint", constraints, "--require-hashes",
                  "--cache-dir", cache_dir("uv"), *network.uv_args(), *indexes.args(), sdist],
                 env=env, cwd=cwd, timeout=deadlines.BUILD_SDIST)


def _first_pass(argv: list[str | Path], requirements: Sequence[str], tmp: Path, out: Path,
                indexes: Indexes, dirs: tuple[Path, ...],
                how: tuple[dict[str, str] | None, Path | None, float],
                from_source: Sequence[str]) -> list[str | Path] | None:
    """uv's resolution without hashes, which names where each pin came from; when it took
    wheels from the local ``--find-links`` directories ``dirs``, the arguments of a second
    pass that gets the same pins with hashes without unpacking those wheels (a local index
    of them, with their sha256: ``packer.lock.wheelhouse``); else None."""
    first = tmp / "first.txt"
    if out.is_file():  # the pins ``prefer`` keeps
        shutil.copyfile(out, first)
    env, cwd, ends = how
    with wheelhouse.Hasher(wheelhouse.likely(requirements, dirs)) as hasher:
        proc.run([*argv, "-o", first, "--emit-index-annotation", *indexes.args()], env=env,
                 cwd=cwd, timeout=_left(ends))
        found = wheelhouse.plan(first.read_text(encoding="utf-8"), indexes, dirs, from_source)
        if found is None:
            return None
        pins, wheels = found
        local = wheelhouse.write_index(tmp / "wheelhouse", wheels, hasher)
    held = tmp / "constraints.txt"
    held.write_text(wheelhouse.constraints(pins), encoding="utf-8")
    kept = [u for u in indexes.find_links if not any(
        wheelhouse.same_dir(u, d) for d in dirs)]
    return ["--constraint", held, "--index-url", indexes.index_url,
            *_each("--extra-index-url", (local, *indexes.extra_index_urls)),
            *_each("--find-links", kept)]


def _left(ends: float) -> float:
    return max(1.0, ends - time.monotonic())


def _second_pass(argv: list[str | Path], env: dict[str, str] | None, cwd: Path | None,
                 ends: float) -> None:
    """The hashed pass, from uv's cache alone (``--offline``): the first pass has just read
    every page and metadata it needs (0.07 s against 0.2-0.4 s asking the index again); on
    the network when it missed something (an index that publishes no hashes, whose files uv
    downloads to hash them)."""
    if network.offline():
        proc.run(argv, env=env, cwd=cwd, timeout=_left(ends))
        return
    try:
        proc.run([*argv, "--offline"], env=env, cwd=cwd, timeout=_left(ends))
    except ProcessTimeout:
        raise
    except ProcessError:
        proc.run(argv, env=env, cwd=cwd, timeout=_left(ends))


def uv_bin() -> str:
    """The uv binary installed with tritonpack (its wheel's own, found by ``uv.find_uv_bin``:
    the version the ``uv`` pin in pyproject.toml allows, never one on PATH)."""
    from uv import find_uv_bin

    return find_uv_bin()


def _pip_tools_version() -> str:
    """The installed pip-tools' version; refused, naming the extra, when it is not there (a
    distribution without its import package counts as not there)."""
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    try:
        if importlib.util.find_spec("piptools") is not None:
            return version("pip-tools")
    except (PackageNotFoundError, ValueError):
        pass
    raise ResolveError("--resolver pip-tools needs pip-tools, which is not installed",
                       hint=install_hint("pip-tools") + " (or use the default --resolver uv)")


def _each(flag: str, names: Sequence[str]) -> list[str]:
    return [part for name in names for part in (flag, name)]


class PipToolsBackend:
    """pip-compile resolves for the interpreter it runs on and for this machine's platform:
    it runs in the target's Python (the local CPython of that version, the one a lock without
    a channel packs: ``pychannel.find_python``), in a cached venv holding the same pip-tools
    as tritonpack's own; tritonpack's own interpreter when its version is the target's."""

    name = "pip-tools"

    def __init__(self) -> None:
        if network.offline():  # pip has no cache-only mode: it would ask the index
            raise ResolveError("--resolver pip-tools cannot resolve --offline: pip asks the "
                               "package index for every requirement",
                               hint="use the default --resolver uv, which reads its cache")
        self.version = _pip_tools_version()  # refused before any work when not installed

    def compile(self, requirements: Sequence[str], target: Target, indexes: Indexes,
                python_from: str = "auto", from_source: Sequence[str] = (),
                build_tools: bool = False, prefer: Prefer = None) -> str:
        here = host_platform()
        if target.platform != here:
            raise ResolveError(
                f"--resolver pip-tools resolves only for this machine's platform ({here}), "
                f"not {target.platform}: use --resolver uv",
            )
        check_find_links(indexes, ResolveError)
        python = _pip_tools_python(target.python, python_from, self.version)
        no_binary = "".join(f" --no-binary={name}" for name in from_source)
        with tempfile.TemporaryDirectory(prefix="tritonpack-piptools-") as tmp:
            req_in, out, upgrade = _requirements_in(tmp, requirements, prefer)
            env, cwd = _source_env(tmp, from_source)
            argv: list[str | Path] = [
                python, "-m", "piptools", "compile", req_in, "--output-file", out,
                "--quiet", "--generate-hashes", "--no-header", "--no-annotate",
                "--no-emit-index-url", "--strip-extras", "--cache-dir", cache_dir("pip-tools"),
                *(["--allow-unsafe"] if build_tools else []),
                "--pip-args", f"--only-binary=:all:{no_binary} --no-cache-dir", *indexes.args(),
                *upgrade,
            ]
            proc.run(argv, env=env, cwd=cwd, timeout=deadlines.RESOLVE_PIP_COMPILE)
            return out.read_text(encoding="utf-8")

    def install(self, requirements: Path, python: Path, indexes: Indexes) -> None:
        check_find_links(indexes, BuildError)
        proc.run([
            sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
            "--disable-pip-version-check", "--no-input", "--require-hashes", "--no-deps",
            "--only-binary=:all:", "--no-cache-dir", *indexes.args(), "-r", requirements,
        ], timeout=deadlines.INSTALL)


BACKENDS: dict[str, type[UvBackend] | type[PipToolsBackend]] = {
    "uv": UvBackend,
    "pip-tools": PipToolsBackend,
}


def target_interpreter(minor: str, python_from: str) -> Path:
    """An interpreter of the target's Python version: tritonpack's own when it is one (and no
    --python-from names another), else the local CPython ``find_python`` picks."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == minor and python_from == "auto":
        return Path(sys.executable)
    return find_python(minor, python_from).prefix / "bin" / f"python{minor}"


def _pip_tools_python(minor: str, python_from: str, pip_tools: str) -> Path:
    """An interpreter of the target's Python version with pip-tools ``pip_tools`` in it."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == minor and python_from == "auto":
        return Path(sys.executable)
    install = find_python(minor, python_from)
    venv = cache_dir("pip-tools") / f"python-{install.version}-pip-tools-{pip_tools}"
    python = venv / "bin" / "python"
    if python.exists():
        return python
    tmp = Path(tempfile.mkdtemp(prefix=f".{venv.name}.", dir=venv.parent))
    try:
        proc.run([uv_bin(), "venv", "--quiet", "--no-config",
                  "--no-python-downloads", "--python", install.prefix / "bin" / f"python{minor}",
                  tmp], timeout=deadlines.TOOL_VENV)
        proc.run([uv_bin(), "pip", "install", "--quiet", "--no-config",
                  "--python", tmp / "bin" / "python", f"pip-tools=={pip_tools}",
                  "--cache-dir", cache_dir("uv"), *network.uv_args()], timeout=deadlines.TOOL_INSTALL)
        with contextlib.suppress(FileExistsError, OSError):
            tmp.rename(venv)  # atomic; a twin run that got there first keeps its venv
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return python
