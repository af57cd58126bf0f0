"""PyPI resolvers behind one small interface: uv (default) and pip-tools.

Both turn requirement lines into a pip-tools-style requirements file with
``--hash`` lines for the target Python and platform. tritonpack parses that
file into pins; the lock stores the pins, and can export the file again.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Protocol

from packaging.utils import canonicalize_name

from ..core import proc
from ..core.cache import cache_dir
from ..core.errors import ProcessError, ResolveError
from ..resolve.target import Target, host_platform
from .pychannel import find_python

DEFAULT_INDEX = "https://pypi.org/simple"


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
        return {"index_url": self.index_url, "extra_index_urls": list(self.extra_index_urls),
                "find_links": list(self.find_links)}


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: tuple[str, ...] = field(default=())

    def line(self) -> str:
        return f"{self.name}=={self.version}"


class Resolver(Protocol):
    name: str

    def compile(self, requirements: Sequence[str], target: Target, indexes: Indexes,
                python_from: str = "auto") -> str:
        """A requirements file with hashes, resolved for ``target`` (``python_from``: where
        a resolver that runs in the target's Python finds it, as ``--python-from``)."""
        ...


_MISSING = [
    re.compile(r"Because (?:there is no version of )?([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])? was not found"),
    re.compile(r"Because there is no version of ([A-Za-z0-9_.\-]+)"),
    re.compile(r"No matching distribution found for ([A-Za-z0-9_.\-]+)"),
    re.compile(r"Could not find a version that (?:satisfies|matches) the requirement ([A-Za-z0-9_.\-]+)"),
    re.compile(r"([A-Za-z0-9_.\-]+) was not found in the package registry"),
]
_UNREACHABLE = re.compile(
    r"(Failed to fetch|error sending request|Connection refused|connection error|"
    r"Could not connect|Failed to establish a new connection|Name or service not known|dns error)",
    re.I,
)


_PYTHON_TOO_OLD = re.compile(
    r"(requested Python version \(([^)]*)\) does not satisfy Python([^ ]+)|"
    r"Requires-Python ([^ ]+))"
)


@dataclass(frozen=True)
class ResolveFailure:
    """What a failed resolution was about, read from the resolver's output."""

    missing: tuple[str, ...]
    unreachable: bool
    output: str
    python: bool = False  # a requirement needs another Python than the target's


def diagnose(output: str) -> ResolveFailure:
    missing: list[str] = []
    for pattern in _MISSING:
        missing += [canonicalize_name(m) for m in pattern.findall(output)]
    unreachable = bool(_UNREACHABLE.search(output)) and not missing
    python = bool(_PYTHON_TOO_OLD.search(output)) or "requires-python" in output.lower()
    return ResolveFailure(tuple(dict.fromkeys(missing)), unreachable, output, python)


class UvResolver:
    """uv resolves for a Python version and platform it does not need to have installed."""

    name = "uv"

    def compile(self, requirements: Sequence[str], target: Target, indexes: Indexes,
                python_from: str = "auto") -> str:
        """``python_from`` is not needed: uv resolves for a version without its interpreter."""
        with tempfile.TemporaryDirectory(prefix="tritonpack-uv-") as tmp:
            req_in = Path(tmp) / "requirements.in"
            out = Path(tmp) / "requirements.txt"
            req_in.write_text("".join(f"{r}\n" for r in requirements), encoding="utf-8")
            argv: list[str | Path] = [
                sys.executable, "-m", "uv", "pip", "compile", req_in, "-o", out, "--quiet",
                "--no-config", "--no-python-downloads", "--python", sys.executable,
                "--generate-hashes", "--no-header", "--no-annotate",
                "--python-version", target.python, "--python-platform", target.pypi_platform,
                "--only-binary", ":all:",
                "--cache-dir", cache_dir("uv"), *indexes.args(),
            ]
            proc.run(argv, timeout=900)
            return out.read_text(encoding="utf-8")


class PipToolsResolver:
    """pip-compile resolves for the interpreter it runs on and for this machine's platform:
    it runs in the target's Python (the local CPython of that version, the one a lock without
    a channel packs: ``pychannel.find_python``), in a cached venv holding the same pip-tools
    as tritonpack's own; tritonpack's own interpreter when its version is the target's."""

    name = "pip-tools"

    def compile(self, requirements: Sequence[str], target: Target, indexes: Indexes,
                python_from: str = "auto") -> str:
        here = host_platform()
        if target.platform != here:
            raise ResolveError(
                f"--resolver pip-tools resolves only for this machine's platform ({here}), "
                f"not {target.platform}: use --resolver uv",
            )
        python = _target_python(target.python, python_from)
        with tempfile.TemporaryDirectory(prefix="tritonpack-piptools-") as tmp:
            req_in = Path(tmp) / "requirements.in"
            out = Path(tmp) / "requirements.txt"
            req_in.write_text("".join(f"{r}\n" for r in requirements), encoding="utf-8")
            argv: list[str | Path] = [
                python, "-m", "piptools", "compile", req_in, "--output-file", out,
                "--quiet", "--generate-hashes", "--no-header", "--no-annotate",
                "--no-emit-index-url", "--strip-extras", "--cache-dir", cache_dir("pip-tools"),
                "--pip-args", "--only-binary=:all: --no-cache-dir", *indexes.args(),
            ]
            proc.run(argv, timeout=1800)
            return out.read_text(encoding="utf-8")


def _target_python(minor: str, python_from: str) -> str | Path:
    """An interpreter of the target's Python version with pip-tools in it."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == minor and python_from == "auto":
        return sys.executable
    install = find_python(minor, python_from)
    pip_tools = version("pip-tools")
    venv = cache_dir("pip-tools") / f"python-{install.version}-pip-tools-{pip_tools}"
    python = venv / "bin" / "python"
    if python.exists():
        return python
    tmp = Path(tempfile.mkdtemp(prefix=f".{venv.name}.", dir=venv.parent))
    try:
        proc.run([sys.executable, "-m", "uv", "venv", "--quiet", "--no-config",
                  "--no-python-downloads", "--python", install.prefix / "bin" / f"python{minor}",
                  tmp], timeout=300)
        proc.run([sys.executable, "-m", "uv", "pip", "install", "--quiet", "--no-config",
                  "--python", tmp / "bin" / "python", f"pip-tools=={pip_tools}",
                  "--cache-dir", cache_dir("uv")], timeout=900)
        with contextlib.suppress(FileExistsError, OSError):
            tmp.rename(venv)  # atomic; a twin run that got there first keeps its venv
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return python


RESOLVERS: dict[str, type[UvResolver] | type[PipToolsResolver]] = {
    "uv": UvResolver,
    "pip-tools": PipToolsResolver,
}


def parse_requirements(text: str) -> tuple[Pin, ...]:
    """Pins from a hashed requirements file (``name==version \\ --hash=...``)."""
    joined = re.sub(r"\\\s*\n", " ", text)
    pins: list[Pin] = []
    for raw in joined.splitlines():
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("--hash") else raw
        if not line or line.startswith("-"):
            continue
        parts = line.split()
        spec = parts[0].split(";")[0]
        if "==" not in spec:
            raise ResolveError(f"resolver output has an unpinned line: {line}")
        name, version = spec.split("==", 1)
        name = name.split("[")[0]
        hashes = tuple(sorted(p.split("=", 1)[1] for p in parts[1:] if p.startswith("--hash=")))
        pins.append(Pin(canonicalize_name(name), version, hashes))
    return tuple(sorted(pins, key=lambda p: p.name))


def _first_cause(output: str) -> str:
    """The resolver's own reason, whole: uv's 'cause:' (or '╰─▶') paragraph, which it wraps
    over indented lines ('Because ...', 'you require a and b, which are incompatible')."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        text = line.strip().lstrip("╰─▶").strip()
        if not (text.startswith(("cause:", "Because")) or line.strip().startswith("╰─▶")):
            continue
        parts = [text.removeprefix("cause:").strip()]
        indent = len(line) - len(line.lstrip())
        for more in lines[i + 1:]:
            if not more.strip() or len(more) - len(more.lstrip()) <= indent or \
                    more.strip().startswith(("hint:", "help:")):
                break
            parts.append(more.strip())
        cause = " ".join(" ".join(parts).split()).rstrip(".")
        return cause if len(cause) <= 400 else cause[:400].rsplit(" ", 1)[0] + " …"
    return ""


_REQUIRED = re.compile(r"you require ([^\s,]+(?: and [^\s,]+)?)")


def required_names(cause: str) -> str:
    """The requirement the resolver's reason names ('you require pandas>=3.0'), if any."""
    found = _REQUIRED.search(cause)
    return found.group(1).rstrip(".") if found else ""


def compile_pins(
    resolver_name: str, requirements: Sequence[str], target: Target, indexes: Indexes,
    python_from: str = "auto",
) -> tuple[Pin, ...]:
    resolver = RESOLVERS[resolver_name]()
    for link in indexes.find_links:  # uv would say only "No such file or directory"
        if "://" not in link and not Path(link).is_dir():
            raise ResolveError(f"--find-links {link}: no such directory",
                               hint="give a directory of wheels or a URL")
    try:
        text = resolver.compile(requirements, target, indexes, python_from)
    except ProcessError as exc:
        raise _failure_error(diagnose(exc.output), indexes, exc, target.python) from exc
    return parse_requirements(text)


_WHEELS_REQUIRED = re.compile(r"Wheels are required for `([A-Za-z0-9_.\-]+)` because building from source")
_WHEELS_ELSEWHERE = re.compile(r"Wheels are available for `([A-Za-z0-9_.\-]+)`")


def source_only(output: str, indexes: Indexes) -> tuple[str, ...]:
    """Distributions published only as source: uv needed wheels of them, and no index or
    find-links location holds any wheel of theirs (for any Python: else the target's Python
    is the problem, said elsewhere)."""
    elsewhere = {canonicalize_name(m) for m in _WHEELS_ELSEWHERE.findall(output)}
    needed = dict.fromkeys(canonicalize_name(m) for m in _WHEELS_REQUIRED.findall(output))
    return tuple(n for n in needed if n not in elsewhere and has_wheels(n, indexes) is False)


def has_wheels(name: str, indexes: Indexes) -> bool | None:
    """Whether any location offers a wheel of ``name``; None when none could be asked."""
    answered = False
    for link in indexes.find_links:
        folder = Path(link.removeprefix("file://"))
        if folder.is_dir():
            answered = True
            if any(canonicalize_name(p.name.split("-", 1)[0]) == name
                   for p in folder.glob("*.whl")):
                return True
    for index in (indexes.index_url, *indexes.extra_index_urls):
        files = _index_files(index, name)
        if files is not None:
            answered = True
            if any(f.endswith(".whl") for f in files):
                return True
    return False if answered else None


def _index_files(index: str, name: str) -> list[str] | None:
    """File names an index lists for ``name`` (PEP 691 JSON); [] when it has no such project."""
    if not index.startswith(("https://", "http://")):
        return None
    request = urllib.request.Request(  # noqa: S310 (an index URL the user configured)
        f"{index.rstrip('/')}/{name}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            data = json.load(response)
    except urllib.error.HTTPError as exc:
        return [] if exc.code == 404 else None
    except (OSError, ValueError):
        return None
    return [str(f.get("filename", "")) for f in data.get("files", []) if isinstance(f, dict)]


def _failure_error(failure: ResolveFailure, indexes: Indexes, exc: ProcessError,
                   target_python: str) -> ResolveError:
    if failure.python and not failure.missing:
        cause = _first_cause(failure.output)
        return ResolveError(
            f"no version of {required_names(cause) or 'the requirements'} supports the target's "
            f"Python {target_python}"
            + (f": {cause}" if cause else ""),
            hint="relax the pin in tritonpack.toml, or target a release with a newer Python "
            "(--triton)",
            detail=exc.detail,
        )
    sources = source_only(failure.output, indexes)
    if sources and not failure.missing:
        name = sources[0]
        return ResolveError(
            f"{name} is published only as source (no wheel on the index): tritonpack installs "
            "wheels, hash-checked, never building code into the environment",
            hint=f"build a wheel for Python {target_python} on Linux (pip wheel --no-deps "
                 f"{name} -w DIR) and pass --find-links DIR, or declare another version that "
                 "has wheels",
            detail=exc.detail)
    if failure.unreachable:
        return IndexUnreachable(failed_index(failure.output, indexes), detail=exc.detail)
    return NoSolutionError(failure.missing, detail=exc.detail,
                           cause=_first_cause(failure.output), python=target_python)


class NoSolutionError(ResolveError):
    """The resolver found no solution; ``missing`` names distributions the index lacks."""

    def __init__(self, missing: tuple[str, ...], *, detail: str | None = None, cause: str = "",
                 python: str = ""):
        named = required_names(cause)
        what = f": {', '.join(missing)} not found on the index" if missing else (
            f" for {named + ' under ' if named else ''}Python {python}: {cause}" if cause else
            f" for Python {python} (run with --verbose for the resolver's output)")
        super().__init__(
            f"the PyPI resolver found no solution{what}", detail=detail,
            hint="a release with no wheel for the target's Python or platform is unusable: "
            "relax the pin in tritonpack.toml, or pick another --triton" if cause else None,
        )
        self.missing = missing


_URL = re.compile(r"(?:https?|file)://[^\s`'\")]+")


def failed_index(output: str, indexes: Indexes) -> str:
    """The configured index (or find-links location) the resolver's output names as failing:
    uv says ``Failed to fetch: URL``; the main index only when none is named."""
    urls = _URL.findall(output)
    for candidate in (*indexes.extra_index_urls, *indexes.find_links, indexes.index_url):
        prefix = candidate.rstrip("/")
        if any(u.startswith(prefix) for u in urls):
            return candidate
    return indexes.index_url


class IndexUnreachable(ResolveError):
    """One index could not be reached; ``url`` names it (not the reachable ones)."""

    def __init__(self, url: str, *, detail: str | None = None):
        super().__init__(
            f"the package index {url} is unreachable",
            hint="check --index-url and the network; tritonpack resolves against a live index",
            detail=detail,
        )
        self.url = url
