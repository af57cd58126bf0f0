"""What a pack took from tritonpack's stores instead of doing again, counted where each store
is asked, so that a user (and a release pipeline reading ``--json``) sees why a pack was fast.

Three stores answer a partly warm pack (the environment changed, or an archive option, but
most of the work is kept): the import check's kept answer (``build.checkcache``), the
bytecode store (``pack.bytecode``) and the gzip store of large and native files' members
(``archive.writer``). Each asks here to count its answer; nothing is decided here, and a
count costs an addition under a lock.

The count in progress lives in a ``ContextVar`` set by ``counting`` (the pack stage), as
``cachehome.distrusted`` scopes ``--no-cache``: packs run at once in other threads count
apart, and a store asked outside a pack counts nowhere. Work moved onto a thread of its own
counts only if the thread runs in the caller's context (``contextvars.copy_context().run``);
tests/test_reused_report.py fails when a warm pack's counts go missing.

Each count is also logged on ``tritonpack.reuse`` at INFO: what ``--verbose`` shows, step
by step.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from .progress import plural

log = logging.getLogger("tritonpack.reuse")


@dataclass(frozen=True)
class Reused:
    """What one pack reused and what it did again."""

    checks_kept: int = 0  # import checks answered by the kept answer (not run)
    checks_run: int = 0  # import checks run
    pyc_placed: int = 0  # .pyc files placed from the bytecode store (not compiled)
    pyc_compiled: int = 0  # .pyc files compiled (by the import check or the compile step)
    members_reused: int = 0  # files whose gzip members were appended from the store
    members_reused_bytes: int = 0  # their bytes (uncompressed): not compressed again
    members_compressed: int = 0  # such files compressed by this pack
    members_compressed_bytes: int = 0

    def any(self) -> bool:
        """Whether anything at all was taken from a store."""
        return bool(self.checks_kept or self.pyc_placed or self.members_reused)


class Counting:
    """The counts of the pack in progress: added to from whichever thread asks a store."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._made: set[str] = set()  # the gzip store entries this pack wrote (``made``)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                self._counts[name] = self._counts.get(name, 0) + n

    def made(self, key: str) -> None:
        with self._lock:
            self._made.add(key)

    def made_here(self, key: str) -> bool:
        with self._lock:
            return key in self._made

    def frozen(self) -> Reused:
        with self._lock:
            return Reused(**self._counts)


_COUNTING: ContextVar[Counting | None] = ContextVar("tritonpack_reuse_counting", default=None)


@contextlib.contextmanager
def counting() -> Iterator[Counting]:
    """Within, the stores' answers are counted on the ``Counting`` yielded."""
    counts = Counting()
    token = _COUNTING.set(counts)
    try:
        yield counts
    finally:
        _COUNTING.reset(token)


def _add(**counts: int) -> None:
    counts_now = _COUNTING.get()
    if counts_now is not None:
        counts_now.add(**counts)


def check(kept: bool) -> None:
    """An import check: answered by its kept answer (``kept``), or run."""
    _add(**({"checks_kept": 1} if kept else {"checks_run": 1}))
    log.info("import check: %s", "the kept answer, every byte it read unchanged (not run)"
             if kept else "ran")


def bytecode(placed: int, compiled: int, how: str = "") -> None:
    """Bytecode: ``placed`` files from the store, ``compiled`` files compiled."""
    if not placed and not compiled:
        return
    _add(pyc_placed=placed, pyc_compiled=compiled)
    log.info("bytecode%s: %s placed from the store, %s compiled", f" ({how})" if how else "",
             plural(placed, "file"), plural(compiled, "file"))


def made(key: str) -> None:
    """The pack in progress wrote the gzip store entry ``key`` (``members``)."""
    counts_now = _COUNTING.get()
    if counts_now is not None:
        counts_now.made(key)


def members(reused: bool, size: int, key: str = "") -> None:
    """One large or native file's gzip members: appended from the store, or compressed. An
    entry of ``key`` this pack wrote itself (a second file of the same bytes: numpy's and
    scipy's copies of one vendored library) is not reused: an empty store said so, once the
    first copy's entry was in place before the second's turn, and not otherwise."""
    counts_now = _COUNTING.get()
    if reused and not (key and counts_now is not None and counts_now.made_here(key)):
        _add(members_reused=1, members_reused_bytes=size)
    else:
        _add(members_compressed=1, members_compressed_bytes=size)


def log_members(counted: Reused) -> None:
    """The gzip store's part of a written archive, in one line (not one per file)."""
    if counted.members_reused or counted.members_compressed:
        log.info("gzip members: %s reused from the store (%.1f MB), %s compressed (%.1f MB)",
                 plural(counted.members_reused, "file"), counted.members_reused_bytes / 1e6,
                 plural(counted.members_compressed, "file"),
                 counted.members_compressed_bytes / 1e6)
