"""SIGINT and SIGTERM: both interrupt a run (cleanups run), neither splits a commit."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

_HELD = {signal.SIGINT, signal.SIGTERM}


class AfterCommit(KeyboardInterrupt):
    """An interrupt held back through a commit that then completed: its message says so."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install() -> None:
    """SIGTERM behaves like Ctrl-C: a KeyboardInterrupt, so every ``finally`` cleans up."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back while the outputs are renamed into place; deliver after.

    The handlers are swapped for ones that only record the signal (a thread mask would not
    do: the signal may land on any thread, e.g. a resolver's or a compressor's)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in _HELD}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        raise KeyboardInterrupt(signal.Signals(caught[0]).name)
