"""Distributions published only as source: their sdist, hash-checked, built once into a wheel.

A pure-Python package with no wheel (``langdetect``) is locked by its sdist's URL and sha256;
tritonpack builds that sdist into a wheel in an isolated build (uv's) run by the target's
Python, and keeps the wheel in its cache under the sdist's sha256, with the wheel's own sha256
beside it. The build stage installs that wheel, hash-checked against the cache entry; a missing
entry is rebuilt from the locked sdist, whose hash is checked before anything runs.

Only pure-Python builds are accepted: the build gets no C compiler (``CC`` names none), so an
sdist that compiles code or needs system libraries is refused, naming what it needed; a wheel
that holds a native binary anyway (a setup.py that runs gcc itself) is refused after the build.

Building an sdist runs its code (its setup.py or backend), as pip and uv do: as the user, not
in a sandbox. The build gets a throwaway HOME and working directory and an environment without
tritonpack's cache, registry credentials or pip/uv/XDG settings (``build_env``), so nothing of
tritonpack's is handed to it (the resolver, which runs an sdist's build backend for its
metadata, gets the same); what the lock guarantees is that the code run is the code locked.

The build tools are pinned too: the lock records, per sdist, its build requirements resolved
with hashes (``build_requires``), read from the archive's ``pyproject.toml`` without running
any of it (``declared_build_requires``: those members, bounded; a hostile archive is refused),
with a setuptools sdist's ``setup_requires`` (setup.cfg, or a literal in setup.py's ``setup()``:
read, never run), which setuptools would otherwise fetch unpinned at build time,
and the build gets them as ``uv build --build-constraint FILE --require-hashes``, so a wheel
built months later on another machine is built by the same setuptools. ``--require-hashes``
also refuses what a backend adds at build time (``get_requires_for_build_wheel``, e.g. a
``setup_requires``) that the lock cannot pin: an unpinned tool is refused, not fetched.
"""

from __future__ import annotations

import ast
import configparser
import contextlib
import hashlib
import json
import posixpath
import re
import shutil
import tarfile
import tempfile
import tomllib
import urllib.parse
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_sdist_filename

from ..core import deadlines, network
from ..core.atomic import atomic_write_bytes
from ..core.cachehome import cache_dir, cache_root, reuse
from ..core.errors import BuildError, ProcessError, ProcessTimeout
from ..core.fsguard import not_regular, open_regular
from ..core.redact import strip
from .backend import NO_COMPILER, Indexes, UvBackend, build_env

_SDIST_SUFFIXES = (".tar.gz", ".zip")
# PEP 517's fallback for an sdist whose pyproject.toml has no [build-system] (or that has no
# pyproject.toml): what uv's build frontend installs then (uv 0.13: ``setuptools>=40.8.0``
# alone; pip and pypa/build add ``wheel``, which setuptools >= 70.1 no longer needs).
LEGACY_BUILD_REQUIRES = ("setuptools>=40.8.0",)
# Bounds for reading an sdist we have not built yet: its member count, its unpacked size
# (summed from the headers, checked before the data is read) and its pyproject.toml.
MAX_MEMBERS = 100_000
MAX_UNPACKED = 512 * 2**20
MAX_PYPROJECT = 2**20
# The most bytes fetched for one sdist (the same bound as its unpacked size).
MAX_SDIST = MAX_UNPACKED


@dataclass(frozen=True)
class Sdist:
    """Where a locked source distribution is and its sha256 (``sha256:HEX``)."""

    name: str
    version: str
    url: str
    sha256: str

    @property
    def hexdigest(self) -> str:
        return self.sha256.removeprefix("sha256:")


def index_files(index: str, name: str) -> list[dict[str, object]] | None:
    """The files an index lists for ``name`` (PEP 691 JSON); [] when it has no such project,
    None when it could not be asked (or may not be: ``--offline``)."""
    if not index.startswith(("https://", "http://")) or network.offline():
        return None
    import urllib.error  # with http.client and ssl: only a run that asks an index pays
    import urllib.request

    request = urllib.request.Request(  # noqa: S310 (an index URL the user configured)
        f"{index.rstrip('/')}/{name}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=deadlines.INDEX_READ) as response:  # noqa: S310
            data = json.load(response)
    except urllib.error.HTTPError as exc:
        return [] if exc.code == 404 else None
    except (OSError, ValueError):
        return None
    return [f for f in data.get("files", []) if isinstance(f, dict)]


def sdist_version(filename: str, name: str) -> str | None:
    """The version of ``filename`` when it is an sdist of ``name`` (canonical), else None."""
    if not filename.endswith(_SDIST_SUFFIXES):
        return None
    try:
        found, version = parse_sdist_filename(filename)
    except ValueError:
        return None
    return str(version) if found == canonicalize_name(name) else None


def find_sdist(name: str, version: str, hashes: tuple[str, ...], indexes: Indexes) -> Sdist:
    """The sdist of ``name==version`` whose sha256 the resolver locked: a find-links
    directory's file, else an index's (URL as the index gives it)."""
    for link in indexes.find_links:
        folder = Path(link.removeprefix("file://"))
        for path in sorted(folder.glob("*")) if folder.is_dir() else ():
            if sdist_version(path.name, name) == version:
                sha = _local_sha256(path)
                if sha is not None and sha in hashes:
                    return Sdist(name, version, path.resolve().as_uri(), sha)
    for index in (indexes.index_url, *indexes.extra_index_urls):
        for f in index_files(index, name) or ():
            digests = f.get("hashes")
            sha = "sha256:" + str(digests.get("sha256", "")) if isinstance(digests, dict) else ""
            if sdist_version(str(f.get("filename", "")), name) == version and sha in hashes:
                return Sdist(name, version, urllib.parse.urljoin(f"{index.rstrip('/')}/{name}/",
                                                                 str(f.get("url", ""))), sha)
    raise BuildError(f"{name}=={version} is published only as source, and no index or "
                     "--find-links location holds the sdist the resolver chose",
                     hint="check --index-url and --find-links")


def _local_sha256(path: Path) -> str | None:
    """The sha256 of a find-links file; None for what is not a regular file (a FIFO there
    would block a plain read forever), an unreadable one or one larger than an sdist may be."""
    digest = hashlib.sha256()
    try:
        fh = open_regular(path)
        if isinstance(fh, str):
            return None
        with fh:
            for chunk in iter(lambda: fh.read(2**20), b""):
                digest.update(chunk)
                if fh.tell() > MAX_SDIST:
                    return None
    except OSError:
        return None
    return "sha256:" + digest.hexdigest()


class _TooLarge(Exception):
    pass


def _copy(source: BinaryIO, path: Path, digest: hashlib._Hash) -> None:
    """``source`` into ``path``, hashed on the way, at most MAX_SDIST bytes."""
    size = 0
    with path.open("wb") as out:
        for chunk in iter(lambda: source.read(2**20), b""):
            size += len(chunk)
            if size > MAX_SDIST:
                raise _TooLarge
            digest.update(chunk)
            out.write(chunk)


def fetch(sdist: Sdist, dest: Path) -> Path:
    """The sdist's bytes in ``dest``, checked against the locked sha256 before any build.

    The lock's URL is untrusted input: only https, http and a ``file://`` URL of this
    machine (no host) naming a regular file are fetched, streamed to disk and hashed on the
    way, at most MAX_SDIST bytes; a local file that differs is not described by its hash
    (the message would tell the sha256 of any file the user can read)."""
    import urllib.error
    import urllib.request

    what = f"the sdist of {sdist.name}=={sdist.version}"
    shown = sdist.url if len(sdist.url) <= 200 else sdist.url[:200] + "…"
    parsed = urllib.parse.urlparse(sdist.url)
    name = Path(urllib.parse.unquote(parsed.path)).name
    local = parsed.scheme == "file"
    relock = "re-create the lock (tritonpack lock --upgrade) rather than editing it"
    if parsed.scheme not in ("https", "http", "file") or (local and parsed.netloc):
        raise BuildError(f"{what} is locked at {shown}, which is neither an https or http URL "
                         "nor a file:// URL of this machine, so tritonpack does not fetch it",
                         hint=relock)
    if not name.endswith(_SDIST_SUFFIXES) or "\\" in name:
        raise BuildError(f"{what} is locked at {shown}, which names no .tar.gz or .zip file, "
                         "so tritonpack does not fetch it", hint=relock)
    if not local and network.offline():
        raise BuildError(f"--offline: {what} is not in tritonpack's cache, and fetching it from "
                         f"{strip(shown)} needs the network", hint=network.hint())
    path = dest / name
    digest = hashlib.sha256()
    try:
        if local:
            fh = open_regular(Path(urllib.request.url2pathname(parsed.path)))
            if isinstance(fh, str):
                raise BuildError(f"{what} is locked at {shown}, which is {fh}, not a file, "
                                 "so tritonpack does not read it", hint=relock)
            with fh:
                _copy(fh, path, digest)
        else:
            with urllib.request.urlopen(sdist.url, timeout=deadlines.DOWNLOAD_READ) as response:  # noqa: S310
                length = response.headers.get("Content-Length", "")
                if length.isdigit() and int(length) > MAX_SDIST:
                    raise _TooLarge
                _copy(response, path, digest)
    except _TooLarge:
        path.unlink(missing_ok=True)
        raise BuildError(f"{what} at {shown} is larger than {MAX_SDIST // 2**20} MiB, so "
                         "tritonpack does not fetch it", hint=relock) from None
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise BuildError(f"{what} could not be fetched from {shown}: {exc}",
                         hint="check the network and the index; the lock names this URL") from exc
    got = "sha256:" + digest.hexdigest()
    if got != sdist.sha256:
        path.unlink(missing_ok=True)
        raise BuildError(
            f"hash mismatch for {what}: locked {sdist.sha256}, "
            + (f"and the file at {shown} differs" if local else f"got {got}"),
            hint="the file differs from the one locked; re-lock only if you trust the new "
            "file (tritonpack lock --upgrade)")
    return path


class _Hostile(Exception):
    """What makes an sdist unsafe or unreadable, as the end of a sentence."""


def _member_path(name: str) -> tuple[str, ...]:
    """The parts of an archive member's path; a path that leaves the archive is hostile."""
    parts = tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise _Hostile(f"holds a member outside its directory ({name!r})")
    return parts


def _link_inside(tar: tarfile.TarInfo) -> None:
    """A link member must point inside the archive (a symlink relative to its directory)."""
    base = "" if tar.islnk() else posixpath.dirname(tar.name)
    target = posixpath.normpath(posixpath.join(base, tar.linkname))
    if tar.linkname.startswith("/") or target == ".." or target.startswith("../"):
        raise _Hostile(f"holds a link outside its directory ({tar.name!r} -> {tar.linkname!r})")


_READ = ("pyproject.toml", "setup.cfg", "setup.py")  # the top-level members read, statically


def _top_members(path: Path) -> dict[str, bytes]:
    """The sdist's top-level ``pyproject.toml``, ``setup.cfg`` and ``setup.py`` (those it has),
    reading only headers and those members: every member's path is checked, the unpacked size
    is summed from the headers and bounded before any data is read, links may not point
    outside."""
    found: dict[str, bytes] = {}
    total = count = 0

    def check(name: str, size: int) -> str | None:
        nonlocal total, count
        count += 1
        total += max(size, 0)
        if count > MAX_MEMBERS:
            raise _Hostile(f"holds more than {MAX_MEMBERS} members")
        if total > MAX_UNPACKED:
            raise _Hostile(f"unpacks to more than {MAX_UNPACKED // 2**20} MiB")
        parts = _member_path(name)
        if len(parts) == 2 and parts[1] in _READ:
            if parts[1] in found:
                raise _Hostile(f"holds more than one top-level {parts[1]}")
            if size > MAX_PYPROJECT:
                raise _Hostile(f"has a {parts[1]} larger than {MAX_PYPROJECT // 2**20} MiB")
            return parts[1]
        return None

    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as zipped:
                for info in zipped.infolist():
                    if (which := check(info.filename, info.file_size)) and not info.is_dir():
                        with zipped.open(info) as member:
                            found[which] = member.read(MAX_PYPROJECT + 1)
        else:
            with tarfile.open(path, mode="r|*") as archive:  # a stream: headers in order
                for tar in archive:
                    if tar.issym() or tar.islnk():
                        _link_inside(tar)
                    if which := check(tar.name, tar.size):
                        if not tar.isfile():
                            raise _Hostile(f"has a {which} that is not a regular file")
                        data = archive.extractfile(tar)
                        found[which] = data.read(MAX_PYPROJECT + 1) if data else b""
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise _Hostile(f"is not a readable .tar.gz or .zip archive ({exc})") from exc
    for which, raw in found.items():  # a zip's header may understate it
        if len(raw) > MAX_PYPROJECT:
            raise _Hostile(f"has a {which} larger than {MAX_PYPROJECT // 2**20} MiB")
    return found


def setup_requires(members: dict[str, bytes]) -> tuple[str, ...]:
    """``setup_requires`` of a setuptools sdist, read without running it: ``[options]
    setup_requires`` of setup.cfg, and a literal ``setup_requires=[...]`` (or a name bound
    to a literal list at module level) in setup.py's ``setup(...)`` call. setuptools installs
    these when its backend asks for the build requirements (get_requires_for_build_wheel)."""
    found: list[str] = []
    cfg = members.get("setup.cfg")
    if cfg is not None:
        parser = configparser.ConfigParser(interpolation=None)
        with contextlib.suppress(configparser.Error, UnicodeDecodeError):
            parser.read_string(cfg.decode("utf-8"))
            raw = parser.get("options", "setup_requires", fallback="")
            found += [r.strip() for line in raw.splitlines() for r in line.split(";")
                      if r.strip() and not r.strip().startswith("#")]
    script = members.get("setup.py")
    if script is not None:
        found += _setup_py_requires(script)
    out: list[str] = []
    for line in found:
        try:
            Requirement(line)
        except InvalidRequirement:
            continue
        out.append(line)
    return tuple(dict.fromkeys(out))


def _setup_py_requires(script: bytes) -> list[str]:
    try:
        tree = ast.parse(script)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    bound: dict[str, ast.expr] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(
                stmt.targets[0], ast.Name):
            bound[stmt.targets[0].id] = stmt.value
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(
            func, ast.Attribute) else ""
        if name != "setup":
            continue
        for keyword in node.keywords:
            if keyword.arg == "setup_requires":
                value = keyword.value
                if isinstance(value, ast.Name):
                    value = bound.get(value.id, value)
                return _strings(value)
    return []


def _strings(value: ast.expr) -> list[str]:
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return [value.value]
    if isinstance(value, ast.List | ast.Tuple):
        return [e.value for e in value.elts if isinstance(e, ast.Constant)
                and isinstance(e.value, str)]
    return []


def declared_build_requires(path: Path, name: str, version: str) -> tuple[str, ...]:
    """The build requirements the sdist at ``path`` declares (``[build-system] requires``;
    PEP 517's fallback when it declares none), read statically: nothing of it runs."""
    what = f"the sdist of {name}=={version}"
    try:
        if (kind := not_regular(path)) is not None:  # tarfile would block on a FIFO
            raise _Hostile(f"is {kind}, not an archive")
        members = _top_members(path)
    except _Hostile as exc:
        raise BuildError(f"{what} {exc}, so tritonpack does not build it",
                         hint="report it to the package's maintainers; pin another version, "
                         "or pass --find-links DIR with a wheel you trust") from None
    base = _pyproject_requires(members.get("pyproject.toml"), what)
    if not any(canonicalize_name(Requirement(r).name) == "setuptools" for r in base):
        return base  # setup_requires is setuptools' own: another backend never reads it
    extra = [r for r in setup_requires(members) if canonicalize_name(Requirement(r).name)
             not in {canonicalize_name(Requirement(b).name) for b in base}]
    return (*base, *extra)


def _pyproject_requires(raw: bytes | None, what: str) -> tuple[str, ...]:
    """``[build-system] requires`` of a pyproject.toml; PEP 517's fallback without one."""
    if raw is None:
        return LEGACY_BUILD_REQUIRES
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise _bad_pyproject(what, f"is not valid TOML ({exc})") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise _bad_pyproject(what, "has arrays or tables nested too deeply to read") from None
    system = data.get("build-system")
    if system is None:
        return LEGACY_BUILD_REQUIRES
    if not isinstance(system, dict) or "requires" not in system:
        raise _bad_pyproject(what, "has a [build-system] table without requires")
    requires = system["requires"]
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise _bad_pyproject(what, "declares [build-system] requires that is not a list of "
                                   "strings")
    for line in requires:
        try:
            Requirement(line)
        except InvalidRequirement:
            raise _bad_pyproject(what, f"declares the build requirement {line[:80]!r}, which "
                                       "is no valid requirement") from None
    return tuple(requires)


def _bad_pyproject(what: str, problem: str) -> BuildError:
    return BuildError(f"{what} cannot be built: its pyproject.toml {problem}",
                      hint="pin another version of it, or pass --find-links DIR with a wheel")


@dataclass(frozen=True)
class BuiltWheel:
    """A cached wheel built from a locked sdist, with the sha256 recorded when it was built."""

    path: Path
    sha256: str


def _entry_dir(sdist: Sdist, python: str, build_requires: tuple[str, ...]) -> Path:
    """Where the wheel built from ``sdist`` for Python ``python`` with the pinned
    ``build_requires`` is kept (not made here): other build tools make another wheel."""
    pins = hashlib.sha256("\n".join(sorted(build_requires)).encode()).hexdigest()
    return cache_root() / "sdist-wheels" / sdist.hexdigest / f"python{python}-build-{pins[:16]}"


def cached_wheel(sdist: Sdist, python: str, build_requires: tuple[str, ...]
                 ) -> BuiltWheel | None:
    """The cache's wheel for ``sdist`` when its bytes still match its entry, else None (and
    always None under ``--no-cache``: the entry vouches for itself, so a distrusting run
    builds the wheel again from the locked sdist and replaces it)."""
    if not reuse():
        return None
    entry_dir = _entry_dir(sdist, python, build_requires)
    try:
        entry = json.loads((entry_dir / "entry.json").read_text(encoding="utf-8"))
        wheel = entry_dir / str(entry["wheel"])
        want = str(entry["wheel_sha256"])
        if entry.get("sdist_sha256") != sdist.sha256 or Path(entry["wheel"]).name != entry["wheel"]:
            return None
        if entry.get("build_requires") != sorted(build_requires):
            return None
        if "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest() != want:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return BuiltWheel(wheel, want)


def build_wheel(sdist: Sdist, interpreter: Path, python: str, indexes: Indexes,
                build_requires: tuple[str, ...], source: Path | None = None
                ) -> BuiltWheel:
    """The wheel of ``sdist`` for Python ``python`` (X.Y), from the cache or built now by
    ``interpreter`` (an interpreter of that version) in an isolated build environment holding
    exactly the pinned, hash-checked ``build_requires`` (lines ``name==V --hash=sha256:H``,
    maybe none). ``source``: the sdist, already fetched and checked."""
    cached = cached_wheel(sdist, python, build_requires)
    if cached is not None:
        return cached
    entry_dir = cache_dir("sdist-wheels", sdist.hexdigest,
                          _entry_dir(sdist, python, build_requires).name)
    with tempfile.TemporaryDirectory(prefix="tritonpack-sdist-") as tmp:
        if source is None:
            source = fetch(sdist, Path(tmp))
        out = Path(tmp) / "dist"
        constraints = Path(tmp) / "build-constraints.txt"  # even empty: with --require-hashes
        constraints.write_text("".join(f"{line}\n" for line in build_requires),  # nothing else
                               encoding="utf-8")  # enters the build
        home = Path(tmp) / "home"
        home.mkdir()
        try:
            UvBackend().build(source, interpreter, out, indexes, build_env(home), constraints,
                              cwd=home)
        except ProcessError as exc:
            raise _build_failed(sdist, exc, python) from exc
        wheels = sorted(out.glob("*.whl"))
        if len(wheels) != 1:
            raise BuildError(f"building {sdist.name}=={sdist.version} from its sdist made "
                             f"{len(wheels)} wheels, not one")
        if not wheels[0].name.endswith("-none-any.whl"):
            raise _refused(sdist, "a compiler (it builds a platform-specific wheel, "
                                  f"{wheels[0].name})", python)
        if (binary := native_member(wheels[0])) is not None:
            raise _refused(sdist, f"a C compiler (its wheel holds the native binary {binary})",
                           python)
        data = wheels[0].read_bytes()
        sha = "sha256:" + hashlib.sha256(data).hexdigest()
        atomic_write_bytes(entry_dir / wheels[0].name, data, mode=0o644)
        entry: dict[str, object] = {
            "sdist_url": sdist.url, "sdist_sha256": sdist.sha256, "python": python,
            "wheel": wheels[0].name, "wheel_sha256": sha, "build_requires": sorted(build_requires)}
        atomic_write_bytes(entry_dir / "entry.json",
                           (json.dumps(entry, indent=2, sort_keys=True) + "\n").encode(),
                           mode=0o644)
    return BuiltWheel(entry_dir / wheels[0].name, sha)


# The first bytes of a native binary: ELF, Mach-O (32/64-bit, both byte orders), PE ("MZ"
# then "PE\0\0" at the offset in bytes 60-63), and a universal Mach-O (checked further).
_NATIVE = (b"\x7fELF", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
           b"\xcf\xfa\xed\xfe")


def _is_native(head: bytes, member: IO[bytes]) -> bool:
    if head.startswith(_NATIVE):
        return True
    if head.startswith(b"\xca\xfe\xba\xbe"):  # a universal Mach-O, or a Java class file
        return 0 < int.from_bytes(head[4:8], "big") < 45  # its arch count, not a class version
    if head.startswith(b"MZ") and len(head) >= 64:
        offset = int.from_bytes(head[60:64], "little")
        if 64 <= offset <= 2**16:
            rest = member.read(offset + 4 - len(head))
            return (head + rest)[offset:offset + 4] == b"PE\0\0"
    return False


def native_member(wheel: Path) -> str | None:
    """The first member of ``wheel`` that is a native binary (ELF, Mach-O or PE), by its
    magic bytes, not its name: a setup.py that runs a compiler itself (not through CC) or
    copies a prebuilt library still makes a ``py3-none-any`` wheel."""
    with zipfile.ZipFile(wheel) as zipped:
        for info in zipped.infolist():
            if info.is_dir():
                continue
            with zipped.open(info) as member:
                if _is_native(member.read(64), member):
                    return info.filename
    return None


# uv's words when a build tool's file differs from the locked hash, and when the backend asks
# (get_requires_for_build_wheel) for a tool the build constraints do not pin
_BUILD_HASH = re.compile(r"Hash mismatch for `([^`]+)`")
_UNPINNED = re.compile(r"no trusted hash was provided for: ((?:`[^`]+`(?:, )?)+)")


def _build_failed(sdist: Sdist, exc: ProcessError, python: str) -> BuildError:
    """One sentence for a failed build: a locked build tool whose hash differs, a tool the
    lock does not pin, what a compiling build needed, else the build's output as detail."""
    what = f"{sdist.name}=={sdist.version}"
    if isinstance(exc, ProcessTimeout):
        return BuildError(
            f"building {what} from its sdist did not finish within {exc.seconds:.0f} s: "
            "stopped, with every process its build started",
            hint=f"its setup.py may wait for input, a network or a server; build a wheel of it "
                 f"for Python {python} and pass --find-links DIR", detail=exc.detail)
    if found := _BUILD_HASH.search(exc.output):
        return BuildError(
            f"hash mismatch for {found.group(1)}, a build requirement of {what} pinned in "
            "the lock: the file on the index differs from the one locked",
            hint="re-lock only if you trust the new file (tritonpack lock --upgrade)",
            detail=exc.detail)
    if found := _UNPINNED.search(exc.output):
        names = found.group(1).replace("`", "")
        return BuildError(
            f"the build of {what} asks for {names} beyond the build requirements its sdist "
            "declares, which tritonpack cannot pin without running its code",
            hint=f"build a wheel of it for Python {python} and pass --find-links DIR, or "
                 "pin a version that has wheels", detail=exc.detail)
    needed = needs(exc.output)
    if needed is None:
        return BuildError(f"building {what} from its sdist failed",
                          hint="run with --verbose for the build's output", detail=exc.detail)
    return _refused(sdist, needed, python)


_HEADER = re.compile(r"fatal error: ([\w./+-]+\.h): No such file")
_LIBRARY = re.compile(r"cannot find -l([\w.+-]+)")
_RUST = re.compile(r"(cargo|rustc)\b[^\n]*(not found|No such file|is not installed)|"
                   r"can't find Rust compiler", re.I)
_PKG_CONFIG = re.compile(r"(pkg-config|Package (\S+) was not found)")


def needs(output: str) -> str | None:
    """What a failed sdist build needed that the isolated build cannot provide, if the
    build's output says so (None for another failure)."""
    if header := _HEADER.search(output):
        return f"a C compiler and the system header {header.group(1)}"
    if library := _LIBRARY.search(output):
        return f"a C compiler and the system library lib{library.group(1)}"
    if _RUST.search(output):
        return "a Rust compiler"
    if NO_COMPILER in output or re.search(r"\b(gcc|g\+\+|clang|cc)\b[^\n]*failed", output):
        return "a C compiler (it compiles a C extension)"
    if _PKG_CONFIG.search(output):
        return "system libraries found with pkg-config"
    return None


def _refused(sdist: Sdist, needed: str, python: str) -> BuildError:
    return BuildError(
        f"{sdist.name}=={sdist.version} is published only as source and its build needs "
        f"{needed}, which tritonpack's isolated pure-Python build does not provide",
        hint=f"build a wheel of it for Python {python} on Linux and pass --find-links DIR, "
             "or declare a version that has wheels")


def wheel_links(wheels: list[BuiltWheel], dest: Path) -> Path:
    """A find-links directory in ``dest`` holding exactly ``wheels`` (linked, else copied)."""
    links = dest / "sdist-wheels"
    links.mkdir(parents=True, exist_ok=True)
    for wheel in wheels:
        target = links / wheel.path.name
        target.unlink(missing_ok=True)
        try:
            target.hardlink_to(wheel.path)
        except OSError:
            with contextlib.suppress(shutil.SameFileError):
                shutil.copyfile(wheel.path, target)
    return links
