"""Canonical ``.pyc`` bytes: the same source gives the same bytecode file on every build.

CPython's marshal marks an object as referenceable (FLAG_REF, 0x80 on its type byte) when the
object's reference count is above one at the moment it is written, whether or not a later
``TYPE_REF`` ever points back at it. The count depends on what else the compiling process
happens to hold (interned strings, caches, the garbage collector's timing), so two builds of
one lock could differ in a single flag bit of one ``.pyc`` (seen about 1 run in 10 with
Python 3.10). The flag carries no meaning unless a back-reference uses it: this module walks
the marshal stream, clears the flag on every object no ``TYPE_REF`` names and renumbers the
references, in place (no size changes). ``marshal.loads`` of the result gives the same code.
"""

from __future__ import annotations

import struct
from pathlib import Path

FLAG_REF = 0x80
HEADER = 16  # magic, flags, source hash or mtime + size (PEP 552)

_NO_PAYLOAD = frozenset(b"0NFTS.")
_FIXED = {ord("i"): 4, ord("I"): 8, ord("g"): 8, ord("y"): 16, ord("r"): 4}
_SIZED32 = frozenset(b"stuaA")  # int32 length + bytes
_SIZED8 = frozenset(b"zZ")  # one-byte length + bytes
_SEQ32 = frozenset(b"([<>")  # int32 count + objects
_CODE = ord("c")


class PycError(ValueError):
    """A marshal stream this module does not understand (left as it is by the caller)."""


class _Walker:
    def __init__(self, data: bytearray, minor: int):
        self.data = data
        self.pos = 0
        self.minor = minor
        self.flagged: list[int] = []  # position of each FLAG_REF type byte, in index order
        self.refs: list[tuple[int, int]] = []  # (payload position, referenced index)
        self.starts: list[int] = []  # every object's type byte

    def _int32(self) -> int:
        value: int = struct.unpack_from("<i", self.data, self.pos)[0]
        self.pos += 4
        return value

    def _skip(self, size: int) -> None:
        self.pos += size

    def _byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def obj(self) -> None:
        at = self.pos
        self.starts.append(at)
        code = self._byte()
        kind = code & ~FLAG_REF
        if code & FLAG_REF:
            self.flagged.append(at)  # the index is taken before any child's (pre-order)
        if kind in _NO_PAYLOAD:
            return
        if kind == ord("r"):
            index = self._int32()
            if not 0 <= index < len(self.flagged):
                raise PycError(f"reference {index} to an object not seen yet")
            self.refs.append((self.pos - 4, index))
        elif kind in _FIXED:
            self.pos += _FIXED[kind]
        elif kind in _SIZED32:
            self._skip(self._int32())
        elif kind in _SIZED8:
            self._skip(self._byte())
        elif kind == ord("l"):
            self._skip(2 * abs(self._int32()))
        elif kind == ord("f"):
            self._skip(self._byte())
        elif kind == ord("x"):
            self._skip(self._byte())
            self._skip(self._byte())
        elif kind in _SEQ32:
            for _ in range(self._int32()):
                self.obj()
        elif kind == ord(")"):
            for _ in range(self._byte()):
                self.obj()
        elif kind == ord("{"):
            while self.data[self.pos] != ord("0"):
                self.obj()
                self.obj()
            self.pos += 1
        elif kind == _CODE:
            self._code()
        else:
            raise PycError(f"unknown marshal type {chr(kind)!r} at {at}")
        if self.pos > len(self.data):
            raise PycError("truncated marshal stream")

    def _code(self) -> None:
        if self.minor <= 10:  # argcount .. flags, then 8 objects, firstlineno, linetable
            self.pos += 6 * 4
            for _ in range(8):
                self.obj()
            self.pos += 4
            self.obj()
        else:  # 3.11+: argcount .. flags, 8 objects, firstlineno, linetable, exceptiontable
            self.pos += 5 * 4
            for _ in range(8):
                self.obj()
            self.pos += 4
            self.obj()
            self.obj()


def canonical(body: bytes, minor: int) -> bytes:
    """The marshal stream ``body`` with FLAG_REF only where a reference uses it."""
    data = bytearray(body)
    walker = _Walker(data, minor)
    walker.obj()
    if walker.pos != len(data):
        raise PycError(f"{len(data) - walker.pos} trailing bytes after the code object")
    used = {index for _, index in walker.refs}
    renumber: dict[int, int] = {}
    for index, at in enumerate(walker.flagged):
        if index in used:
            renumber[index] = len(renumber)
        else:
            data[at] &= ~FLAG_REF
    for at, index in walker.refs:
        struct.pack_into("<i", data, at, renumber[index])
    return bytes(data)


def canonicalize_file(path: Path, minor: int) -> bool:
    """Rewrite one ``.pyc`` canonically; True when its bytes changed."""
    raw = path.read_bytes()
    if len(raw) <= HEADER:
        return False
    fixed = raw[:HEADER] + canonical(raw[HEADER:], minor)
    if fixed == raw:
        return False
    tmp = path.with_name(path.name + ".canon")
    tmp.write_bytes(fixed)
    tmp.chmod(path.stat().st_mode & 0o7777)
    tmp.replace(path)
    return True
