"""A fresh tritonpack cache for a test about what a cache holds or reuses (environments,
bytecode, gzip members, what a registry gave), sharing with the session's cache only what a CI
runner keeps warm between jobs: the local Python channel (~10 s to make) and the package
download caches (a cold uv or rattler cache downloads numpy again). Each section is made in
the session's cache when missing, so that a module run alone makes it once, not once a test."""

from __future__ import annotations

from pathlib import Path

import pytest

DOWNLOADS = ("channels", "pkgs", "uv")


def fresh_cache(path: Path, session_cache: Path, share: tuple[str, ...] = DOWNLOADS) -> Path:
    """``path`` made empty but for links to ``share``'s sections of ``session_cache``."""
    path.mkdir(parents=True)
    for section in share:
        (session_cache / section).mkdir(exist_ok=True)
        (path / section).symlink_to(session_cache / section)
    return path


def own_cache(path: Path, session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache for a test whose environment no other test builds: its entry goes with the
    test's tmp_path (removed when it passes) instead of staying in the session's cache to the
    end of the run (one run's disk: under 3 GB). Downloads and the bytecode and gzip stores
    stay the session's."""
    cache = fresh_cache(path, session_cache, (*DOWNLOADS, "bytecode", "gzip"))
    monkeypatch.setenv("TRITONPACK_CACHE", str(cache))
    return cache
