"""tarfile's pax header parser, guarded. CPython before 3.10.15, 3.11.10 and 3.12.6
(CVE-2024-6232) parses a pax header with regular expressions that backtrack: a crafted
header of half a megabyte of digits keeps ``inspect`` (the gate, a pull's vetting) spinning
for hours, deaf to SIGTERM. Here a pax header's records are checked in linear time before
tarfile reads them (each ``LEN key=value\\n``, LEN counting the whole record, at most
``MAX_PAX`` bytes in all: a path and a link target take a few KiB); one that is not so is
refused as an unreadable archive (``tarfile.ReadError``), never skipped: what a gate cannot
read it does not pass.
"""

from __future__ import annotations

import tarfile
from typing import cast

MAX_PAX = 1 << 20
# tarfile's own: its ``next`` turns it into ReadError (absent from typeshed's stubs)
_REFUSED = cast("type[Exception]", getattr(tarfile, "SubsequentHeaderError"))  # noqa: B009


def records_ok(buf: bytes) -> bool:
    """Whether ``buf`` (a pax header's data) is a run of well-formed records, up to NULs."""
    pos, size = 0, len(buf)
    while pos < size and buf[pos] != 0:
        space = buf.find(b" ", pos, pos + 21)
        if space <= pos or not buf[pos:space].isdigit():
            return False
        end = pos + int(buf[pos:space])
        if end <= space + 2 or end > size or buf[end - 1] != 0x0A \
                or buf.find(b"=", space + 1, end) < 0:
            return False
        pos = end
    return True


class GuardedTarInfo(tarfile.TarInfo):
    """A TarInfo whose pax headers are checked (``records_ok``) before tarfile parses them."""

    def _proc_pax(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        if self.size > MAX_PAX:
            raise _REFUSED(f"a pax header of {self.size} bytes")
        fh = tar.fileobj
        assert fh is not None  # an open archive's
        start = fh.tell()
        data = fh.read(-(-self.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE)
        if not records_ok(data[: self.size]):
            raise _REFUSED("a malformed pax header")
        fh.seek(start)  # tarfile reads it again: within the reader's buffer, mostly
        parsed: tarfile.TarInfo = getattr(super(), "_proc_pax")(tar)  # noqa: B009
        return parsed
