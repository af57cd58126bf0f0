"""The symbol versions an ELF file needs (GLIBC_2.34, GLIBCXX_3.4.30), read from its
.gnu.version_r section with struct: nothing is loaded or run.

A file on disk is parsed through mmap: only the pages holding the header, the section
table and the version tables are read, not the whole file (torch's libtorch_cpu.so is
over 400 MB, and every pack inspects the environment). An archive member is streamed
(:func:`stream_version_needs`): memory stays bounded whatever the archive claims, and a
large one is not written to disk either (its first and last bytes hold what is read)."""

from __future__ import annotations

import mmap
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path
from typing import IO

SHT_GNU_VERNEED = 0x6FFFFFFE
MAGIC = b"\x7fELF"
MAX_MEMBER = 8 << 30  # no shared library is this large; a bigger member is not read
# a larger member keeps its first and last WINDOW bytes in memory: linkers put the version
# tables just after the symbol tables (libtorch_cpu.so: within its first 7.6 MB of 414),
# patchelf (auditwheel) moves the string table to the end, the section table is last
WINDOW = 16 << 20
Read = Callable[[int, int], bytes | bytearray]  # (offset, length) -> the file's bytes there


class _Outside(Exception):
    """A read of a large member's middle, which the windows did not keep."""


class ElfError(ValueError):
    """A file that starts with the ELF magic but does not parse as ELF."""


def version_needs(data: bytes | bytearray | mmap.mmap) -> set[str]:
    """Versions named in the file's version-needed table.

    Empty for a file that is not ELF, or a big-endian one (not a platform Triton runs on);
    ElfError for a file with the ELF magic whose tables do not parse: it would not load."""
    if data[:4] != MAGIC:
        return set()
    return _checked(lambda offset, length: data[offset:offset + length], len(data))


def _checked(read: Read, size: int) -> set[str]:
    try:
        return _needs(read, size)
    except ElfError:
        raise
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        raise ElfError(str(exc) or type(exc).__name__) from exc


def file_version_needs(path: Path) -> set[str]:
    """:func:`version_needs` of a file on disk, reading only the pages it needs."""
    with path.open("rb") as fh:
        if fh.read(4) != MAGIC:
            return set()
        if os.fstat(fh.fileno()).st_size < 64:
            raise ElfError("shorter than an ELF header")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return version_needs(data)


def stream_version_needs(head: bytes, rest: IO[bytes], size: int,
                         again: Callable[[], IO[bytes]] | None = None) -> set[str]:
    """:func:`version_needs` of a stream (an archive member) of ``size`` bytes whose first
    bytes ``head`` were already read, refused beyond 8 GB. Up to 32 MB it is read into
    memory; a larger one keeps its first and last 16 MB (``WINDOW``) and drops its middle,
    never written to disk. When what is read lies in that middle (no linker puts it there),
    ``again`` opens the member once more from its start and it is spooled to a temporary
    file; without ``again`` that is an ElfError."""
    if head[:4] != MAGIC:
        return set()
    if size > MAX_MEMBER:
        raise ElfError(f"{size / 1e9:.0f} GB is larger than any shared library")
    if size <= 2 * WINDOW:
        data = _read_up_to(rest, 2 * WINDOW, bytearray(head))
        if len(data) < 64:
            raise ElfError("shorter than an ELF header")
        return version_needs(data)
    first = _read_up_to(rest, WINDOW, bytearray(head))
    left = size - 2 * WINDOW
    while left > 0 and (chunk := rest.read(min(left, 1 << 20))):
        left -= len(chunk)
    last = _read_up_to(rest, WINDOW, bytearray())
    try:
        return _checked(_windows(first, last, size), size)
    except _Outside:
        if again is None:
            raise ElfError("its version tables lie in the middle of the file, which a "
                           "stream does not keep") from None
    with again() as fh, tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(fh, spool, 1 << 20)
        spool.flush()
        with mmap.mmap(spool.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return version_needs(mapped)


def _read_up_to(stream: IO[bytes], limit: int, buf: bytearray) -> bytearray:
    while len(buf) < limit and (chunk := stream.read(min(limit - len(buf), 1 << 20))):
        buf += chunk
    return buf


def _windows(first: bytearray, last: bytearray, size: int) -> Read:
    """Reads of a file of ``size`` bytes of which only ``first`` and ``last`` are kept."""
    tail = size - len(last)

    def read(offset: int, length: int) -> bytearray:
        end = min(offset + length, size)
        if offset >= size:
            return bytearray()
        if end <= len(first):
            return first[offset:end]
        if offset >= tail:
            return last[offset - tail:end - tail]
        raise _Outside
    return read


def _needs(read: Read, size: int) -> set[str]:
    """The version-needed names, reading the file only through ``read``: the header, the
    section table, then each version table and its strings."""
    data = read(0, 64)
    if data[4] not in (1, 2):
        raise ElfError(f"unknown ELF class {data[4]}")
    if data[5] == 2:  # big-endian: no platform Triton runs on (x86_64, aarch64)
        return set()
    if data[5] != 1:
        raise ElfError(f"unknown ELF data encoding {data[5]}")
    is64 = data[4] == 2
    if is64:
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
        sh_fmt = "<IIQQQQIIQQ"
    else:
        shoff, = struct.unpack_from("<I", data, 0x20)
        shentsize, shnum = struct.unpack_from("<HH", data, 0x2E)
        sh_fmt = "<IIIIIIIIII"
    if shnum and shentsize < struct.calcsize(sh_fmt):
        raise ElfError(f"section header size {shentsize} is too small")
    if shoff + shnum * shentsize > size:
        raise ElfError("the section table lies beyond the end of the file")
    table = read(shoff, shnum * shentsize)
    sections = [struct.unpack_from(sh_fmt, table, i * shentsize) for i in range(shnum)]
    out: set[str] = set()
    for sec in sections:
        if sec[1] != SHT_GNU_VERNEED:
            continue
        offset, link = sec[4], sec[6]
        strtab = sections[link][4]
        count = sec[7]  # sh_info: the number of Verneed entries
        pos = offset
        for _ in range(count):
            _ver, cnt, _file, aux, nxt = struct.unpack_from("<HHIII", read(pos, 16))
            apos = pos + aux
            for _ in range(cnt):
                _hash, _flags, _other, name, anext = struct.unpack_from("<IHHII", read(apos, 16))
                text = read(strtab + name, 256)
                end = text.find(b"\0")
                if end < 0:
                    raise ElfError("unterminated version name")
                out.add(text[:end].decode("ascii", "replace"))
                if not anext:
                    break
                apos += anext
            if not nxt:
                break
            pos += nxt
    return out


def newest(needs: Collection[str], family: str) -> tuple[int, ...] | None:
    """The highest version of a family (GLIBC or GLIBCXX) among ``needs``."""
    best: tuple[int, ...] | None = None
    for name in needs:
        head, _, ver = name.partition("_")
        if head != family or not ver:
            continue
        try:
            key = tuple(int(p) for p in ver.split("."))
        except ValueError:
            continue
        if best is None or key > best:
            best = key
    return best
