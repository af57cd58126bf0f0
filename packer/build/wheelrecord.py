"""The files uv installed, checked against the sha256 their wheel's ``RECORD`` gives.

The lock's hashes are checked when uv downloads a wheel; later installs of it hard-link the
files uv unpacked into its cache then, and nothing checks them again. A byte changed there
(a disk error, an edit, a tool that wrote through a hard link) shipped in every environment
built from that cache, with the pack saying "hash-checked". ``RECORD`` (the wheel's own,
copied by uv) names each file's sha256: a file inside ``site-packages`` that differs from it
stops the build. Files outside it (``../../bin`` scripts, whose shebangs the installer
rewrites) are not compared.
"""

from __future__ import annotations

import base64
import csv
import io
import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from packaging.utils import canonicalize_name

from ..core.integrity import regular_sha256


def _rows(info: Path) -> list[tuple[str, str]]:
    """(path, urlsafe-base64 sha256) for each RECORD row with a sha256 inside site-packages."""
    try:
        text = (info / "RECORD").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    rows = []
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 2 or not row[1].startswith("sha256="):
            continue
        parts = PurePosixPath(row[0]).parts
        if parts and ".." not in parts and not row[0].startswith("/"):
            rows.append((row[0], row[1][len("sha256="):]))
    return rows


def _matches(site: Path, rel: str, want: str) -> bool:
    path = site / rel
    if not os.path.lexists(path):
        return True  # not there: what RECORD lists and the wheel lacked is not this check's
    # None: a symlink (not followed), unreadable, or a special file where the wheel had a file
    got = regular_sha256(path)
    return got is not None and base64.urlsafe_b64encode(
        bytes.fromhex(got)).rstrip(b"=").decode() == want


def changed(site: Path, names: Iterable[str]) -> list[str]:
    """The files of the distributions ``names`` (as locked) whose bytes differ from their
    RECORD's sha256, relative to ``site``, sorted."""
    wanted = {canonicalize_name(n) for n in names}
    rows = []
    for info in sorted(site.glob("*.dist-info")):
        if canonicalize_name(info.name[:-len(".dist-info")].rsplit("-", 1)[0]) in wanted:
            rows.extend(_rows(info))
    with ThreadPoolExecutor(2) as pool:  # hashlib lets go of the GIL: two cores, two files
        same = list(pool.map(lambda r: _matches(site, *r), rows))
    return sorted(rel for (rel, _), ok in zip(rows, same, strict=True) if not ok)


class Pending:
    """``changed`` on a thread started now, beside what the build does next (bundling, the
    conda-pack staging: torch's check took 1.2 s on a loaded 2-core machine, after the
    install). ``result`` waits for it: the build asks before anything runs the installed
    code or writes an archive, so nothing is packed from a changed file either way."""

    def __init__(self, site: Path, names: Iterable[str]):
        self._found: list[str] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(site, list(names)),
                                        name="tritonpack-record-check", daemon=True)
        self._thread.start()

    def _run(self, site: Path, names: list[str]) -> None:
        try:
            self._found = changed(site, names)
        except BaseException as exc:  # raised where the answer is asked for, not here
            self._error = exc

    def result(self) -> list[str]:
        """``changed``'s answer (what it raised, raised here)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._found

    def wait(self) -> None:
        """Done, whatever it found: before the files it reads are removed."""
        self._thread.join()
