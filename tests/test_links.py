"""A directory env's files are hard links to the cache's (one environment on disk for every
model of one lock), a copy where a link is refused, and read-only (packer.core.integrity)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from packer.core.integrity import link_or_copy, seal


def test_a_file_on_the_same_file_system_is_linked(tmp_path: Path) -> None:
    src = tmp_path / "libfoo.so"
    src.write_bytes(b"\x7fELF" + bytes(4096))
    link_or_copy(src, tmp_path / "linked.so")
    assert (tmp_path / "linked.so").stat().st_ino == src.stat().st_ino
    assert src.stat().st_nlink == 2


def test_another_file_system_gets_a_copy(tmp_path: Path) -> None:
    """/dev/shm is a tmpfs: link(2) answers EXDEV from here, and the file is copied."""
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights" * 1000)
    src.chmod(0o444)
    other = Path(tempfile.mkdtemp(prefix="tritonpack-test-links-", dir="/dev/shm"))
    try:
        assert other.stat().st_dev != tmp_path.stat().st_dev  # what this test is about
        link_or_copy(src, other / "model.bin")
        copied = (other / "model.bin").stat()
        assert copied.st_ino != src.stat().st_ino and src.stat().st_nlink == 1
        assert (other / "model.bin").read_bytes() == src.read_bytes()
        assert stat.S_IMODE(copied.st_mode) == 0o444  # the mode travels with the bytes
    finally:
        shutil.rmtree(other)


def test_a_fifo_where_a_file_was_listed_is_not_linked(tmp_path: Path) -> None:
    """An entry swapped for a FIFO after it was listed: refused, and nothing left behind."""
    os.mkfifo(tmp_path / "swapped")
    with pytest.raises(OSError, match="is not a regular file"):
        link_or_copy(tmp_path / "swapped", tmp_path / "placed")
    assert not (tmp_path / "placed").exists()


def test_a_symlink_is_linked_as_itself_never_followed(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("key\n")
    (tmp_path / "entry").symlink_to(tmp_path / "secret")
    with pytest.raises(OSError, match="is not a regular file"):
        link_or_copy(tmp_path / "entry", tmp_path / "placed")
    assert not os.path.lexists(tmp_path / "placed")


def test_seal_clears_every_write_bit_of_files_only(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3.10").write_bytes(b"\x7fELF")
    (tmp_path / "bin" / "python3.10").chmod(0o775)
    (tmp_path / "lib.py").write_text("x = 1\n")
    (tmp_path / "lib.py").chmod(0o666)
    (tmp_path / "bin" / "python3").symlink_to("python3.10")
    seal(tmp_path)
    assert stat.S_IMODE((tmp_path / "bin" / "python3.10").stat().st_mode) == 0o555
    assert stat.S_IMODE((tmp_path / "lib.py").stat().st_mode) == 0o444
    assert stat.S_IMODE((tmp_path / "bin").stat().st_mode) & 0o200  # folders stay writable
    assert (tmp_path / "bin" / "python3").is_symlink()


@pytest.mark.parametrize("kernel", [True, False], ids=["copy_file_range", "refused"])
def test_an_archive_copy_is_a_new_inode_with_its_bytes_mode_and_times(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel: bool) -> None:
    """clone_or_copy copies inside the kernel (copy_file_range) where it may, through
    Python's buffers where the call is refused: the same bytes, mode and times either way,
    in a new inode (a model's archive never shares one with the cache)."""
    import errno

    from packer.core.integrity import clone_or_copy

    src = tmp_path / "env.tar.gz"
    src.write_bytes(os.urandom(3 << 20) + b"tail")
    src.chmod(0o640)
    os.utime(src, ns=(1_000_000_000, 2_000_000_000))
    calls: list[int] = []
    real = os.copy_file_range

    def copy_range(fi: int, fo: int, count: int) -> int:
        calls.append(count)
        if not kernel:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(fi, fo, count)

    monkeypatch.setattr(os, "copy_file_range", copy_range)
    clone_or_copy(src, tmp_path / "placed.tar.gz")
    placed = (tmp_path / "placed.tar.gz").stat()
    assert (tmp_path / "placed.tar.gz").read_bytes() == src.read_bytes()
    assert placed.st_ino != src.stat().st_ino
    assert stat.S_IMODE(placed.st_mode) == 0o640 and placed.st_mtime_ns == 2_000_000_000
    assert calls  # the kernel's copy was tried first
