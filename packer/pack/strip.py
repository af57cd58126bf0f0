"""``--strip``: debug sections out of the wheels' ELF files (off by default).

Debug sections (``.debug_*``, ``.zdebug_*``) are read by debuggers, never by the loader:
taking them out changes no code that runs, only the bytes shipped and unpacked at every
start. Only files a wheel installed are stripped (listed in a ``RECORD`` of the
environment's site-packages), and only when the wheel carries no signature of its RECORD
(``RECORD.jws``, ``RECORD.p7s``): a signed wheel's files stay the bytes that were signed.
conda packages' files (the interpreter, libpython, OpenSSL) are left as their package
records them. The RECORD of a stripped file is rewritten with its new sha256 and size, so
the environment stays consistent with itself.

binutils' ``strip --strip-debug`` does the work, through the one subprocess door, writing a
new file (``-o``) that then replaces the tree's entry: the tree's files are hard links into
the installed prefix and the installers' caches, and binutils writes into a file with several
links in place. No binutils on PATH: a clear refusal, never a pack without what was asked.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import shutil
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..core import deadlines, proc
from ..core.atomic import atomic_write_bytes
from ..core.errors import PackError, ProcessError

_SIGNATURES = ("RECORD.jws", "RECORD.p7s")
_MAX_SECTIONS = 1 << 16


@dataclass(frozen=True)
class StripReport:
    files: tuple[str, ...] = ()  # stripped, relative to the env root
    saved: int = 0  # bytes
    signed: tuple[str, ...] = ()  # distributions left alone: their RECORD is signed


def tool() -> str:
    """binutils' strip, or a refusal in one sentence."""
    found = shutil.which("strip")
    if found is None:
        raise PackError("--strip needs binutils' strip on PATH, and none is installed",
                        hint="install binutils (apt-get install binutils), or pack without "
                        "--strip")
    return found


def debug_bytes(path: Path) -> int:
    """The size of ``path``'s debug sections if it is an ELF file (0: none, or not ELF)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(64)
            if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in (1, 2):
                return 0
            wide, end = head[4] == 2, "<" if head[5] == 1 else ">"
            if wide:
                shoff, = struct.unpack_from(end + "Q", head, 0x28)
                entsize, count, names = struct.unpack_from(end + "HHH", head, 0x3A)
            else:
                shoff, = struct.unpack_from(end + "I", head, 0x20)
                entsize, count, names = struct.unpack_from(end + "HHH", head, 0x2E)
            if not shoff or not count or count > _MAX_SECTIONS or names >= count:
                return 0
            fh.seek(shoff)
            table = fh.read(entsize * count)
            if len(table) < entsize * count:
                return 0
            sections = [_section(table, i * entsize, wide, end) for i in range(count)]
            fh.seek(sections[names][1])
            strtab = fh.read(min(sections[names][2], 1 << 24))
    except (OSError, struct.error):
        return 0
    total = 0
    for name_at, _, size in sections:
        name = strtab[name_at:strtab.find(b"\0", name_at)] if name_at < len(strtab) else b""
        if name.startswith((b".debug", b".zdebug")):
            total += size
    return total


def _section(table: bytes, at: int, wide: bool, end: str) -> tuple[int, int, int]:
    """(name offset, file offset, size) of one section header."""
    name, = struct.unpack_from(end + "I", table, at)
    if wide:
        offset, size = struct.unpack_from(end + "QQ", table, at + 0x18)
    else:
        offset, size = struct.unpack_from(end + "II", table, at + 0x10)
    return name, offset, size


def strip_tree(root: Path, python: str) -> StripReport:
    """Strip the debug sections of every ELF file the environment's wheels installed."""
    site = root / "lib" / f"python{python}" / "site-packages"
    todo: dict[Path, list[Path]] = {}  # RECORD -> its files that hold debug sections
    signed = []
    for record in sorted(site.glob("*.dist-info/RECORD")):
        if any((record.parent / s).exists() for s in _SIGNATURES):
            signed.append(record.parent.name)
            continue
        files = [f for f in _recorded(site, record, root) if debug_bytes(f)]
        if files:
            todo[record] = files
    if not todo:
        return StripReport(signed=tuple(signed))
    strip = tool()
    with ThreadPoolExecutor(2) as pool:
        saved = dict(zip([f for fs in todo.values() for f in fs],
                         pool.map(lambda f: _strip_one(strip, f),
                                  [f for fs in todo.values() for f in fs]), strict=True))
    for record, files in todo.items():
        _rewrite_record(site, record, set(files))
    return StripReport(tuple(sorted(f.relative_to(root).as_posix() for f in saved)),
                       sum(saved.values()), tuple(signed))


def _recorded(site: Path, record: Path, root: Path) -> list[Path]:
    """The regular files (not links) inside ``root`` that ``record`` lists."""
    real = root.resolve()
    out = []
    for row in csv.reader(io.StringIO(record.read_text(encoding="utf-8", errors="replace"))):
        if not row or not row[0]:
            continue
        path = site / row[0]
        if (path.is_file() and not path.is_symlink()
                and path.resolve().is_relative_to(real)):
            out.append(path)
    return out


def _strip_one(strip: str, path: Path) -> int:
    """Strip into a new file beside ``path`` that then replaces it (a new inode: the file
    it was a link of is untouched); the bytes saved."""
    before = path.stat()
    new = path.with_name(f".{path.name}.stripped")
    try:
        proc.run([strip, "--strip-debug", "-o", new, path], timeout=deadlines.STRIP)
        os.chmod(new, before.st_mode & 0o7777)
        os.replace(new, path)
    except ProcessError as exc:
        raise PackError(f"strip could not take the debug sections out of {path.name}",
                        detail=exc.output) from exc
    finally:
        new.unlink(missing_ok=True)
    return before.st_size - path.stat().st_size


def _rewrite_record(site: Path, record: Path, stripped: set[Path]) -> None:
    """The RECORD rows of the stripped files with their new sha256 and size (wheel format:
    urlsafe base64 without padding)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    text = record.read_text(encoding="utf-8", errors="surrogateescape")
    for row in csv.reader(io.StringIO(text)):
        if row and (site / row[0]) in stripped:
            data = (site / row[0]).read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            row = [row[0], f"sha256={digest.decode()}", str(len(data))]
        writer.writerow(row)
    atomic_write_bytes(record, out.getvalue().encode("utf-8", "surrogateescape"),
                       mode=record.stat().st_mode & 0o7777)
