"""SIGINT and SIGTERM: both interrupt a run (cleanups run), neither splits a commit, and what
an interrupt says follows what this process committed, not when the signal came.

Three states, one line each: before a command's run begins (imports, option parsing) and
after it returns (rendering), an interrupt prints its line and exits 130 at once, since nothing
is being written (``exit_on_interrupt``); while the run works it is a KeyboardInterrupt, so
every ``finally`` cleans up (``install``); through a commit it is held back (``signals_held``).
Imported by ``packer/__init__`` in the CLI's process before anything else: no ``typing`` here.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import PurePath
from types import FrameType

_HELD = (signal.SIGINT, signal.SIGTERM)

_COMMITTED: list[tuple[str, str]] = []
"""(model directory name, what is in place) for each commit this run completed, in order."""

_HOLDING: list[bool] = []  # non-empty while signals_held holds them (in the main thread)

PACK_OUTPUTS = "the new environment, lock and config.pbtxt are all in place"
LOCK_OUTPUT = "the new tritonpack.lock is in place"


class AfterCommit(KeyboardInterrupt):
    """An interrupt held back through a commit that then completed."""


def begin() -> None:
    """A command's run starts: nothing of it is committed yet."""
    _COMMITTED.clear()


def committed(model_dir: PurePath, what: str) -> None:
    """Record that a commit into ``model_dir`` completed (its outputs are in place)."""
    _COMMITTED.append((model_dir.name, what))


def interrupted(exc: BaseException | None = None) -> str:
    """The one line an interrupt prints: what this run had committed when it came."""
    reason = exc.args[0] if exc is not None and exc.args else None
    sig = f" ({reason})" if isinstance(reason, str) and reason.startswith("SIG") else ""
    if not _COMMITTED:
        return "interrupted: nothing in the model directory was changed"
    if len(_COMMITTED) == 1:
        return f"interrupted{sig} after the commit: {_COMMITTED[0][1]}"
    names = ", ".join(dict.fromkeys(name for name, _ in _COMMITTED))
    return (f"interrupted{sig} after the commits of {names}: their new outputs are all in "
            "place; nothing else was changed")


def cli_process() -> bool:
    """Whether this process is tritonpack's command line (the console script, or
    ``python -m packer``): a program importing packer as a library keeps its own handlers."""
    if sys.argv[0].rpartition("/")[2] == "tritonpack":
        return True
    args = sys.orig_argv  # while `-m` imports its package, sys.argv[0] is "-m"
    return sys.argv[:1] == ["-m"] and (
        "-mpacker" in args or ("-m", "packer") in itertools.pairwise(args))


_ON_INTERRUPT: list[Callable[[], None]] = []
"""Run before an interrupt is raised: the main thread is told, other threads' waits are not
(proc stops the commands they wait for, so a Ctrl-C does not wait for a compile to end)."""


def on_interrupt(callback: Callable[[], None]) -> None:
    _ON_INTERRUPT.append(callback)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    for callback in _ON_INTERRUPT:
        callback()
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _exit_now(signum: int, frame: FrameType | None) -> None:
    with contextlib.suppress(OSError):
        os.write(2, (interrupted(KeyboardInterrupt(signal.Signals(signum).name)) + "\n")
                 .encode())
    os._exit(130)


Handlers = dict[int, Callable[[int, FrameType | None], object] | int | None]
"""What ``signal.signal`` replaced, per signal (None: not set from Python)."""


def _set(handler: Callable[[int, FrameType | None], None]) -> Handlers:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, handler) for sig in _HELD}


def exit_on_interrupt() -> Handlers:
    """Outside a command's work (starting up, rendering): an interrupt prints its one line
    and exits 130 at once, never a traceback nor click's "Aborted!". Returns what it
    replaced."""
    return _set(_exit_now)


def install() -> Handlers:
    """While a command works: SIGINT and SIGTERM raise KeyboardInterrupt (named), so every
    ``finally`` cleans up. Returns what it replaced."""
    return _set(_interrupt)


def restore(previous: Handlers) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back while the outputs are renamed into place; deliver after.

    The handlers are swapped for ones that only record the signal (a thread mask would not
    do: the signal may land on any thread, e.g. a resolver's or a compressor's). Nested, the
    outermost hold delivers."""
    if threading.current_thread() is not threading.main_thread() or _HOLDING:
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in _HELD}
    _HOLDING.append(True)
    try:
        yield
    finally:
        _HOLDING.clear()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        raise KeyboardInterrupt(signal.Signals(caught[0]).name)
