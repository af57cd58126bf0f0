"""Where tritonpack keeps what it can reuse: local channels, package and wheel caches."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

from .errors import CacheError


def cache_root() -> Path:
    """``$TRITONPACK_CACHE``, else ``$XDG_CACHE_HOME/tritonpack``, else ``~/.cache/tritonpack``."""
    env = os.environ.get("TRITONPACK_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    return _default_root()


# The Cache Directory Tagging Specification's tag (backup tools skip the directory): written
# where tritonpack makes its cache, so that `cache prune --all` empties a cache tritonpack made
# and never a directory TRITONPACK_CACHE was pointed at by mistake (~/.cache holds uv's).
TAG = "CACHEDIR.TAG"
TAG_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"


STORES = ("bytecode", "gzip")  # what a pack keeps for the next: compiled .pyc, gzip members
# what `cache prune --all` empties (not locks/, held by running builds, nor downloads/)
SECTIONS = ("envs", "channels", "pkgs", "uv", "pip-tools", "sdist-wheels", "tmp", *STORES)
_OURS = {"envs", "channels", "sdist-wheels", "locks", *STORES}  # names only tritonpack makes
_KNOWN = {*SECTIONS, "locks", "downloads", TAG}


def _default_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return ((Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "tritonpack").resolve()


def owned(root: Path) -> bool:
    """Whether ``root`` is tritonpack's to empty: its default place, one holding its tag, one
    with nothing in it, or one made before the tag whose every name is one of tritonpack's
    (and some only tritonpack makes: uv/ alone could be uv's own)."""
    if root == _default_root() or not root.is_dir():
        return True
    try:
        names = {p.name for p in root.iterdir()}
    except OSError:
        return False
    if not names or (names <= _KNOWN | {n for n in names if n.startswith("remote-last-run.")}
                     and names & _OURS):
        return True
    try:
        with open(root / TAG, "rb") as fh:
            return fh.read(len(TAG_SIGNATURE)) == TAG_SIGNATURE
    except OSError:
        return False


_LOOKED_AT: set[Path] = set()  # roots _tag has decided on in this process


def _tag(root: Path) -> None:
    """Tag a cache root tritonpack makes now (absent or empty): never one that holds others'
    files already (best-effort: a read-only cache is reported by cache_dir itself). Decided
    once per root and process: cache_dir is called for every store access."""
    if root in _LOOKED_AT:
        return
    _LOOKED_AT.add(root)
    try:
        if os.path.lexists(root / TAG) or (root.is_dir() and any(root.iterdir())):
            return
        root.mkdir(parents=True, exist_ok=True)
        (root / TAG).write_bytes(TAG_SIGNATURE + b"\n# tritonpack's cache: tritonpack cache "
                                 b"info | prune [--all]\n")
    except OSError:
        pass


def cache_dir(*parts: str) -> Path:
    root = cache_root()
    _tag(root)
    path = root.joinpath(*parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "permission denied", str(path))
    except OSError as exc:
        raise cache_error(exc) from exc
    return path


_WHY = {errno.ENOTDIR: "a path in it is a file, not a directory",
        errno.EEXIST: "a path in it is a file, not a directory",
        errno.EACCES: "permission denied", errno.EPERM: "permission denied",
        errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on device",
        errno.EDQUOT: "disk quota exceeded"}


def cache_error(exc: OSError) -> CacheError:
    """One sentence for a cache tritonpack cannot use, naming where it is and how to move it."""
    why = _WHY.get(exc.errno or 0, exc.strerror or str(exc))
    return CacheError(f"tritonpack's cache {cache_root()} cannot be used: {why}",
                      hint="set TRITONPACK_CACHE to a writable directory with free space "
                           "(or free some with tritonpack cache prune)")


def under_cache(path: str | None) -> bool:
    """Whether an OSError's file name lies in the cache (a full disk there is the cache's)."""
    if not path:
        return False
    try:
        return Path(path).resolve().is_relative_to(cache_root())
    except (OSError, ValueError):
        return False


_REUSE: ContextVar[bool] = ContextVar("tritonpack_store_reuse", default=True)


def reuse() -> bool:
    """Whether tritonpack's own stores (bytecode, gzip members, wheels built from sdists) may
    be read now (``distrusted`` says no)."""
    return _REUSE.get()


@contextlib.contextmanager
def distrusted(distrust: bool = True) -> Iterator[None]:
    """``--no-cache``: within, tritonpack's stores are written but never read. A user who
    distrusts the cache gets bytecode compiled, members compressed and sdists built by this
    build, which replace the entries the stores held (a forged .pyc with a right header
    included: nothing else can tell it from the real one). The extracted conda packages and
    uv's own cache are not stores of tritonpack's: ``tritonpack cache prune --all`` empties
    them."""
    token = _REUSE.set(not distrust)
    try:
        yield
    finally:
        _REUSE.reset(token)
