"""packer.archive.inflate: an archive read back through zlib-ng is the archive tarfile's own
``r:gz`` reads, member for member and byte for byte, and a broken one fails as it does."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import tarfile
import time
import zlib
from pathlib import Path

import pytest

from packer.archive.inflate import read_targz
from packer.archive.targz import member

from .conftest import run_cli


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


def _reframed(data: bytes, flags: int, fields: bytes) -> bytes:
    """The first member's header given ``flags`` and the optional ``fields`` they announce."""
    return data[:3] + bytes([data[3] | flags]) + data[4:10] + fields + data[10:]


def _stdlib(path: Path) -> tarfile.TarFile:
    return tarfile.open(path, "r:gz")


def _outcome(opener: object, path: Path) -> tuple[str, str] | list[tuple[str, str]]:
    """What walking the archive gives: its members, or the error's type and words."""
    try:
        with opener(path) as tar:  # type: ignore[operator]
            return _walk(tar)
    except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("damage", [
    lambda b: b[:-8] + b"\xef\xbe\xad\xde" + b[-4:],  # the last member's CRC
    lambda b: b[:-4] + ((int.from_bytes(b[-4:], "little") + 1) & 0xFFFFFFFF).to_bytes(4, "little"),
    lambda b: b[:2] + b"\x07" + b[3:],  # compression method 7
    lambda b: b + b"GARBAGE",  # after the last member
    lambda b: b + b"\x1f",  # half a magic after it
    lambda b: b + b"\x1f\x8b\x08\x08\0\0\0\0\0\xffname-without-its-end",  # a header cut short
    lambda b: b[:-3],  # a trailer cut short
    lambda b: _reframed(b, 4 | 8 | 16, b"\x04\x00AB\x00\x00name\x00comment\x00"),  # read past
    lambda b: _reframed(b, 2, b"\x00\x00"),  # a header CRC: not checked, as gzip does not
    lambda b: _reframed(b, 0x20, b""),  # a reserved flag: ignored, as gzip does
], ids=["crc", "length", "method", "garbage", "half-magic", "cut-header", "cut-trailer",
        "extra-name-comment", "header-crc", "reserved-flag"])
def test_gzip_framing_is_read_in_gzips_own_words(tmp_path: Path, damage: object) -> None:
    """The same members, or the same error in the same words (``inspect`` and ``check``
    print them): zlib-ng's own ("incorrect data check", "header crc mismatch") never."""
    path = _archive(tmp_path)
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    assert _outcome(read_targz, path) == _outcome(_stdlib, path)


def test_inspect_names_a_small_archives_wrong_crc_in_gzips_words(tmp_path: Path) -> None:
    """One member smaller than a read: its CRC is checked at the read after its last byte,
    as gzip does, not while tarfile opens the archive (then 'not a gzip file', no entries)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name in ("bin/python3", "bin/activate", "lib/libpython3.10.so.1.0",
                     "lib/python3.10/site-packages/numpy/__init__.py",
                     "lib/python3.10/site-packages/numpy-1.26.4.dist-info/METADATA"):
            tar.addfile(tarfile.TarInfo(name))
    data = member(raw.getvalue(), 5)
    path = tmp_path / "env.tar.gz"
    path.write_bytes(data[:-8] + b"\xef\xbe\xad\xde" + data[-4:])
    res = run_cli("inspect", "--triton", "24.10", path)
    assert res.exit_code == 1
    assert [line for line in res.stdout.splitlines() if line.startswith("  error")] == [
        "  error    env.tar.gz is truncated or corrupted: CRC check failed 0xdeadbeef != "
        f"{zlib.crc32(raw.getvalue()):#x}"]


def test_many_tiny_members_are_read_in_linear_time(tmp_path: Path) -> None:
    """200,000 empty members before the archive's own: a reader that copies what is left of
    a 1 MiB read at each member's header and end took 22 s for 300,000 here, gzip 0.75 s."""
    path = _archive(tmp_path)
    path.write_bytes(gzip.compress(b"", mtime=0) * 200_000 + path.read_bytes())

    def timed(opener: object) -> tuple[float, object]:
        start = time.perf_counter()
        walked = _outcome(opener, path)
        return time.perf_counter() - start, walked

    theirs, want = timed(_stdlib)
    ours, got = timed(read_targz)
    assert got == want
    assert ours < 4 * theirs + 1, (ours, theirs)


def _pax_archive(path: Path, pax: bytes, *, gz: bool = True) -> Path:
    """An archive whose first entry is a pax header holding ``pax`` verbatim, then a file."""
    raw = io.BytesIO()
    head = tarfile.TarInfo("././@PaxHeader")
    head.type, head.size = tarfile.XHDTYPE, len(pax)
    raw.write(head.tobuf(tarfile.USTAR_FORMAT) + pax + bytes(-len(pax) % 512))
    body = tarfile.TarInfo("bin/python3")
    body.size = 3
    raw.write(body.tobuf(tarfile.USTAR_FORMAT) + b"abc" + bytes(509) + bytes(1024))
    path.write_bytes(gzip.compress(raw.getvalue()) if gz else raw.getvalue())
    return path


def test_a_pax_header_that_would_backtrack_is_refused_at_once(tmp_path: Path) -> None:
    """CVE-2024-6232: CPython's tarfile before 3.11.10 spins for hours on half a megabyte of
    digits in a pax header (here it is checked in linear time first). The gate refuses it as
    an unreadable archive, in well under a second, gzip'd or plain."""
    import time

    from packer.envcheck.inspect import first_unsafe_entry

    for gz, mode in ((True, "r:gz"), (False, "r:")):
        bad = _pax_archive(tmp_path / f"bad{mode[2:]}.tar", b"1" * (512 << 10), gz=gz)
        t0 = time.monotonic()
        assert first_unsafe_entry(bad, mode=mode) == \
            "an unreadable archive (a malformed pax header)"
        assert time.monotonic() - t0 < 5
    huge = _pax_archive(tmp_path / "huge.tar.gz", b"9" * (2 << 20))
    assert first_unsafe_entry(huge) == f"an unreadable archive (a pax header of {2 << 20} bytes)"


def test_a_well_formed_pax_header_is_read_as_tarfile_reads_it(tmp_path: Path) -> None:
    long_name = "lib/" + "d" * 300 + "/x.py"
    record = f" path={long_name}\n".encode()
    size = len(record) + len(str(len(record)))
    record = str(size if len(str(size)) == len(str(len(record))) else size + 1).encode() + record
    good = _pax_archive(tmp_path / "good.tar.gz", record)
    with read_targz(good) as ours, tarfile.open(good, "r:gz") as theirs:
        assert [m.name for m in ours] == [m.name for m in theirs] == [long_name]
