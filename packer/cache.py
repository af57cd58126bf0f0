"""Where tritonpack keeps what it can reuse: local channels, package and wheel caches."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$TRITONPACK_CACHE``, else ``$XDG_CACHE_HOME/tritonpack``, else ``~/.cache/tritonpack``."""
    env = os.environ.get("TRITONPACK_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "tritonpack").resolve()


def cache_dir(*parts: str) -> Path:
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
