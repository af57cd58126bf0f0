"""Locks whose conda packages agree share a shelf of rattler's package cache; a lock with
another archive under the same name-version-build goes to a shelf of its own (build/shelves)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from packer.build import shelves
from packer.lock.conda import CondaPackage


def pkg(name: str, version: str, sha: str, build: str = "h0") -> CondaPackage:
    return CondaPackage(name=name, version=version, build=build, build_number=0,
                        subdir="linux-64", url=f"https://conda.example/{name}.conda",
                        sha256=sha * 64, channel="https://conda.example",
                        file_name=f"{name}-{version}-{build}.conda")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRITONPACK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_locks_that_agree_share_one_shelf(cache: Path) -> None:
    py310, numpy, yaml = pkg("python", "3.10.15", "a"), pkg("numpy", "1.26.4", "b"), \
        pkg("pyyaml", "6.0.1", "c")
    assert shelves.assign([py310, numpy]) == "shelf-0"
    assert shelves.assign([py310, numpy, yaml]) == "shelf-0"  # a superset: the same folders
    assert shelves.assign([py310]) == "shelf-0"
    manifest = json.loads((cache / "pkgs" / "shelves.json").read_text())
    assert manifest == {"shelf-0": {"python-3.10.15-h0": "a" * 64, "numpy-1.26.4-h0": "b" * 64,
                                    "pyyaml-6.0.1-h0": "c" * 64}}


def test_another_archive_under_the_same_name_gets_another_shelf(cache: Path) -> None:
    """A local Python made from another CPython: python-3.10.15-h0 with other bytes."""
    ours, theirs, numpy = pkg("python", "3.10.15", "a"), pkg("python", "3.10.15", "d"), \
        pkg("numpy", "1.26.4", "b")
    assert shelves.assign([ours, numpy]) == "shelf-0"
    assert shelves.assign([theirs, numpy]) == "shelf-1"
    assert shelves.assign([ours]) == "shelf-0" and shelves.assign([theirs]) == "shelf-1"
    manifest = json.loads((cache / "pkgs" / "shelves.json").read_text())
    assert manifest["shelf-0"]["python-3.10.15-h0"] == "a" * 64
    assert manifest["shelf-1"]["python-3.10.15-h0"] == "d" * 64


def test_a_lost_manifest_never_reuses_a_shelf_on_disk(cache: Path) -> None:
    """Without its record, what a shelf holds is unknown: a new shelf is made beside it."""
    assert shelves.assign([pkg("python", "3.10.15", "a")]) == "shelf-0"
    (cache / "pkgs" / "shelf-0").mkdir()
    (cache / "pkgs" / "shelves.json").write_text("not json")
    assert shelves.assign([pkg("python", "3.10.15", "d")]) == "shelf-1"
    assert list(json.loads((cache / "pkgs" / "shelves.json").read_text())) == ["shelf-1"]


@pytest.mark.parametrize("name", ["shelf-/../../../escaped", "shelf-0/../../../escaped",
                                  "shelf-\N{SUPERSCRIPT TWO}", "shelf-" + "9" * 5000,
                                  "[" * 100_000 + "]" * 100_000])
def test_a_hostile_manifest_never_names_a_folder_outside_pkgs(cache: Path, name: str) -> None:
    """A shelf is only ever named as tritonpack names one: a planted key that would lead the
    install out of pkgs (or crash the shelves' ordering) is not a shelf."""
    (cache / "pkgs").mkdir(parents=True)
    manifest = json.dumps({name: {}, "shelf-3": [1]}) if name[0] != "[" else name  # nested
    (cache / "pkgs" / "shelves.json").write_text(manifest)
    assert shelves.assign([pkg("python", "3.10.15", "a")]) == "shelf-0"
    assert not (cache.parent / "escaped").exists()
    assert list(json.loads((cache / "pkgs" / "shelves.json").read_text())) == ["shelf-0"]


def test_a_shelf_planted_as_a_link_is_never_extracted_into(cache: Path, tmp_path: Path) -> None:
    """pkgs/shelf-0 -> a folder of the user's: rattler would extract there, replacing a
    folder of the package's name; the lock goes to a shelf of its own instead."""
    assert shelves.assign([pkg("python", "3.10.15", "a")]) == "shelf-0"
    (tmp_path / "victim").mkdir()
    (cache / "pkgs" / "shelf-0").symlink_to(tmp_path / "victim")
    assert shelves.assign([pkg("python", "3.10.15", "a")]) == "shelf-1"
    (cache / "pkgs" / "shelf-2").symlink_to(tmp_path / "gone")  # dangling: no new shelf there
    assert shelves.assign([pkg("python", "3.10.15", "d")]) == "shelf-3"
