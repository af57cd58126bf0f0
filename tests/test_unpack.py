"""Triton could not unpack the environment: a full disk said as such (the log line is a real
one: a 40 MB tmpfs on /tmp in a mount namespace, tritonserver 2.51.0 of Triton 24.10)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from packer.verify.unpack import unpack_failure

from .conftest import FIXTURES

LOG = (FIXTURES / "logs" / "unpack_full.log").read_text()


def archive(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "tritonpack-env.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("lib/libbig.so")
        info.size = size
        tar.addfile(info, io.BytesIO(b"\0" * size))
    return path


def test_a_full_disk_is_named(tmp_path: Path) -> None:
    env = archive(tmp_path, 3 << 20)
    assert unpack_failure(LOG, env, 2 << 20, "/tmp") == (
        "Triton could not unpack the environment into /tmp: the disk is full "
        "(tritonpack-env.tar.gz unpacks to more than the 2 MB free there)")


def test_room_enough_names_libarchive_and_the_free_space(tmp_path: Path) -> None:
    env = archive(tmp_path, 1 << 20)
    assert unpack_failure(LOG, env, 50 << 20, "/tmp") == (
        "Triton could not unpack the environment into /tmp (archive_write_data_block(): Write "
        "failed) though it has room (50 MB free): check that /tmp is writable")
    assert unpack_failure("I1204 loading: m:1", env, 0, "/tmp") == ""
