"""A pack store's signing key (core.storefile.store_secret): whoever can read it can sign
entries the store then trusts, so only a key this user alone can read and write is one."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from packer.core.storefile import store_secret


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_key_is_made_once_for_this_user_alone(tmp_path: Path) -> None:
    key = store_secret(tmp_path / "store", "pyc.key")
    assert key is not None and len(key) == 32
    assert _mode(tmp_path / "store" / "pyc.key") == 0o600
    assert store_secret(tmp_path / "store", "pyc.key") == key


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o606, 0o620])
def test_a_key_others_could_read_or_write_is_replaced(tmp_path: Path, mode: int) -> None:
    """Its signatures would be anyone's: a new key, so what it signed is vetted again."""
    path = tmp_path / "pyc.key"
    path.write_bytes(b"k" * 32)
    path.chmod(mode)
    key = store_secret(tmp_path, "pyc.key")
    assert key is not None and key != b"k" * 32
    assert path.read_bytes() == key and _mode(path) == 0o600


def test_a_symlinked_key_is_replaced_and_its_target_left_alone(tmp_path: Path) -> None:
    """A link to another cache's key (or to any 32 bytes someone chose) signs nothing."""
    other = tmp_path / "other.key"
    other.write_bytes(b"o" * 32)
    other.chmod(0o600)
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "pyc.key").symlink_to(other)
    key = store_secret(tmp_path / "store", "pyc.key")
    assert key is not None and key != b"o" * 32
    assert not (tmp_path / "store" / "pyc.key").is_symlink()
    assert other.read_bytes() == b"o" * 32


def test_a_key_being_written_is_left_to_its_writer(tmp_path: Path) -> None:
    path = tmp_path / "pyc.key"
    path.write_bytes(b"")
    path.chmod(0o600)
    assert store_secret(tmp_path, "pyc.key") is None
    assert path.read_bytes() == b""


def test_runs_at_once_share_one_key(tmp_path: Path) -> None:
    got: list[bytes | None] = []
    threads = [threading.Thread(target=lambda: got.append(store_secret(tmp_path, "pyc.key")))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(got) == 8 and {k for k in got if k is not None} == {(tmp_path / "pyc.key")
                                                                  .read_bytes()}


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_another_users_key_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "pyc.key"
    path.write_bytes(b"u" * 32)
    path.chmod(0o600)
    os.chown(path, 12345, 12345)
    key = store_secret(tmp_path, "pyc.key")
    assert key is not None and key != b"u" * 32 and path.stat().st_uid == os.geteuid()
