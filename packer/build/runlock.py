"""One run at a time per model directory: an advisory lock under tritonpack's cache.

Two runs on the same model serialize (the second waits, saying so, or fails with
``--no-wait``); runs on different models proceed in parallel. The lock lives in
the cache, not in the model directory, so nothing is written there for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ..core.cachehome import cache_dir
from ..core.errors import BusyError
from ..core.flock import held
from .prefix import build_lock_path


def _lock_file(model_dir: Path) -> Path:
    key = hashlib.sha256(str(model_dir.resolve()).encode()).hexdigest()[:24]
    return cache_dir("locks") / f"{key}.lock"


@contextlib.contextmanager
def model_lock(model_dir: Path, *, wait: bool = True,
               on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    path = _lock_file(model_dir)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            if not wait:
                raise BusyError(
                    f"another tritonpack run (pid {holder}) is working on {model_dir}",
                    hint="wait for it, or drop --no-wait to queue behind it",
                ) from None
            if on_wait is not None:
                on_wait(f"waiting for another tritonpack run (pid {holder}) on {model_dir}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def key_lock(key: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Builds of one cache key (its fixed build path) one at a time, across models and across
    caches: the lock file lies beside the build path (``env.build_lock_path``); ``on_wait``
    is told when another run holds it."""
    with held(build_lock_path(key) or cache_dir("locks") / f"build-{key[:24]}.lock",
              remove=True, on_wait=on_wait):
        yield
