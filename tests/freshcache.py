"""A fresh tritonpack cache for a test about what a cache holds or reuses (environments,
bytecode, gzip members, what a registry gave), sharing with the session's cache only what a CI
runner keeps warm between jobs: the local Python channel (~10 s to make) and the package
download caches (a cold uv or rattler cache downloads numpy again). Each section is made in
the session's cache when missing, so that a module run alone makes it once, not once a test."""

from __future__ import annotations

from pathlib import Path

DOWNLOADS = ("channels", "pkgs", "uv")


def fresh_cache(path: Path, session_cache: Path, share: tuple[str, ...] = DOWNLOADS) -> Path:
    """``path`` made empty but for links to ``share``'s sections of ``session_cache``."""
    path.mkdir(parents=True)
    for section in share:
        (session_cache / section).mkdir(exist_ok=True)
        (path / section).symlink_to(session_cache / section)
    return path
