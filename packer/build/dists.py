"""The distributions installed in a built prefix, read from their ``.dist-info`` dirs.

One reader for every question tritonpack asks of an installed distribution: its name and
license (the SBOM), the files its ``RECORD`` lists (which modules it provides, which
distribution owns a module), its ``top_level.txt`` and its ``Requires-Dist`` (pruning keeps
lazy_loader stubs). Headers are parsed by ``packaging.metadata`` from bytes, so a METADATA
that is not UTF-8 reads with its undecodable bytes dropped instead of stopping the build;
nothing is imported from the prefix (the user's environment is data, never code here).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.metadata import parse_email
from packaging.utils import canonicalize_name


@dataclass(frozen=True)
class Dist:
    """One installed distribution, as its ``.dist-info`` describes it."""

    info: Path  # the .dist-info dir
    name: str  # as METADATA spells it (the dir's name when METADATA has none)
    license: str  # License-Expression, else a short License, else the license classifiers
    requires: tuple[str, ...]  # Requires-Dist lines, markers included
    files: tuple[str, ...]  # RECORD paths, relative to site-packages
    top_level: tuple[str, ...]  # top_level.txt names (setuptools writes it)

    @property
    def key(self) -> str:
        """The canonical name (``Foo_Bar`` -> ``foo-bar``)."""
        return canonicalize_name(self.name)


def installed(site: Path) -> Iterator[Dist]:
    """Every ``*.dist-info`` in ``site``, in name order."""
    for info in sorted(site.glob("*.dist-info")):
        if info.is_dir():
            yield read(info)


def read(info: Path) -> Dist:
    raw: dict[str, object] = {}
    unparsed: dict[str, list[str]] = {}
    meta = info / "METADATA"
    if meta.is_file():
        parsed, left = parse_email(meta.read_bytes())
        raw, unparsed = dict(parsed), dict(left)
    name = str(raw.get("name") or info.name[: -len(".dist-info")].rsplit("-", 1)[0])
    return Dist(info, name, _license(raw, unparsed), tuple(_strings(raw.get("requires_dist"))),
                _record(info / "RECORD"), _top_level(info / "top_level.txt"))


def _license(raw: dict[str, object], unparsed: dict[str, list[str]]) -> str:
    expression = raw.get("license_expression") or next(
        (v for v in unparsed.get("license-expression", []) if isinstance(v, str)), "")
    if expression:
        return str(expression).strip()
    text = str(raw.get("license") or "").strip()
    if text and len(text) < 80:  # a whole license text pasted in is not a name
        return text
    return ", ".join(c.rsplit(" :: ", 1)[-1] for c in _strings(raw.get("classifiers"))
                     if c.startswith("License :: "))


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


def _record(path: Path) -> tuple[str, ...]:
    return tuple(row[0] for row in csv.reader(io.StringIO(_text(path))) if row and row[0])


def _top_level(path: Path) -> tuple[str, ...]:
    return tuple(line.strip() for line in _text(path).splitlines() if line.strip())
