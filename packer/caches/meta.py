"""What a cache entry records about its environment: one typed, versioned record.

The local cache writes it (``meta.json`` beside each entry) and a remote cache carries it
(a layer of the artifact), so it is read like the lock is: bounded in size, decoded as
UTF-8, parsed without recursion limits being hit, every field checked for its type and
shape, unknown versions refused. Whatever fails is not an entry: a registry's is a miss
(said once), a local one is dropped and rebuilt. Nothing downstream ever sees a raw dict.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

SCHEMA = 1
LIMIT = 64 << 20  # bytes of meta.json at most (a dir env's manifest of 100k files fits)
_SHA = re.compile(r"[0-9a-f]{64}")
_MAX_ITEMS = 1_000_000
_MAX_TEXT = 4096


class MetaError(ValueError):
    """Not a cache entry's metadata tritonpack writes: why, in a few words."""


@dataclass(frozen=True)
class EntryMeta:
    format: str  # tar.gz | dir
    size: int
    files: int
    sha256: str  # the archive's; "" for a dir env
    python: str
    unpacked: int = 0
    pruned: tuple[tuple[str, int, int], ...] = ()  # (rule, files, bytes)
    kept: tuple[str, ...] = ()
    largest: tuple[tuple[str, int], ...] = ()
    findings: tuple[tuple[str, str], ...] = ()  # (level, message), from the gate
    manifest: tuple[tuple[str, str], ...] = ()  # a dir env: (file, sha256)
    bundled: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    licenses: tuple[tuple[str, str], ...] = ()
    bundled_files: tuple[tuple[str, str], ...] = ()
    created: float = field(default=0.0, compare=False)

    def to_dict(self, *, created: bool = True) -> dict[str, Any]:
        """As written (``created`` left out of what is pushed: same lock, same bytes)."""
        out: dict[str, Any] = {
            "schema": SCHEMA, "format": self.format, "size": self.size, "files": self.files,
            "unpacked": self.unpacked, "sha256": self.sha256, "python": self.python,
            "pruned": {rule: [n, b] for rule, n, b in self.pruned}, "kept": list(self.kept),
            "largest": [list(x) for x in self.largest],
            "findings": [list(x) for x in self.findings],
            "manifest": [list(x) for x in self.manifest], "bundled": list(self.bundled),
            "skipped": list(self.skipped), "licenses": [list(x) for x in self.licenses],
            "bundled_files": [list(x) for x in self.bundled_files]}
        if created:
            out["created"] = self.created
        return out

    def render(self, *, created: bool = True) -> bytes:
        return json.dumps(self.to_dict(created=created), indent=2, sort_keys=True).encode()


def read(raw: bytes) -> EntryMeta:
    """Parse and check ``raw`` (the bytes of a meta.json); MetaError says what is wrong."""
    if len(raw) > LIMIT:
        raise MetaError(f"larger than {LIMIT >> 20} MiB")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MetaError("not UTF-8") from exc
    except RecursionError as exc:
        raise MetaError("nested too deeply") from exc
    except ValueError as exc:
        raise MetaError("not JSON") from exc
    return from_dict(data)


def from_dict(data: Any) -> EntryMeta:
    if not isinstance(data, dict):
        raise MetaError("not a JSON object")
    if data.get("schema") != SCHEMA:
        raise MetaError(f"schema {data.get('schema')!r}, not {SCHEMA}")
    fmt = _text(data, "format")
    if fmt not in ("tar.gz", "dir"):
        raise MetaError(f"format {fmt!r}")
    sha = _text(data, "sha256", "")
    if (fmt == "tar.gz" and not _SHA.fullmatch(sha)) or (fmt == "dir" and sha):
        raise MetaError("sha256 is not the archive's sha256")
    manifest = _pairs(data, "manifest")
    if fmt == "dir" and (not manifest or not all(_SHA.fullmatch(h) for _, h in manifest)):
        raise MetaError("a dir env without its manifest")
    pruned = data.get("pruned", {})
    if not isinstance(pruned, dict) or len(pruned) > _MAX_ITEMS:
        raise MetaError("pruned is not a table")
    return EntryMeta(
        format=fmt, size=_int(data, "size"), files=_int(data, "files"), sha256=sha,
        python=_text(data, "python"), unpacked=_int(data, "unpacked", 0),
        pruned=tuple((_str(k), *_two_ints(v)) for k, v in pruned.items()),
        kept=_strs(data, "kept"), largest=tuple((a, _to_int(b)) for a, b in _pairs(
            data, "largest", second=(int,))),
        findings=_pairs(data, "findings"), manifest=manifest, bundled=_strs(data, "bundled"),
        skipped=_strs(data, "skipped"), licenses=_pairs(data, "licenses"),
        bundled_files=_pairs(data, "bundled_files"), created=_float(data, "created"))


def _str(value: Any) -> str:
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise MetaError("a value is not a short string")
    return value


def _text(data: dict[str, Any], key: str, default: str | None = None) -> str:
    if key not in data and default is not None:
        return default
    if not isinstance(data.get(key), str) or len(data[key]) > _MAX_TEXT:
        raise MetaError(f"{key} is not a string")
    return str(data[key])


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 63:
        raise MetaError("a count is not a non-negative integer")
    return value


def _int(data: dict[str, Any], key: str, default: int | None = None) -> int:
    if key not in data and default is not None:
        return default
    try:
        return _to_int(data.get(key))
    except MetaError:
        raise MetaError(f"{key} is not a non-negative integer") from None


def _float(data: dict[str, Any], key: str) -> float:
    value = data.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise MetaError(f"{key} is not a number")
    return float(value)


def _two_ints(value: Any) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise MetaError("pruned holds a value that is not [files, bytes]")
    return _to_int(value[0]), _to_int(value[1])


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list) or len(value) > _MAX_ITEMS:
        raise MetaError(f"{key} is not a list")
    return value


def _strs(data: dict[str, Any], key: str) -> tuple[str, ...]:
    try:
        return tuple(_str(v) for v in _list(data, key))
    except MetaError:
        raise MetaError(f"{key} is not a list of strings") from None


def _pairs(data: dict[str, Any], key: str,
           second: tuple[type, ...] = (str,)) -> tuple[tuple[str, Any], ...]:
    out = []
    for item in _list(data, key):
        if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str)
                or len(item[0]) > _MAX_TEXT or not isinstance(item[1], second)
                or isinstance(item[1], bool)
                or (isinstance(item[1], str) and len(item[1]) > _MAX_TEXT)):
            raise MetaError(f"{key} is not a list of pairs")
        out.append((item[0], item[1]))
    return tuple(out)
