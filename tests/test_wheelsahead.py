"""Work a cold build overlaps: the locked wheels fetched into uv's cache while the conda
packages install (hash-checked like the install, and only a shortcut: a failure is the real
install's to report), and the environment's size walked while it packs."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from packer.build import wheelsahead
from packer.core.errors import BuildError
from packer.lock.backend import Indexes
from packer.lock.lockfile import Lockfile
from packer.lock.pypi import Pin

from .wheels import make_wheel


def _lock(sha256: str) -> Lockfile:
    return Lockfile(inputs={}, target={"python": "3.10", "platform": "linux-64"},
                    resolver="uv", conda=(), pypi=(Pin("tp_ahead", "1.0", (f"sha256:{sha256}",)),))


def _wheel(tmp_path: Path) -> tuple[Path, str]:
    wheel = make_wheel(tmp_path / "wheels", "tp_ahead", {"tp_ahead/__init__.py": "X = 1\n"})
    return wheel, hashlib.sha256(wheel.read_bytes()).hexdigest()


def _unpacked(cache: Path) -> list[Path]:
    return sorted((cache / "uv").glob("archive-v0/*/tp_ahead/__init__.py"))


def test_the_locked_wheel_is_in_uvs_cache_after_the_block(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("TRITONPACK_CACHE", str(cache))
    wheel, sha = _wheel(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    with wheelsahead.fetched(_lock(sha), work, Indexes(find_links=(str(wheel.parent),))):
        pass
    [unpacked] = _unpacked(cache)  # what the install then links instead of fetching
    assert unpacked.read_text() == "X = 1\n"
    assert sorted(os.listdir(work)) == []  # its scratch target and requirements are gone


def test_a_wrong_hash_fetches_nothing_and_raises_nothing(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("TRITONPACK_CACHE", str(cache))
    wheel, _ = _wheel(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    # the block's own failure (the conda install's) comes out as it was, after the fetch
    with pytest.raises(BuildError, match=r"^the conda install failed$"), wheelsahead.fetched(
            _lock("0" * 64), work, Indexes(find_links=(str(wheel.parent),))):
        raise BuildError("the conda install failed")
    assert _unpacked(cache) == []  # refused as the install refuses it (which then says so)
    assert sorted(os.listdir(work)) == []


def test_the_platform_is_this_machines_glibc_within_uvs_names(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert re.fullmatch(r"(x86_64|aarch64)-manylinux_2_\d+", wheelsahead.uv_platform() or "")
    monkeypatch.setattr(wheelsahead.os, "confstr", lambda name: "glibc 2.41")
    assert wheelsahead.uv_platform() in ("x86_64-manylinux_2_40", "aarch64-manylinux_2_40")
    monkeypatch.setattr(wheelsahead.os, "confstr", lambda name: "glibc 2.12")
    assert wheelsahead.uv_platform() is None  # older than any manylinux uv names: not fetched
    monkeypatch.setattr(wheelsahead.os, "confstr", lambda name: None)  # musl: no glibc
    assert wheelsahead.uv_platform() is None


def test_the_environments_size_walked_meanwhile_is_its_size(tmp_path: Path) -> None:
    """The pack's summary rate: the prefix's megabytes, walked on a thread while it packs."""
    from packer.pack.stage import du_mb, du_mb_meanwhile

    (tmp_path / "env" / "lib").mkdir(parents=True)
    (tmp_path / "env" / "lib" / "a.so").write_bytes(b"x" * 300_000)
    (tmp_path / "env" / "b.py").write_bytes(b"y" * 200_000)
    walked = du_mb_meanwhile(tmp_path / "env")
    assert walked() == du_mb(tmp_path / "env") == 0.5
    assert du_mb_meanwhile(tmp_path / "gone")() == 0.0  # nothing there: no size, no error
