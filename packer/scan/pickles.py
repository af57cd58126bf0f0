"""Dependencies hidden in data: the modules a pickle names, read without unpickling.

A scikit-learn pipeline saved as ``model.joblib`` needs ``sklearn`` in the server although
``model.py`` only imports joblib. The standard library's ``pickletools`` walks a pickle's
opcodes without executing any: ``GLOBAL`` (protocols 0-3) and ``STACK_GLOBAL`` (4-5) name a
module and an attribute. Read here, never unpickled:

* ``*.pkl``, ``*.pickle``, ``*.joblib`` (joblib's compressed files: zlib, gzip, bz2, xz,
  lzma, through the standard library),
* ``*.pt``, ``*.pth``, ``*.bin``, ``*.ckpt`` written by ``torch.save`` (a zip whose
  ``*/data.pkl`` is the pickle; or the legacy format, pickles one after another),

in the model dir and its version dir (not below them: a model dir may hold gigabytes of
weights). joblib writes array bytes between opcodes; where the opcode walk stops there,
the rest is searched for the byte patterns of ``STACK_GLOBAL`` and ``GLOBAL``. At most
``MAX_BYTES`` of each file (decompressed) are read; a file that cannot be read is reported.
"""

from __future__ import annotations

import _compat_pickle
import bz2
import gzip
import io
import lzma
import pickletools
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 64 << 20
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
_IDENT = rb"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
# SHORT_BINUNICODE module [MEMOIZE] (SHORT_BINUNICODE name | BINGET | LONG_BINGET) [MEMOIZE] STACK_GLOBAL
_STACK_GLOBAL = re.compile(rb"\x8c([\x01-\xff])(" + _IDENT + rb")\x94?(?:\x8c[\x01-\xff]"
                           + _IDENT + rb"|h.|j....)\x94?\x93", re.S)
_GLOBAL = re.compile(rb"c(" + _IDENT + rb")\n(" + _IDENT + rb")\n")


# state keys whose value is the version of the distribution that pickled the object:
# scikit-learn's BaseEstimator.__getstate__ writes ``_sklearn_version`` into every estimator's
# state (xgboost's and lightgbm's scikit-learn wrappers are estimators: the same key)
VERSION_KEYS = {"_sklearn_version": "scikit-learn"}
_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*([a-z]+[0-9]*)?(\.post[0-9]+|\.dev[0-9]+)?$")
_VERSION_BYTES = re.compile(rb"\x8c\x10_sklearn_version\x94?\x8c([\x01-\x20])([0-9][0-9a-z.]*)")


@dataclass(frozen=True)
class PickleRefs:
    """The modules one file's pickles name, the versions they record, what could not be read."""

    file: Path
    modules: tuple[str, ...]
    problem: str | None = None
    versions: tuple[tuple[str, str], ...] = ()  # (distribution, version) as pickled


def candidates(dirs: tuple[Path, ...]) -> list[Path]:
    """The data files to read: directly inside ``dirs``, sorted, each once."""
    found: dict[Path, None] = {}
    for directory in dirs:
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            continue
        for path in entries:
            if path.suffix.lower() in PICKLE_SUFFIXES + TORCH_SUFFIXES and path.is_file():
                found.setdefault(path, None)
    return list(found)


def _capped(stream: io.BufferedIOBase | gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile) -> bytes:
    return stream.read(MAX_BYTES)


def _decompressed(head: bytes, path: Path) -> bytes:
    """The file's bytes, decompressed when joblib compressed it (up to MAX_BYTES)."""
    if head.startswith(b"\x1f\x8b"):
        with gzip.open(path, "rb") as gz:
            return _capped(gz)
    if head.startswith(b"BZh"):
        with bz2.open(path, "rb") as bz:
            return _capped(bz)
    if head.startswith(b"\xfd7zXZ\x00") or head.startswith(b"\x5d\x00\x00"):
        with lzma.open(path, "rb") as xz:
            return _capped(xz)
    with path.open("rb") as fh:
        raw = fh.read(MAX_BYTES)
    if head.startswith(b"ZF"):  # joblib < 0.10: 'ZF' + 16-byte length, then zlib
        return zlib.decompressobj().decompress(raw[18:], MAX_BYTES)
    if head[:1] == b"\x78" and head[1:2] in (b"\x01", b"\x5e", b"\x9c", b"\xda"):
        return zlib.decompressobj().decompress(raw, MAX_BYTES)
    return raw


def _walk(data: bytes, start: int, versions: list[tuple[str, str]] | None = None,
          ) -> tuple[list[str], int | None]:
    """Modules named by the pickle at ``start``; the offset after its STOP (None: it broke).
    ``versions`` gets the (distribution, version) pairs of VERSION_KEYS found on the way."""
    found_versions = versions if versions is not None else []
    modules: list[str] = []
    memo: dict[int, object] = {}  # as the unpickler keeps it: a huge index costs nothing
    recent: list[object] = []
    stream = io.BytesIO(data)
    stream.seek(start)
    try:
        for op, arg, _ in pickletools.genops(stream):
            if op.name == "GLOBAL" and isinstance(arg, str):
                modules.append(arg.split(" ", 1)[0])
            elif op.name == "STACK_GLOBAL":
                if len(recent) >= 2 and isinstance(recent[-2], str):
                    modules.append(str(recent[-2]))
            elif op.name == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else None
            elif op.name in ("BINGET", "LONG_BINGET", "GET") and isinstance(arg, int):
                recent.append(memo.get(arg))
            elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and isinstance(arg, int):
                memo[arg] = recent[-1] if recent else None
            elif op.name == "STOP":
                return modules, stream.tell()
            elif "UNICODE" in op.name or "STRING" in op.name:
                recent.append(arg)
            else:
                recent.append(None)
            del recent[:-2]
            if len(recent) == 2 and isinstance(recent[0], str) and recent[0] in VERSION_KEYS \
                    and isinstance(recent[1], str) and _VERSION.match(recent[1]):
                found_versions.append((VERSION_KEYS[recent[0]], recent[1]))
    except (ValueError, EOFError, UnicodeDecodeError, IndexError):
        return modules, None
    return modules, None


def modules_in(data: bytes, versions: list[tuple[str, str]] | None = None,
               ) -> tuple[list[str], bool]:
    """Modules named by the pickles in ``data`` (one after another, as legacy torch.save
    writes them); True when the opcode walk broke off and byte patterns found the rest.
    ``versions`` gets the recorded versions (VERSION_KEYS)."""
    modules: list[str] = []
    offset = 0
    while True:
        found, end = _walk(data, offset, versions)
        modules += found
        if end is None:
            rest = data[offset:]
            if versions is not None:  # joblib's arrays broke the walk: the byte pattern
                versions += [("scikit-learn", m.group(2).decode()) for m in
                             _VERSION_BYTES.finditer(rest) if len(m.group(2)) == m.group(1)[0]]
            modules += [m.group(2).decode() for m in _STACK_GLOBAL.finditer(rest)
                        if len(m.group(2)) == m.group(1)[0]]
            modules += [m.group(1).decode() for m in _GLOBAL.finditer(rest)]
            return modules, True
        offset = end
        if data[offset:offset + 1] != b"\x80":
            return modules, False


def _torch_zip(path: Path) -> bytes:
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.endswith("data.pkl")]
        if not names:
            raise ValueError("a zip file without data.pkl: not written by torch.save")
        with zf.open(sorted(names, key=len)[0]) as member:
            return member.read(MAX_BYTES)


def read_refs(path: Path) -> PickleRefs:
    """The modules one data file names; a problem instead when it cannot be read."""
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
        if head.startswith(b"PK\x03\x04"):
            data = _torch_zip(path)
        elif path.suffix.lower() in TORCH_SUFFIXES and not head.startswith(b"\x80"):
            return PickleRefs(path, ())  # weights in another format (safetensors, ...)
        else:
            data = _decompressed(head, path)
    except (OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zipfile.BadZipFile,
            lzma.LZMAError, zlib.error) as exc:  # RuntimeError: an encrypted zip member
        return PickleRefs(path, (), f"cannot be read: {exc}")
    if not data.startswith(b"\x80") and data[:1] not in (b"(", b"c", b"]", b"}"):
        return PickleRefs(path, (), "not a pickle (no protocol header)")
    versions: list[tuple[str, str]] = []
    modules, _ = modules_in(data, versions)
    # protocols 0-2 name Python 2 modules (pickle writes __builtin__, copy_reg; the unpickler
    # maps them back): the standard library's own table says what they are on Python 3
    modules = [_compat_pickle.IMPORT_MAPPING.get(m, m) for m in modules]
    bad = [m for m in modules if not is_module_name(m)]  # '../../etc': no module, no path
    modules = [m for m in modules if is_module_name(m)]
    problem = None
    if bad:
        shown = bad[0] if len(bad[0]) <= 80 else bad[0][:77] + "..."  # a name may be MBs
        problem = (f"names {shown!r}, which is not a Python module name (no unpickler could "
                   "import it)")
    elif not modules:
        problem = "no module names found in it"
    elif path.stat().st_size > MAX_BYTES and len(data) >= MAX_BYTES:
        problem = f"only its first {MAX_BYTES >> 20} MiB were read"
    return PickleRefs(path, tuple(dict.fromkeys(modules)), problem,
                      tuple(dict.fromkeys(versions)))


# scikit-learn's estimators keep the column count they were fitted on as ``n_features_in_``
# (a plain int in their state): SHORT_BINUNICODE (4+) or BINUNICODE (2-3) of the key, maybe a
# memo put, then BININT1, BININT2 or BININT of the count
_FEATURES = re.compile(rb"(?:\x8c\x0e|X\x0e\x00\x00\x00)n_features_in_(?:\x94|q.|r....)?"
                       rb"(?:K(.)|M(..)|J(....))", re.S)


def feature_count(path: Path) -> int | None:
    """The column count the first estimator pickled in ``path`` was fitted on (the outermost
    step's comes first: a Pipeline writes its steps in order, a ColumnTransformer its own count
    before its transformers'), or None. Read from the bytes, never unpickled."""
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
        if path.suffix.lower() not in PICKLE_SUFFIXES or head.startswith(b"PK\x03\x04"):
            return None
        data = _decompressed(head, path)
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error):
        return None
    match = _FEATURES.search(data)
    if match is None:
        return None
    raw = next(g for g in match.groups() if g is not None)
    count = int.from_bytes(raw, "little", signed=len(raw) == 4)
    return count if count > 0 else None


def is_module_name(name: str) -> bool:
    """A dotted Python module name (``a.b_c``), nothing a path could be made of."""
    return all(part.isidentifier() for part in name.split("."))


def scan_dirs(dirs: tuple[Path, ...]) -> Iterator[PickleRefs]:
    for path in candidates(dirs):
        yield read_refs(path)
