"""The symbol versions an ELF file needs (GLIBC_2.34, GLIBCXX_3.4.30), read from its
.gnu.version_r section with struct: nothing is loaded or run.

A file on disk is parsed through mmap: only the pages holding the header, the section
table and the version tables are read, not the whole file (torch's libtorch_cpu.so is
over 400 MB, and every pack inspects the environment)."""

from __future__ import annotations

import mmap
import struct
from collections.abc import Collection
from pathlib import Path

SHT_GNU_VERNEED = 0x6FFFFFFE
MAGIC = b"\x7fELF"


def version_needs(data: bytes | mmap.mmap) -> set[str]:
    """Versions named in the file's version-needed table; empty if not a 64/32-bit LE ELF."""
    try:
        return _needs(data)
    except (struct.error, IndexError, ValueError):
        return set()


def file_version_needs(path: Path) -> set[str]:
    """:func:`version_needs` of a file on disk, reading only the pages it needs."""
    with path.open("rb") as fh:
        if fh.read(4) != MAGIC:
            return set()
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return version_needs(data)


def _needs(data: bytes | mmap.mmap) -> set[str]:
    if data[:4] != MAGIC or data[5] != 1:  # little-endian only (x86_64, aarch64)
        return set()
    is64 = data[4] == 2
    if is64:
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
        sh_fmt = "<IIQQQQIIQQ"
    else:
        shoff, = struct.unpack_from("<I", data, 0x20)
        shentsize, shnum = struct.unpack_from("<HH", data, 0x2E)
        sh_fmt = "<IIIIIIIIII"
    sections = [struct.unpack_from(sh_fmt, data, shoff + i * shentsize) for i in range(shnum)]
    out: set[str] = set()
    for sec in sections:
        if sec[1] != SHT_GNU_VERNEED:
            continue
        offset, link = sec[4], sec[6]
        strtab = sections[link][4]
        count = sec[7]  # sh_info: the number of Verneed entries
        pos = offset
        for _ in range(count):
            _ver, cnt, _file, aux, nxt = struct.unpack_from("<HHIII", data, pos)
            apos = pos + aux
            for _ in range(cnt):
                _hash, _flags, _other, name, anext = struct.unpack_from("<IHHII", data, apos)
                end = data.find(b"\0", strtab + name)
                if end < 0:
                    raise ValueError("unterminated version name")
                out.add(data[strtab + name:end].decode("ascii", "replace"))
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
