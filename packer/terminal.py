"""Progress on stderr while a command runs: a line per finished stage, the current step on
a TTY. The stages report through ``packer.core.progress.Reporter``; this is the CLI's."""

from __future__ import annotations

import sys
import time

import click

from .core.redact import redact


class CliReporter:
    """Progress on stderr: a line per finished stage; the current step on a TTY. ``verbose``:
    each step's line printed when it ends, with its seconds (what it reused is logged during
    it, above its line: ``packer.core.reused``)."""

    def __init__(self, quiet: bool = False, verbose: bool = False):
        self.quiet = quiet
        self.verbose = verbose
        self._step: tuple[str, float] | None = None  # verbose: the step running, its start
        self.tty = sys.stderr.isatty()
        self._live = False
        self._t0 = time.monotonic()
        self._last = 0.0
        self._stage_t0: dict[str, float] = {}

    def clear_line(self) -> None:
        """Take the TTY's live step line away: a log line is printed next, on a line of its own
        (``packer.commands.base``)."""
        self._clear()

    def _clear(self) -> None:
        if self._live:
            sys.stderr.write("\r\033[K")
            self._live = False

    def _end_step(self) -> None:
        """verbose: the step running is over (another began, or its stage is done)."""
        if self._step is not None:
            step, began = self._step
            self._step = None
            self._clear()
            click.echo(redact(f"  … {step} ({time.monotonic() - began:.1f}s)"), err=True)

    def start(self, stage: str, detail: str = "") -> None:
        self._stage_t0[stage] = time.monotonic()
        if self.quiet:
            return
        if self.verbose:
            self._end_step()
            self._step = (detail or stage, time.monotonic())
        if self.tty:
            self._clear()
            sys.stderr.write(redact(f"  … {detail or stage}"))
            sys.stderr.flush()
            self._live = True
        elif not self.verbose:
            click.echo(redact(f"  … {detail or stage}"), err=True)

    def done(self, stage: str, summary: str, seconds: float) -> None:
        if self.quiet:
            return
        self._end_step()
        self._clear()
        took = f" ({seconds:.1f}s)" if seconds else ""  # an instant step: no "(0.0s)"
        click.echo(redact(f"{stage:>8}  {summary}{took}"), err=True)

    def note(self, message: str) -> None:
        if self.quiet:
            return
        self._clear()
        click.echo(redact(f"    note  {message}"), err=True)

    def progress(self, stage: str, current: float, total: float | None, unit: str) -> None:
        if self.quiet or not self.tty:  # a log (CI) gets the stage lines only
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        of = f" / {total:.1f}" if total else ""
        rate = ""
        if unit == "MB" and now > self._t0:
            rate = f"  {current / max(now - self._stage_t0.get(stage, self._t0), 1e-3):.0f} MB/s"
        sys.stderr.write(f"\r\033[K  … {stage}: {current:.1f}{of} {unit}{rate}")
        sys.stderr.flush()
        self._live = True
