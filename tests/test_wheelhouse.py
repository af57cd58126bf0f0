"""A --find-links directory's wheels are locked by uv from their own sha256, never unpacked.

uv hashes a wheel found in a local --find-links directory by unpacking it whole into its cache
(the 190 MB CPU torch wheel: 700 MB written, 8-12 s); tritonpack resolves without hashes
first, then gives uv those wheels on a local index with their sha256 (packer.lock.wheelhouse).
The lock is the same as before; a newer version on the index still wins over an older wheel
in the directory, as with --find-links.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
from collections.abc import Iterator
from pathlib import Path

import pytest

from packer.core import network
from packer.core.cachehome import cache_dir
from packer.core.errors import BuildError
from packer.lock import wheelhouse
from packer.lock.backend import Indexes
from packer.lock.pypi import compile_pins, parse_requirements
from packer.resolve.target import Target

from .loopback import serving
from .wheels import make_sdist, make_wheel

TARGET = Target("24.10", "3.11", "12.6.2", "", "linux-64", "2.35", "3.4.30", "image", "none")
MARKER = "tp_wheelhouse_marker_3f9c.py"  # a file no other wheel holds: found if unpacked


def _unpacked(name: str) -> list[Path]:
    """Files uv's cache holds of an unpacked wheel named ``name``."""
    return list(cache_dir("uv").glob(f"archive-v0/*/{name}"))


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of this test's own: what uv unpacked is this lock's doing."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("TRITONPACK_CACHE", str(cache))
    return cache


@pytest.mark.slow
def test_a_find_links_wheel_is_locked_by_its_sha256_without_unpacking(
        tmp_path: Path, fresh_cache: Path) -> None:
    """The wheel (which needs six from PyPI) is pinned with its file's sha256, its dependency
    with PyPI's hashes, and uv's cache holds no unpacked copy of it; --offline, the same."""
    links = tmp_path / "links"
    wheel = make_wheel(links, "tp_wheelhouse_probe", {MARKER: "X = 1\n"}, requires=("six",))
    pins = {p.name: p for p in compile_pins(
        "uv", ["tp-wheelhouse-probe"], TARGET, Indexes(find_links=(str(links),)))}
    assert sorted(pins) == ["six", "tp-wheelhouse-probe"]
    assert pins["tp-wheelhouse-probe"].hashes == (_sha256(wheel),)
    assert pins["six"].hashes  # PyPI's, as before
    assert _unpacked(MARKER) == []
    network.set_offline(True)  # then from uv's cache alone: the same lock
    try:
        again = compile_pins("uv", ["tp-wheelhouse-probe"], TARGET,
                             Indexes(find_links=(str(links),)))
    finally:
        network.set_offline(False)
    assert {p.name: p for p in again} == pins


@pytest.mark.slow
def test_a_newer_version_on_the_index_still_wins_over_the_directory(
        tmp_path: Path, fresh_cache: Path) -> None:
    """--find-links adds candidates, it does not shadow the index: an old six in the
    directory loses to PyPI's newer one; pinned to the old one, the directory's is locked."""
    links = tmp_path / "links"
    old = make_wheel(links, "six", {MARKER: "X = 1\n"}, version="0.0.1")
    (newest,) = compile_pins("uv", ["six"], TARGET, Indexes(find_links=(str(links),)))
    assert newest.version != "0.0.1" and _sha256(old) not in newest.hashes
    (pinned,) = compile_pins("uv", ["six==0.0.1"], TARGET,
                             Indexes(find_links=(links.as_uri(),)))
    assert (pinned.version, pinned.hashes) == ("0.0.1", (_sha256(old),))
    assert _unpacked(MARKER) == []


@pytest.fixture
def index_without_hashes(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback PEP 503 index serving one wheel, tpnohash, with no sha256 in its links:
    uv downloads such a file to hash it, which the second pass from the cache cannot."""
    root = tmp_path / "index"
    wheel = make_wheel(root / "files", "tpnohash", {"tpnohash.py": "X = 1\n"})
    (root / "simple" / "tpnohash").mkdir(parents=True)
    (root / "simple" / "tpnohash" / "index.html").write_text(
        f'<html><body><a href="/files/{wheel.name}">{wheel.name}</a></body></html>\n')

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    with serving(functools.partial(Quiet, directory=str(root))) as url:
        yield f"{url}/simple", wheel


@pytest.mark.slow
def test_a_dependency_from_an_index_without_hashes_is_hashed_on_the_network(
        tmp_path: Path, fresh_cache: Path, index_without_hashes: tuple[str, Path]) -> None:
    """The second pass reads uv's cache alone; an index that publishes no hashes sends it
    back to the network (uv downloads the file to hash it), and the lock has every hash."""
    url, nohash = index_without_hashes
    links = tmp_path / "links"
    probe = make_wheel(links, "tpprobe", {MARKER: "X = 1\n"}, requires=("tpnohash",))
    pins = {p.name: p.hashes for p in compile_pins(
        "uv", ["tpprobe"], TARGET, Indexes(extra_index_urls=(url,), find_links=(str(links),)))}
    assert pins == {"tpnohash": (_sha256(nohash),), "tpprobe": (_sha256(probe),)}
    assert _unpacked(MARKER) == []


@pytest.mark.slow
def test_a_package_built_from_its_sdist_is_resolved_as_before(
        tmp_path: Path, fresh_cache: Path) -> None:
    """A directory holding a package's sdist and, of the same version, a wheel for another
    platform only: resolved from the sdist in one hashed pass as before (a local index of the
    directory's wheels offered the macOS wheel alone: 'has no source distribution'). uv
    locks that sdist without a hash, which tritonpack refuses as it did."""

    links = tmp_path / "links"
    name = "tp_wh_srcprobe"
    mac = make_wheel(links, name, {f"{name}.py": ""})
    mac.rename(links / f"{name}-1.0-py3-none-macosx_11_0_arm64.whl")
    make_sdist(links, name)
    with pytest.raises(BuildError) as caught:
        compile_pins("uv", ["tp-wh-srcprobe"], TARGET, Indexes(find_links=(str(links),)))
    assert str(caught.value) == (
        "tp-wh-srcprobe==1.0 is published only as source, and no index or --find-links "
        "location holds the sdist the resolver chose")


FIRST_PASS = """\
six==1.17.0
    # from https://pypi.org/simple
torch==2.13.0+cpu
    # from file:///opt/wheels
"""


def test_the_first_pass_names_the_pins_taken_from_a_directory(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "torch", {"torch/__init__.py": ""}, version="2.13.0+cpu")
    make_wheel(tmp_path, "torch", {"torch/__init__.py": ""}, version="2.12.0")
    found = wheelhouse.plan(FIRST_PASS, Indexes(find_links=("/opt/wheels",)), (tmp_path,))
    assert found == ({"six": "1.17.0", "torch": "2.13.0+cpu"}, {"torch": [wheel]})
    with wheelhouse.Hasher([]) as hasher:
        index = wheelhouse.write_index(tmp_path / "index", found[1], hasher)
    page = Path(index.removeprefix("file://"))
    assert (f'{wheel.as_uri()}#sha256={_sha256(wheel).split(":")[1]}"'
            in (page / "torch" / "index.html").read_text())


@pytest.mark.parametrize("text", [
    FIRST_PASS.replace("2.13.0+cpu", "2.14.0"),  # that version is not in the directory
    "six==1.17.0\n    # from https://pypi.org/simple\n",  # nothing from the directory
    FIRST_PASS + "probe @ https://example.org/probe.whl\n",  # a direct URL: no version
], ids=["no-wheel-of-that-version", "none-from-links", "direct-url"])
def test_uv_hashes_as_before_when_the_directory_cannot_serve_the_pins(
        tmp_path: Path, text: str) -> None:
    make_wheel(tmp_path, "torch", {"torch/__init__.py": ""}, version="2.13.0+cpu")
    assert wheelhouse.plan(text, Indexes(find_links=("/opt/wheels",)), (tmp_path,)) is None


def test_the_wheels_a_requirement_allows_are_hashed_ahead(tmp_path: Path) -> None:
    """Hashed while uv's first pass runs: the pinned torch, not the other version, nor a wheel
    no requirement names; unpinned, the newest only; a wheel not hashed ahead is read when
    asked for."""
    pinned = make_wheel(tmp_path, "torch", {"torch/__init__.py": ""}, version="2.13.0+cpu")
    other = make_wheel(tmp_path, "torch", {"torch/__init__.py": ""}, version="2.12.0")
    make_wheel(tmp_path, "tpunnamed", {"tpunnamed.py": ""})
    assert wheelhouse.likely(["torch==2.12.0", "six", "not a requirement"],
                             (tmp_path,)) == [other]
    assert wheelhouse.likely(["torch", "six"], (tmp_path,)) == [pinned]
    with wheelhouse.Hasher([pinned]) as hasher:
        assert [hasher.sha256(pinned), hasher.sha256(other)] == [
            _sha256(pinned).split(":")[1], _sha256(other).split(":")[1]]


def _linked_wheel(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A --find-links directory whose wheel is a symlink to a file named by its digest (a
    content-addressed wheel store): the link is ``name``'s wheel, the target no wheel name."""
    store, links = tmp_path / "store", tmp_path / "links"
    links.mkdir()
    built = make_wheel(store, name, {f"{name}_m.py": "X = 1\n"})
    blob = built.rename(store / hashlib.sha256(built.read_bytes()).hexdigest())
    (links / built.name).symlink_to(blob)
    return links / built.name, blob


def test_a_symlinked_wheel_is_listed_by_its_own_name(tmp_path: Path) -> None:
    """uv takes a wheel's name and version from its URL: the link's, never its target's."""
    link, blob = _linked_wheel(tmp_path, "tp_wh_linked")
    with wheelhouse.Hasher([]) as hasher:
        index = wheelhouse.write_index(tmp_path / "index", {"tp-wh-linked": [link]}, hasher)
    page = (Path(index.removeprefix("file://")) / "tp-wh-linked" / "index.html").read_text()
    assert f'{link.as_uri()}#sha256={_sha256(blob).split(":")[1]}"' in page


@pytest.mark.slow
def test_a_symlinked_find_links_wheel_is_locked_by_its_targets_sha256(
        tmp_path: Path, fresh_cache: Path) -> None:
    """Listed by its target's path, uv found no wheel on the local index: 'not found on the
    index' (or, for a name PyPI has, PyPI's hashes in the lock)."""
    link, blob = _linked_wheel(tmp_path, "tp_wh_linked")
    pins = compile_pins("uv", ["tp-wh-linked"], TARGET, Indexes(find_links=(str(link.parent),)))
    assert [(p.name, p.hashes) for p in pins] == [("tp-wh-linked", (_sha256(blob),))]


def test_one_wheel_under_two_names_is_one_hash(tmp_path: Path) -> None:
    """A wheelhouse holding the same file under two tags (copied for another platform): the
    local index lists both files, uv names the one sha256 twice; the lock, as before the
    index, names it once."""
    wheel = make_wheel(tmp_path, "tp_wh_twice", {"tp_wh_twice.py": ""})
    text = (f"tp-wh-twice==1.0 \\\n    --hash={_sha256(wheel)} \\\n    --hash={_sha256(wheel)}\n"
            "    # from file:///tmp/index/simple\n")
    [pin] = parse_requirements(text)
    assert pin.hashes == (_sha256(wheel),)


@pytest.mark.slow
def test_a_wheel_copied_under_another_tag_is_locked_with_one_hash(
        tmp_path: Path, fresh_cache: Path) -> None:
    links = tmp_path / "links"
    wheel = make_wheel(links, "tp_wh_twice", {"tp_wh_twice.py": ""})
    (links / wheel.name.replace("py3-none-any", "py311-none-any")).write_bytes(wheel.read_bytes())
    pins = compile_pins("uv", ["tp-wh-twice"], TARGET, Indexes(find_links=(str(links),)))
    assert [(p.name, p.hashes) for p in pins] == [("tp-wh-twice", (_sha256(wheel),))]
