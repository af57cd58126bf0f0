"""PyPI pins: resolve requirement lines with a backend (``backend``: uv or pip-tools), read the
hashed requirements file it writes into pins, and turn a failed resolution into one sentence.

A distribution published only as source (no Python 3 wheel for the target's platform: a macOS
wheel alone is none) is resolved again from its sdist, which ``sdist`` builds into a cached
wheel; its pin keeps the sdist's URL and hash.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ..core import network
from ..core.errors import (
    BuildError,
    ProcessError,
    ProcessTimeout,
    ResolveError,
    TargetError,
    TritonPackError,
)
from ..resolve.target import Target
from .backend import BACKENDS, DEFAULT_INDEX, Backend, Indexes, Prefer, target_interpreter
from .sdist import (
    Sdist,
    build_wheel,
    declared_build_requires,
    fetch,
    find_sdist,
    index_files,
    sdist_version,
)

__all__ = [
    "DEFAULT_INDEX",
    "RESOLVERS",
    "IndexUnreachable",
    "Indexes",
    "NoSolutionError",
    "Pin",
    "compile_pins",
]

RESOLVERS = BACKENDS  # the --resolver choices: the backends that compile a lock


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: tuple[str, ...] = field(default=())
    # set when no wheel is published: the sdist the wheel is built from (its sha256 in hashes)
    sdist: str = ""
    # with ``sdist``: its build requirements, pinned (``name==V --hash=sha256:H ...`` lines)
    build_requires: tuple[str, ...] = field(default=())

    def line(self) -> str:
        return f"{self.name}=={self.version}"


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
        hashes = tuple(sorted({p.split("=", 1)[1] for p in parts[1:] if p.startswith("--hash=")}))
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
    # no paragraph: uv's one-line 'error: ...' (a direct URL's bad wheel name, say) is the
    # reason, not "run with --verbose" (which then said the same again)
    errors = [ln.strip().removeprefix("error:").strip() for ln in lines
              if ln.strip().startswith("error:")]
    cause = errors[-1].rstrip(".") if errors else ""
    return cause if len(cause) <= 400 else cause[:400].rsplit(" ", 1)[0] + " …"


_REQUIRED = re.compile(r"you require ([^\s,]+(?: and [^\s,]+)?)")


def required_names(cause: str) -> str:
    """The requirement the resolver's reason names ('you require pandas>=3.0'), if any."""
    found = _REQUIRED.search(cause)
    return found.group(1).rstrip(".") if found else ""


def check_find_links(indexes: Indexes) -> None:
    """Name a --find-links directory that is not there (one a lock remembers, on another
    machine), or is a file now: uv would say only "No such file or directory". A relative one
    is looked for from the current directory, which is said: a lock remembers it as given, so
    a run from another directory than the lock's finds another folder, or none."""
    for link in indexes.find_links:
        if "://" in link and not link.startswith("file://"):
            continue
        path = Path(link.removeprefix("file://"))
        if path.is_dir():
            continue
        what = "not a directory" if path.exists() else "no such directory"
        try:
            where = "" if path.is_absolute() else \
                f" (looked for from the current directory, {Path.cwd()})"
        except OSError:  # the current directory removed
            where = " (relative to a current directory that is gone)"
        raise ResolveError(f"--find-links {link}: {what}{where}",
                           hint="give a directory of wheels or a URL")


def compile_pins(
    resolver_name: str, requirements: Sequence[str], target: Target, indexes: Indexes,
    python_from: str = "auto", prefer: Prefer = None,
) -> tuple[Pin, ...]:
    """The pins of ``requirements`` for ``target``, wheels only; a distribution published
    only as source is resolved from its sdist, which is built into a wheel now (and cached:
    ``sdist.build_wheel``), so that a build it cannot do fails the lock, not the pack."""
    backend = RESOLVERS[resolver_name]()
    check_find_links(indexes)
    from_source: list[str] = []
    while True:
        try:
            text = backend.compile(requirements, target, indexes, python_from, from_source,
                                   prefer=prefer)
            break
        except ProcessTimeout as exc:
            raise _timed_out(exc, from_source) from exc
        except ProcessError as exc:
            failure = diagnose(exc.output)
            if network.offline() and network.UV_OFFLINE_MISS in exc.output:
                raise offline_missing(failure.missing, "resolve", exc) from exc
            more = [n for n in source_only(failure, indexes, target.pypi_platform)
                    if n not in from_source]
            if not more or len(from_source) > _MAX_FROM_SOURCE:
                _check_named_sdists(exc.output, from_source, indexes)
                if (built := _build_deps_failed(exc, target.python)) is not None:
                    raise built from exc
                raise _failure_error(failure, indexes, exc, target.python) from exc
            from_source += more  # a built package's own dependencies may be source-only too
    pins = parse_requirements(text)
    if not from_source:
        return pins
    try:
        interpreter = target_interpreter(target.python, python_from)
    except TargetError as exc:
        raise BuildError(
            f"{from_source[0]} is published only as source, and building it needs a Python "
            f"{target.python} on this machine: none was found",
            hint=f"install one (uv python install {target.python}) or pass --python-from "
                 "PREFIX") from exc
    return tuple(_from_source(p, interpreter, target, indexes, backend, python_from)
                 if p.name in from_source else p for p in pins)


_MAX_FROM_SOURCE = 20


# uv, when a source-only package's own build requirements (pyproject's, or setuptools'
# setup_requires, which it reports the same way) have no solution
_BUILD_DEPS = re.compile(r"Failed to (?:download and )?build `([^`]+)`\s*\n\s*(?:cause:|╰─▶)?\s*"
                         r"Failed to resolve requirements from `build-system\.requires`")
_BUILD_SET = re.compile(r"No solution found when resolving: ((?:`[^`]+`(?:, )?)+)")


def _build_deps_failed(exc: ProcessError, python: str) -> BuildError | None:
    """The resolve failed in what a source-only package needs to build, not in the user's
    requirements: said so (never "relax the pin in tritonpack.toml")."""
    found = _BUILD_DEPS.search(exc.output)
    if found is None:
        return None
    needs = _BUILD_SET.search(exc.output)
    tools = needs.group(1).replace("`", "") if needs else "its build requirements"
    cause = _first_cause(exc.output[(needs or found).end():])
    return BuildError(
        f"{found.group(1)} is published only as source and its build needs {tools} (its "
        f"build-system requires and setup_requires), which have no solution for Python "
        f"{python}" + (f": {cause}" if cause else ""),
        hint=f"pin another version of {found.group(1).split('==')[0]}, or build a wheel of it "
             "and pass --find-links DIR", detail=exc.detail)


def _timed_out(exc: ProcessTimeout, from_source: Sequence[str]) -> ResolveError:
    """A resolve past its deadline: when it read an sdist's metadata, its setup.py is the
    likely waiter."""
    built = (f" (it ran the setup.py of {', '.join(from_source)}, published only as source, "
             "to read its metadata)") if from_source else ""
    return ResolveError(
        f"resolving the requirements did not finish within {exc.seconds:.0f} s{built}: "
        "stopped, with every process it started",
        hint="check the index (--index-url) and the network" if not from_source else
        "build a wheel of it and pass --find-links DIR, or pin a version that has wheels",
        detail=exc.detail)


def _from_source(pin: Pin, interpreter: Path, target: Target, indexes: Indexes,
                 backend: Backend, python_from: str) -> Pin:
    """``pin`` locked by the sdist the resolver chose (its sha256 alone) and its build
    requirements (read from the archive, resolved with hashes), once built with them."""
    found = find_sdist(pin.name, pin.version, pin.hashes, indexes)
    with tempfile.TemporaryDirectory(prefix="tritonpack-sdist-") as tmp:
        source = fetch(found, Path(tmp))
        declared = declared_build_requires(source, pin.name, pin.version)
        build = build_pins(backend, declared, target, indexes, python_from, pin)
        build_wheel(found, interpreter, target.python, indexes, build, source)
    return Pin(pin.name, pin.version, (found.sha256,), found.url, build)


def build_pins(backend: Backend, declared: tuple[str, ...], target: Target, indexes: Indexes,
               python_from: str, pin: Pin) -> tuple[str, ...]:
    """``declared`` build requirements resolved for ``target`` with hashes, as requirement
    lines (``name==V --hash=sha256:H ...``): what the build gets as its constraints."""
    if not declared:
        return ()
    try:
        text = backend.compile(declared, target, indexes, python_from, build_tools=True)
    except ProcessError as exc:
        cause = _first_cause(exc.output)
        raise BuildError(
            f"the build requirements of {pin.line()} ({', '.join(declared)}) have no "
            f"solution for Python {target.python}" + (f": {cause}" if cause else ""),
            hint="pin another version of it, or pass --find-links DIR with a wheel of it",
            detail=exc.detail) from exc
    return tuple(p.line() + "".join(f" --hash={h}" for h in p.hashes)
                 for p in parse_requirements(text))


def _check_named_sdists(output: str, from_source: Sequence[str], indexes: Indexes) -> None:
    """A resolution that failed on an sdist it was building from source (uv: "Failed to
    extract archive: NAME==V", or a pyproject.toml schema error) fails for that sdist's own
    reason, read statically, when a --find-links directory holds it."""
    for name in from_source:
        for version in re.findall(rf"\b{re.escape(name)}==([A-Za-z0-9.+!_-]+)", output, re.I):
            for link in indexes.find_links:
                folder = Path(link.removeprefix("file://"))
                for path in sorted(folder.iterdir()) if folder.is_dir() else ():
                    if sdist_version(path.name, name) == version:
                        declared_build_requires(path, name, version)


def pin_sdist(pin: Pin) -> Sdist:
    """The locked sdist of a pin built from source."""
    return Sdist(pin.name, pin.version, pin.sdist, pin.hashes[0])


_WHEELS_REQUIRED = re.compile(r"Wheels are required for `([A-Za-z0-9_.\-]+)` because building from source")
_WHEELS_ELSEWHERE = re.compile(r"Wheels are available for `([A-Za-z0-9_.\-]+)`")


def source_only(failure: ResolveFailure, indexes: Indexes, platform: str) -> tuple[str, ...]:
    """Distributions published only as source: the resolver needed wheels of them (uv says
    so; pip finds no version), and the locations offer an sdist but no Python 3 wheel for the
    target's ``platform`` (``x86_64-manylinux_2_35``; for any Python 3: else the target's
    Python is the problem, said elsewhere). A wheel for macOS or Windows alone is no wheel."""
    elsewhere = {canonicalize_name(m) for m in _WHEELS_ELSEWHERE.findall(failure.output)}
    needed = dict.fromkeys([*(canonicalize_name(m)
                              for m in _WHEELS_REQUIRED.findall(failure.output)),
                            *failure.missing])
    return tuple(n for n in needed
                 if n not in elsewhere and offers(n, indexes, platform) == (False, True))


def offers(name: str, indexes: Indexes, platform: str) -> tuple[bool | None, bool]:
    """(a Python 3 wheel of ``name`` for ``platform``, an sdist of it) on any location; the
    first None when no location could be asked."""
    answered = wheel = sdist = False
    for link in indexes.find_links:
        folder = Path(link.removeprefix("file://"))
        if folder.is_dir():
            answered = True
            for path in folder.iterdir():
                wheel = wheel or (_python3_wheel(path.name, platform) and
                                  parse_wheel_filename(path.name)[0] == name)
                sdist = sdist or sdist_version(path.name, name) is not None
    for index in (indexes.index_url, *indexes.extra_index_urls):
        files = index_files(index, name)
        if files is not None:
            answered = True
            names = [str(f.get("filename", "")) for f in files]
            wheel = wheel or any(_python3_wheel(n, platform) for n in names)
            sdist = sdist or any(sdist_version(n, name) is not None for n in names)
    return (wheel if answered else None), sdist


def passed_over(pins: Sequence[Pin], indexes: Indexes) -> list[str]:
    """A note for each pin whose distribution a ``--find-links`` directory holds wheels of,
    none of them the version taken: a resolver takes the newest version wherever it is (pip
    does too), so a CPU torch wheel in the directory loses to a newer CUDA build on PyPI, a
    download of gigabytes nobody meant. Directories only (a URL is not listed here)."""
    from .wheelhouse import local_dirs

    held: dict[str, set[Version]] = {}
    for folder in local_dirs(indexes):  # file:// URLs decoded as the wheelhouse does
        for wheel in folder.glob("*.whl"):
            try:
                name, version, _, _ = parse_wheel_filename(wheel.name)
            except ValueError:
                continue
            held.setdefault(name, set()).add(version)
    notes = []
    for pin in pins:
        versions = held.get(canonicalize_name(pin.name))
        try:
            taken = Version(pin.version)
        except InvalidVersion:
            continue
        if versions and taken not in versions:
            shown = ", ".join(str(v) for v in sorted(versions)[-3:])
            notes.append(f"{pin.name} {pin.version} comes from an index, not from the "
                         f"{shown} wheel in --find-links (the newest version wins wherever it "
                         f"is): pin {pin.name}=={max(versions)} to take the directory's")
    return notes


def wheel_of_version(name: str, version: str, indexes: Indexes, platform: str,
                     python: str) -> bool | None:
    """Whether a wheel of ``name==version`` installs on ``platform`` for Python ``python``
    (X.Y) on any location; None when no location could be asked."""
    want = canonicalize_name(name)
    cp = "cp" + python.replace(".", "")
    answered = False
    filenames: list[str] = []
    for link in indexes.find_links:
        folder = Path(link.removeprefix("file://"))
        if folder.is_dir():
            answered = True
            filenames += [p.name for p in folder.iterdir()]
    for index in (indexes.index_url, *indexes.extra_index_urls):
        files = index_files(index, name)
        if files is not None:
            answered = True
            filenames += [str(f.get("filename", "")) for f in files if not f.get("yanked")]
    for filename in filenames:
        if not filename.endswith(".whl"):
            continue
        try:
            found, found_version, _, tags = parse_wheel_filename(filename)
        except ValueError:
            continue
        if found == want and str(found_version) == version and any(
                t.interpreter in (cp, "py3", f"py{python.replace('.', '')}")
                or (t.abi == "abi3" and t.interpreter.startswith("cp3")
                    and int(t.interpreter[3:] or 0) <= int(python.split(".")[1]))
                for t in tags if _on_platform(t.platform, platform)):
            return True
    return False if answered else None


# manylinux's legacy names and the glibc each stands for (PEP 600)
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def _on_platform(tag: str, platform: str) -> bool:
    """Whether a wheel's platform tag installs on ``platform`` (``ARCH-manylinux_X_Y``, the
    resolver's): ``any``, or Linux for that architecture with a glibc no newer than X.Y."""
    if tag == "any":
        return True
    arch, _, manylinux = platform.partition("-")
    glibc = tuple(int(v) for v in manylinux.removeprefix("manylinux_").split("_"))
    if not tag.endswith(f"_{arch}"):
        return False
    family = tag.removesuffix(f"_{arch}")
    if family == "linux":
        return True
    if family in _LEGACY_MANYLINUX:
        return _LEGACY_MANYLINUX[family] <= glibc
    parts = family.split("_")
    if parts[0] == "manylinux" and len(parts) == 3 and all(p.isdigit() for p in parts[1:]):
        return (int(parts[1]), int(parts[2])) <= glibc
    return False  # musllinux, macosx, win


def _python3_wheel(filename: str, platform: str) -> bool:
    """Whether ``filename`` is a wheel some Python 3 can install on ``platform`` (langdetect's
    only wheel is ``py2-none-any``; fasttext 0.9.3's a macOS arm64 one)."""
    if not filename.endswith(".whl"):
        return False
    try:
        tags = parse_wheel_filename(filename)[3]
    except ValueError:
        return False
    return any(not t.interpreter.startswith(("py2", "cp2", "pp2"))
               and _on_platform(t.platform, platform) for t in tags)


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
    if failure.unreachable:
        return IndexUnreachable(failed_index(failure.output, indexes), detail=exc.detail)
    return NoSolutionError(failure.missing, detail=exc.detail,
                           cause=_first_cause(failure.output), python=target_python)


def resolve_failed(exc: ProcessError, indexes: Indexes, python: str) -> TritonPackError:
    """A resolve that was not asked to build anything failed: in the words the lock uses
    (an unreachable index, a missing distribution, --offline's miss, the deadline)."""
    if isinstance(exc, ProcessTimeout):
        return _timed_out(exc, ())
    failure = diagnose(exc.output)
    if network.offline() and network.UV_OFFLINE_MISS in exc.output:
        return offline_missing(failure.missing, "resolve", exc)
    return _failure_error(failure, indexes, exc, python)


def offline_missing(missing: Sequence[str], doing: str, exc: ProcessError,
                    error: type[TritonPackError] = ResolveError) -> TritonPackError:
    """``--offline`` kept uv from packages its cache lacks: which ones, and the way out."""
    names = ", ".join(missing) or "some of the packages"
    return error(f"--offline: cannot {doing} without the network: {names} "
                        f"{'is' if len(missing) == 1 else 'are'} not in tritonpack's package "
                        "cache", hint=network.hint(), detail=exc.detail)


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
