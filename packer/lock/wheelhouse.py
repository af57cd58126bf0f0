"""A ``--find-links`` directory's wheels, offered to ``uv pip compile`` with their sha256.

uv has no hash for a file it finds in a local ``--find-links`` directory, and with
``--generate-hashes`` it gets one by unpacking the whole wheel into its cache: 700 MB
written (12 s on 2 busy cores) for a 190 MB CPU torch wheel, at every lock with a fresh
cache, where pip-tools reads the file once (0.4 s). A wheel on an index comes with its
sha256 and uv reads its metadata without unpacking it, so the lock resolves twice: once
without hashes, which says where each pin came from (``--emit-index-annotation``), then
with hashes, every version held by the first pass's pins (a constraint file: the same
solution), the local directories left out and the wheels the first pass took from them
listed, with their sha256 computed here, on a local index (``file://``, PEP 503) that uv
asks first. Nothing else changes: the versions are the first pass's, which resolved with
``--find-links`` as given; the lock records ``--find-links`` as given, and the install
reads the directory as before.
"""

from __future__ import annotations

import html
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ..core.integrity import sha256_file

if TYPE_CHECKING:  # backend runs the passes and imports this module
    from .backend import Indexes

__all__ = ["ANNOTATION", "Hasher", "constraints", "likely", "local_dirs", "plan", "same_dir",
           "write_index"]

# uv's line under a pin naming where it came from (``--emit-index-annotation``)
ANNOTATION = "# from "


def local_dirs(indexes: Indexes) -> tuple[Path, ...]:
    """The ``--find-links`` entries that are directories on this machine (a path or a
    ``file://`` URL) holding at least one wheel: the ones uv would unpack to hash."""
    found: list[Path] = []
    for link in indexes.find_links:
        folder = _folder(link)
        if folder is not None and any(folder.glob("*.whl")):
            found.append(folder)
    return tuple(found)


def _folder(link: str) -> Path | None:
    if link.startswith("file://"):
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(link).path))
    elif "://" in link:
        return None
    else:
        path = Path(link)
    return path if path.is_dir() else None


def same_dir(link: str, folder: Path) -> bool:
    """Whether the ``--find-links`` entry ``link`` names the directory ``folder``."""
    return _folder(link) == folder


def pins_from_links(text: str, indexes: Indexes) -> tuple[dict[str, str], dict[str, str]]:
    """From uv's annotated requirements file (no hashes): every pin (name -> version) and
    the pins it took from a ``--find-links`` location (any source that is not an index)."""
    indexes_named = {u.rstrip("/") for u in (indexes.index_url, *indexes.extra_index_urls)}
    pins: dict[str, str] = {}
    linked: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        stripped = line.strip()
        if line and not line[0].isspace() and not stripped.startswith(("#", "-")):
            name, _, version = stripped.split(";", 1)[0].split()[0].partition("==")
            last = str(canonicalize_name(name.split("[", 1)[0]))
            pins[last] = version
        elif stripped.startswith(ANNOTATION) and last and \
                stripped.removeprefix(ANNOTATION).rstrip("/") not in indexes_named:
            linked[last] = pins[last]
    return pins, linked


def plan(text: str, indexes: Indexes, dirs: Sequence[Path], from_source: Sequence[str] = (),
         ) -> tuple[dict[str, str], dict[str, list[Path]]] | None:
    """The first pass's pins and, for each it took from a ``--find-links`` location, the
    wheels of that version in ``dirs``; None when the second pass cannot be served so: a pin
    without a version (a direct URL), one built from its sdist (``from_source``: a wheel of
    it there is for another platform), one with no wheel there (an sdist, a remote
    location), which uv hashes as it did, or none from the directories at all."""
    pins, linked = pins_from_links(text, indexes)
    built = {str(canonicalize_name(n)) for n in from_source}
    if not linked or not all(pins.values()) or built & linked.keys():
        return None
    wheels = served(linked, dirs)
    return None if wheels is None else (pins, wheels)


def served(linked: dict[str, str], dirs: Sequence[Path]) -> dict[str, list[Path]] | None:
    """For each pin taken from a ``--find-links`` location, the wheels of that version in
    ``dirs``; None when one has none there."""
    wheels: dict[str, list[Path]] = {name: [] for name in linked}
    for folder in dirs:
        for path in sorted(folder.glob("*.whl")):
            try:
                name, version, _, _ = parse_wheel_filename(path.name)
                wanted = linked.get(str(name))
                if wanted is not None and version == Version(wanted) and path.is_file():
                    wheels[str(name)].append(path)
            except (InvalidWheelFilename, InvalidVersion):
                continue
    return wheels if all(wheels.values()) else None


def likely(requirements: Sequence[str], dirs: Sequence[Path]) -> list[Path]:
    """The wheels in ``dirs`` of a requirement's name, of the newest version it allows there:
    the ones the second pass most likely lists (a wheelhouse's torch), hashed meanwhile. One
    version a name, so a wheelhouse of many torch releases costs one release's read."""
    wanted = {}
    for line in requirements:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        wanted[canonicalize_name(req.name)] = req.specifier
    found: dict[str, tuple[Version, list[Path]]] = {}
    for folder in dirs:
        for path in sorted(folder.glob("*.whl")):
            try:
                name, version, _, _ = parse_wheel_filename(path.name)
            except (InvalidWheelFilename, InvalidVersion):
                continue
            allowed = wanted.get(name)
            if allowed is None or not allowed.contains(version, prereleases=True) \
                    or not path.is_file():
                continue
            newest = found.get(name)
            if newest is None or version > newest[0]:
                found[name] = (version, [path])
            elif version == newest[0]:
                newest[1].append(path)
    return [path for _, paths in found.values() for path in paths]


class Hasher:
    """The sha256 of the wheels ``likely`` names, read on a thread while uv's first pass runs
    (hashlib and the reads release the GIL): the torch wheel's 0.2-0.4 s no longer adds to
    the lock's. Any other wheel is read when asked for."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="wheel-sha256")
        self._ahead: dict[Path, Future[str]] = {p: self._pool.submit(sha256_file, p)
                                                for p in paths}

    def sha256(self, path: Path) -> str:
        ahead = self._ahead.get(path)
        return ahead.result() if ahead is not None else sha256_file(path)

    def __enter__(self) -> Hasher:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)  # one read at most to finish


def write_index(root: Path, wheels: dict[str, list[Path]], hasher: Hasher) -> str:
    """A PEP 503 index under ``root`` listing ``wheels`` by ``file://`` URL with their
    sha256 (``hasher``'s: each file read once); returns its URL for uv. A wheel's link is
    its path in the directory, never where a symlink leads: uv reads the name and tags from
    the URL's last part, and a wheelhouse may link its wheels to files named otherwise."""
    simple = root / "simple"
    for name, paths in wheels.items():
        page = simple / name
        page.mkdir(parents=True, exist_ok=True)
        links = "".join(
            f'<a href="{html.escape(p.absolute().as_uri())}#sha256={hasher.sha256(p)}">'
            f"{html.escape(p.name)}</a>\n" for p in paths)
        (page / "index.html").write_text(
            f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n", encoding="utf-8")
    return simple.resolve().as_uri()


def constraints(pins: dict[str, str]) -> str:
    """The first pass's solution as a constraint file: the second resolves to it."""
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))
