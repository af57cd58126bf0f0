"""packer.archive.inflate: an archive read back through zlib-ng is the archive tarfile's own
``r:gz`` reads, member for member and byte for byte, and a broken one fails as it does."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import tarfile
import zlib
from pathlib import Path

import pytest

from packer.archive.inflate import read_targz
from packer.archive.targz import member


def _archive(tmp_path: Path) -> Path:
    """A tar of small and large members, written as several gzip members (zlib-ng's)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for i, size in enumerate((3, 70_000, 3 << 20, 0, 5 << 20)):
            info = tarfile.TarInfo(f"lib/f{i}")
            info.size = size
            tar.addfile(info, io.BytesIO(random.Random(i).randbytes(size // 2) + b"x" * (size // 2)
                                         + b"y" * (size % 2)))
    data = raw.getvalue()
    path = tmp_path / "env.tar.gz"
    path.write_bytes(b"".join(member(data[i:i + (1 << 20)], 5)
                              for i in range(0, len(data), 1 << 20)))
    return path


def _text_archive_flipped() -> bytes:
    """One member of a text file's tar, compressed (no stored block), bytes flipped in its
    middle: the inflate itself fails (a mere flip may still inflate, to a wrong CRC)."""
    raw = io.BytesIO()
    text = "".join(f"line {i}\n" for i in range(200_000)).encode()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("notes.txt")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    data = bytearray(member(raw.getvalue(), 5))
    data[len(data) // 2:len(data) // 2 + 64] = b"\xff" * 64  # "invalid block type"
    return bytes(data)


def _walk(tar: tarfile.TarFile) -> list[tuple[str, str]]:
    out = []
    for m in tar:
        fh = tar.extractfile(m)
        out.append((m.name, hashlib.sha256(fh.read() if fh else b"").hexdigest()))
    return out


def test_the_same_members_and_bytes_as_tarfiles_reader(tmp_path: Path) -> None:
    path = _archive(tmp_path)
    with read_targz(path) as ours, tarfile.open(path, "r:gz") as theirs:
        assert _walk(ours) == _walk(theirs)
    assert ours.gz is not None and ours.gz.closed  # type: ignore[attr-defined]


def test_a_member_read_again_seeks_back_to_the_same_bytes(tmp_path: Path) -> None:
    with read_targz(_archive(tmp_path)) as tar:
        members = [m for m in tar if m.size > (1 << 20)]
        first = [tar.extractfile(m).read() for m in members]  # type: ignore[union-attr]
        again = [tar.extractfile(m).read() for m in reversed(members)]  # type: ignore[union-attr]
    assert first == list(reversed(again)) and len(first[0]) == members[0].size


@pytest.mark.parametrize(("damage", "error", "text"), [
    (lambda b: b[: len(b) // 2], EOFError, "Compressed file ended before the end-of-stream"),
    (lambda b: b[:len(b) // 3] + bytes(x ^ 0x5A for x in b[len(b) // 3:len(b) // 3 + 2000])
     + b[len(b) // 3 + 2000:], gzip.BadGzipFile, "CRC check failed"),  # stored: no inflate error
    (lambda b: _text_archive_flipped(), zlib.error, "Error -3 while decompressing data"),
    (lambda b: b"hello world\n" * 9, tarfile.ReadError, "not a gzip file"),
    (lambda b: b"\0" * 10 + b, tarfile.ReadError, "not a gzip file"),  # no padding before
    (lambda b: b"", tarfile.ReadError, "empty file"),
])
def test_a_broken_archive_fails_as_tarfiles_reader_does(tmp_path: Path, damage: object,
                                                         error: type[Exception],
                                                         text: str) -> None:
    path = _archive(tmp_path)
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(error, match=text), tarfile.open(path, "r:gz") as theirs:
        _walk(theirs)
    with pytest.raises(error, match=text), read_targz(path) as ours:
        _walk(ours)


def test_zero_padding_after_the_last_member_is_skipped(tmp_path: Path) -> None:
    path = _archive(tmp_path)
    with tarfile.open(path, "r:gz") as theirs:
        want = _walk(theirs)
    path.write_bytes(path.read_bytes() + b"\0" * 4096)
    with read_targz(path) as tar:
        assert _walk(tar) == want
    assert gzip.decompress(path.read_bytes())  # the stdlib agrees it is one gzip file
