"""Distributions published only as source: their sdist, hash-checked, built once into a wheel.

A pure-Python package with no wheel (``langdetect``) is locked by its sdist's URL and sha256;
tritonpack builds that sdist into a wheel in an isolated build (uv's) run by the target's
Python, and keeps the wheel in its cache under the sdist's sha256, with the wheel's own sha256
beside it. The build stage installs that wheel, hash-checked against the cache entry; a missing
entry is rebuilt from the locked sdist, whose hash is checked before anything runs.

Only pure-Python builds are accepted: the build gets no C compiler (``CC`` names none), so an
sdist that compiles code or needs system libraries is refused, naming what it needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name, parse_sdist_filename

from ..core import proc
from ..core.atomic import atomic_write_bytes
from ..core.cache import cache_dir, cache_root
from ..core.errors import BuildError, ProcessError
from .backend import Indexes, UvBackend

# What the build's CC and CXX name: no such program, so a compile fails with this name in it.
NO_COMPILER = "tritonpack-no-compiler"
# sdists that set no timestamps get this one (1980-01-01, the zip format's epoch)
SOURCE_DATE_EPOCH = "315532800"
_SDIST_SUFFIXES = (".tar.gz", ".zip")


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
    None when it could not be asked."""
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
                sha = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
                if sha in hashes:
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


def _fetch(sdist: Sdist, dest: Path) -> Path:
    """The sdist's bytes in ``dest``, checked against the locked sha256 before any build."""
    path = dest / Path(urllib.parse.urlparse(sdist.url).path).name
    try:
        if sdist.url.startswith("file://"):
            shutil.copyfile(urllib.request.url2pathname(urllib.parse.urlparse(sdist.url).path),
                            path)
        else:
            with urllib.request.urlopen(sdist.url, timeout=60) as response:  # noqa: S310
                path.write_bytes(response.read())
    except (OSError, urllib.error.URLError) as exc:
        raise BuildError(f"the sdist of {sdist.name}=={sdist.version} could not be fetched "
                         f"from {sdist.url}: {exc}",
                         hint="check the network and the index; the lock names this URL") from exc
    got = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    if got != sdist.sha256:
        raise BuildError(
            f"hash mismatch for the sdist of {sdist.name}=={sdist.version}: locked "
            f"{sdist.sha256}, got {got}",
            hint="the file on the index differs from the one locked; re-lock only if you "
            "trust the new file (tritonpack lock --upgrade)")
    return path


@dataclass(frozen=True)
class BuiltWheel:
    """A cached wheel built from a locked sdist, with the sha256 recorded when it was built."""

    path: Path
    sha256: str


def _entry_dir(sdist: Sdist, python: str) -> Path:
    """Where the wheel built from ``sdist`` for Python ``python`` is kept (not made here)."""
    return cache_root() / "sdist-wheels" / sdist.hexdigest / f"python{python}"


def cached_wheel(sdist: Sdist, python: str) -> BuiltWheel | None:
    """The cache's wheel for ``sdist`` when its bytes still match its entry, else None."""
    entry_dir = _entry_dir(sdist, python)
    try:
        entry = json.loads((entry_dir / "entry.json").read_text(encoding="utf-8"))
        wheel = entry_dir / str(entry["wheel"])
        want = str(entry["wheel_sha256"])
        if entry.get("sdist_sha256") != sdist.sha256 or Path(entry["wheel"]).name != entry["wheel"]:
            return None
        if "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest() != want:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return BuiltWheel(wheel, want)


def build_wheel(sdist: Sdist, interpreter: Path, python: str, indexes: Indexes) -> BuiltWheel:
    """The wheel of ``sdist`` for Python ``python`` (X.Y), from the cache or built now by
    ``interpreter`` (an interpreter of that version) in an isolated build environment."""
    cached = cached_wheel(sdist, python)
    if cached is not None:
        return cached
    entry_dir = cache_dir("sdist-wheels", sdist.hexdigest, f"python{python}")
    with tempfile.TemporaryDirectory(prefix="tritonpack-sdist-") as tmp:
        source = _fetch(sdist, Path(tmp))
        out = Path(tmp) / "dist"
        env = proc.clean_env({"CC": NO_COMPILER, "CXX": NO_COMPILER,
                              "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH})
        try:
            UvBackend().build(source, interpreter, out, indexes, env)
        except ProcessError as exc:
            needed = needs(exc.output)
            if needed is None:
                raise BuildError(f"building {sdist.name}=={sdist.version} from its sdist failed",
                                 hint="run with --verbose for the build's output",
                                 detail=exc.detail) from exc
            raise _refused(sdist, needed, python) from exc
        wheels = sorted(out.glob("*.whl"))
        if len(wheels) != 1:
            raise BuildError(f"building {sdist.name}=={sdist.version} from its sdist made "
                             f"{len(wheels)} wheels, not one")
        if not wheels[0].name.endswith("-none-any.whl"):
            raise _refused(sdist, "a compiler (it builds a platform-specific wheel, "
                                  f"{wheels[0].name})", python)
        data = wheels[0].read_bytes()
        sha = "sha256:" + hashlib.sha256(data).hexdigest()
        atomic_write_bytes(entry_dir / wheels[0].name, data, mode=0o644)
        entry = {"sdist_url": sdist.url, "sdist_sha256": sdist.sha256, "python": python,
                 "wheel": wheels[0].name, "wheel_sha256": sha}
        atomic_write_bytes(entry_dir / "entry.json",
                           (json.dumps(entry, indent=2, sort_keys=True) + "\n").encode(),
                           mode=0o644)
    return BuiltWheel(entry_dir / wheels[0].name, sha)


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
