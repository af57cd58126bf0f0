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
import tarfile
import zlib
from pathlib import Path
from typing import cast

from zlib_ng import zlib_ng

_CHUNK = 1 << 20  # compressed bytes read, and inflated bytes made, at a time
_MAGIC = b"\x1f\x8b"
# zlib-ng's stubs type ``error`` as an instance: it is the class of its inflate errors
_INFLATE_ERROR = cast("type[Exception]", zlib_ng.error)


class _Inflating(io.RawIOBase):
    """The uncompressed bytes of a gzip file, read forward; seeking back starts again."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._fh = path.open("rb")
        self._restart()

    def _restart(self) -> None:
        self._fh.seek(0)
        self._inflater: zlib_ng._Decompress | None = None
        self._left = b""  # compressed bytes not yet given to the inflater
        self._started = False
        self._out, self._off = b"", 0  # inflated bytes, and how many of them were read
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def _next_member(self) -> bool:
        """Begin the next member (after zero padding, never before the first); False at the
        end of the file."""
        while True:
            if self._started:
                self._left = self._left.lstrip(b"\0")
            if len(self._left) >= 2:
                break
            more = self._fh.read(_CHUNK)
            if not more:
                if self._left:
                    raise gzip.BadGzipFile(f"Not a gzipped file ({self._left!r})")
                return False
            self._left += more
        if self._left[:2] != _MAGIC:
            raise gzip.BadGzipFile(f"Not a gzipped file ({self._left[:2]!r})")
        self._started = True
        self._inflater = zlib_ng.decompressobj(31)
        return True

    def _inflate(self) -> bytes:
        """The next inflated bytes (at most _CHUNK); b"" at the end of the file."""
        while True:
            if self._inflater is None and not self._next_member():
                return b""
            inflater = cast("zlib_ng._Decompress", self._inflater)
            if not self._left:
                self._left = self._fh.read(_CHUNK)
                if not self._left:
                    raise EOFError("Compressed file ended before the end-of-stream marker "
                                   "was reached")
            try:
                out = inflater.decompress(self._left, _CHUNK)
            except _INFLATE_ERROR as exc:
                if "incorrect data check" in str(exc) or "incorrect length check" in str(exc):
                    raise gzip.BadGzipFile(f"CRC check failed ({exc})") from exc  # as gzip's
                raise zlib.error(str(exc)) from exc
            if inflater.eof:
                self._left = inflater.unused_data
                self._inflater = None
            else:
                self._left = inflater.unconsumed_tail
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
        scratch = memoryview(bytearray(_CHUNK))
        while self._pos < offset and self.readinto(scratch[:min(_CHUNK, offset - self._pos)]):
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
        tar = _GzTar.open(fileobj=fh, mode="r:")
    except OSError as exc:
        fh.close()
        raise tarfile.ReadError("not a gzip file") from exc
    except BaseException:
        fh.close()
        raise
    tar.gz = fh
    return tar
