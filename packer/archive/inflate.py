"""An archive read back, inflated by zlib-ng: what reads a whole archive (the gate, a pull's
vetting, verify's look inside, ``check``'s stamp and files) reads it through ``read_targz``.

zlib-ng inflates twice as fast as the system's zlib here (the heavy model's 194 MB archive
walked member by member: 1.5 s instead of 3.8 s). Its own gzip file class seeks back wrongly
(zlib-ng 1.1: a rewind resumes mid-stream), so the gzip framing is read here, as
``gzip.GzipFile`` reads it: members one after another, zero padding between or after them
skipped, anything else refused; a seek back starts again from the first byte. Corrupt data
raises the stdlib's ``zlib.error``, a wrong CRC ``gzip.BadGzipFile`` and a cut file
``EOFError``, as tarfile's ``r:gz`` does.
"""

from __future__ import annotations

import gzip
import io
import re
import struct
import tarfile
import zlib
from pathlib import Path
from typing import cast

from zlib_ng import zlib_ng

from .paxguard import GuardedTarInfo

_CHUNK = 1 << 20  # compressed bytes read, and inflated bytes made, at a time
# compressed bytes given to the inflater at a time: what it copies of them when a member ends
# (its unused data) stays small, so a file of many tiny members is read in linear time
_WINDOW = 1 << 18
_NONZERO = re.compile(rb"[^\0]")
_MAGIC = b"\x1f\x8b"
_FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 2, 4, 8, 16  # gzip's header flags
_ENDED = "Compressed file ended before the end-of-stream marker was reached"  # gzip's words
# zlib-ng's stubs type ``error`` as an instance: it is the class of its inflate errors
INFLATE_ERROR = cast("type[Exception]", zlib_ng.error)


class _Inflating(io.RawIOBase):
    """The uncompressed bytes of a gzip file, read forward; seeking back starts again.

    Each member's header, CRC and length are read here as ``gzip._GzipReader`` reads them
    (the deflate data alone goes to zlib-ng), so a damaged archive fails with gzip's own
    words, at the read where gzip's reader fails: a member's CRC and length at the read
    after its last byte, a header's CRC and reserved flags never looked at."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._fh = path.open("rb")
        self._restart()

    def _restart(self) -> None:
        self._fh.seek(0)
        self._inflater: zlib_ng._Decompress | None = None
        self._left, self._at = b"", 0  # compressed bytes read, and how many were used
        self._ended = False  # a member's deflate data ended: its trailer is read next
        self._crc = self._size = 0  # of the member's bytes inflated so far
        self._out, self._off = b"", 0  # inflated bytes, and how many of them were read
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def _fill(self, n: int) -> bool:
        """At least ``n`` unused compressed bytes in ``_left``; False when the file ends
        first."""
        while len(self._left) - self._at < n:
            more = self._fh.read(_CHUNK)
            if not more:
                return False
            self._left, self._at = self._left[self._at:] + more, 0
        return True

    def _take(self, n: int) -> bytes:
        """The next ``n`` compressed bytes (EOFError when the file has fewer)."""
        if not self._fill(n):
            raise EOFError(_ENDED)
        self._at += n
        return self._left[self._at - n:self._at]

    def _skip_string(self) -> None:
        """A header's name or comment: up to its NUL, or the end of the file."""
        while (end := self._left.find(b"\0", self._at)) < 0:
            self._at = len(self._left)
            if not self._fill(1):
                return
        self._at = end + 1

    def _next_member(self) -> bool:
        """Read the next member's header, as ``gzip._read_gzip_header`` does; False at the
        end of the file."""
        self._fill(2)
        magic = self._left[self._at:self._at + 2]
        self._at += len(magic)
        if not magic:
            return False
        if magic != _MAGIC:
            raise gzip.BadGzipFile(f"Not a gzipped file ({magic!r})")
        method, flags = self._take(8)[:2]
        if method != 8:
            raise gzip.BadGzipFile("Unknown compression method")
        if flags & _FEXTRA:
            self._take(int.from_bytes(self._take(2), "little"))
        for flag in (_FNAME, _FCOMMENT):
            if flags & flag:
                self._skip_string()
        if flags & _FHCRC:
            self._take(2)
        self._inflater = zlib_ng.decompressobj(-15)
        self._crc = self._size = 0
        return True

    def _trailer(self) -> None:
        """The ended member's CRC and length checked, then the zero padding after it
        skipped, as ``gzip._GzipReader._read_eof`` does."""
        crc, size = struct.unpack("<II", self._take(8))
        if crc != self._crc:
            raise gzip.BadGzipFile(f"CRC check failed {crc:#x} != {self._crc:#x}")
        if size != self._size & 0xFFFFFFFF:
            raise gzip.BadGzipFile("Incorrect length of data produced")
        while self._fill(1):
            if (byte := _NONZERO.search(self._left, self._at)) is not None:
                self._at = byte.start()
                break
            self._at = len(self._left)
        self._ended = False

    def _inflate(self) -> bytes:
        """The next inflated bytes (at most _CHUNK); b"" at the end of the file."""
        while True:
            if self._ended:
                self._trailer()
            if self._inflater is None and not self._next_member():
                return b""
            inflater = cast("zlib_ng._Decompress", self._inflater)
            if not self._fill(1):
                raise EOFError(_ENDED)
            window = memoryview(self._left)[self._at:self._at + _WINDOW]
            try:
                out = inflater.decompress(window, _CHUNK)
            except INFLATE_ERROR as exc:
                raise zlib.error(str(exc)) from exc
            self._crc, self._size = zlib_ng.crc32(out, self._crc), self._size + len(out)
            self._ended = inflater.eof
            self._at += len(window) - len(inflater.unused_data if self._ended
                                          else inflater.unconsumed_tail)
            if self._ended:
                self._inflater = None
            if out:
                return out

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self._off >= len(self._out):
            self._out, self._off = self._inflate(), 0
        n = min(len(buffer), len(self._out) - self._off)
        buffer[:n] = self._out[self._off:self._off + n]
        self._off += n
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("a gzip stream does not seek from its end")
        if offset < self._pos:
            self._restart()
        if self._pos < offset:  # forward: read on (a seek to here allocates nothing)
            scratch = memoryview(bytearray(min(_CHUNK, offset - self._pos)))
            while self._pos < offset and self.readinto(scratch[:offset - self._pos]):
                pass
        return self._pos

    def close(self) -> None:
        self._fh.close()
        super().close()


class _GzTar(tarfile.TarFile):
    """A TarFile that closes the gzip file it reads, as tarfile's own ``r:gz`` one does."""

    gz: io.BufferedReader[_Inflating] | None = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.gz is not None:
                self.gz.close()


def read_targz(path: Path) -> tarfile.TarFile:
    """``tarfile.open(path, "r:gz")``, inflated by zlib-ng. A file that is not gzip raises
    ``tarfile.ReadError("not a gzip file")``, as tarfile's own reader does."""
    fh = io.BufferedReader(_Inflating(path), _CHUNK)
    try:
        tar = _GzTar.open(fileobj=fh, mode="r:", tarinfo=GuardedTarInfo)
    except OSError as exc:
        fh.close()
        raise tarfile.ReadError("not a gzip file") from exc
    except BaseException:
        fh.close()
        raise
    tar.gz = fh
    return tar
