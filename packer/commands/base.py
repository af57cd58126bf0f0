"""What every command does around its call: logging, progress, signals, and turning errors
into one message and an exit code (``packer.core.errors.ExitCode``)."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

import click

from .. import render
from ..core import cachehome as cache
from ..core import diskfull, signals
from ..core.errors import ExitCode, TritonPackError
from ..core.redact import redact
from ..options import Output
from ..terminal import CliReporter

# ``-v``: these loggers' INFO lines (what each step reused, the files bundled); ``-vv``: every
# logger's DEBUG too, each command run in full (the import check's 150-line source, each
# patchelf), the detail a bug report needs
_OURS = ("tritonpack", "packer")


def run(out: Output, command: str, action: Callable[[CliReporter], Any],
        text: Callable[[Any], str], payload: Callable[[Any], dict[str, Any]],
        exit_code: Callable[[Any], int] | None = None) -> None:
    """Call ``action``, render its result, turn errors into one message and an exit code."""
    logging.basicConfig(level=logging.DEBUG if out.debug else logging.WARNING,
                        format="%(name)s: %(message)s")
    for ours in _OURS:  # -v: tritonpack's own INFO lines, not the libraries' (httpx's requests)
        logging.getLogger(ours).setLevel(logging.INFO if out.verbose and not out.debug
                                         else logging.NOTSET)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _Redacting) for f in handler.filters):
            handler.addFilter(_Redacting())
    reporter = CliReporter(quiet=out.quiet or out.as_json, verbose=out.verbose)
    for handler in logging.getLogger().handlers:  # this run's reporter, not an earlier one's
        for old in [f for f in handler.filters if isinstance(f, _ClearsLine)]:
            handler.removeFilter(old)
        handler.addFilter(_ClearsLine(reporter))
    signals.begin()
    previous = signals.install()
    try:
        _render(out, command, _call(out, command, action, reporter), text, payload, exit_code)
    finally:
        signals.restore(previous)  # the caller's own (a test's), or the console's exit-now


def _call(out: Output, command: str, action: Callable[[CliReporter], Any],
          reporter: CliReporter) -> Any:
    """``action``'s result; its failure as one message and an exit code. An interrupt says
    what this run committed (``signals.interrupted``); from its return on, a second one exits
    at once with the same line (nothing is being written any more)."""
    try:
        try:
            return action(reporter)
        finally:
            signals.exit_on_interrupt()
    except TritonPackError as exc:
        fail(diskfull.reclassify(exc), out, command)
    except KeyboardInterrupt as exc:
        click.echo(signals.interrupted(exc), err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except OSError as exc:  # the cache's or the temp dir's file system said no
        refused = diskfull.from_os_error(exc) or (
            cache.cache_error(exc) if cache.under_cache(exc.filename) else None)
        if refused is None:
            bug(exc, out, command)
        fail(refused, out, command)
    except Exception as exc:  # a bug in tritonpack: say so, trace only on request
        bug(exc, out, command)


def _render(out: Output, command: str, result: Any, text: Callable[[Any], str],
            payload: Callable[[Any], dict[str, Any]],
            exit_code: Callable[[Any], int] | None) -> None:
    if out.as_json:
        render.emit_json(command, payload(result))
    else:
        click.echo(redact(text(result)))
    if exit_code is not None:
        sys.exit(exit_code(result))


class _ClearsLine(logging.Filter):
    """A log line (``--verbose``) starts on a line of its own, not after the live step line a
    terminal shows."""

    def __init__(self, reporter: CliReporter) -> None:
        super().__init__()
        self.reporter = reporter

    def filter(self, record: logging.LogRecord) -> bool:
        self.reporter.clear_line()
        return True


class _Redacting(logging.Filter):
    """Every log line with its URLs' credentials masked (``packer.core.redact``), the
    traceback a line carries too (``-vv``: a library's ``exc_info`` quotes the URL it used)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def bug(exc: Exception, out: Output, command: str) -> NoReturn:
    if out.as_json:
        render.emit_json(command, render.error_payload(
            f"internal error: {exc!r}", "a bug in tritonpack", int(ExitCode.BUG)))
    if out.verbose:
        click.echo(redact(traceback.format_exc()).rstrip(), err=True)
    click.echo(redact(f"error: internal error: {exc!r}"), err=True)
    click.echo("hint: this is a bug in tritonpack; run with --verbose for the traceback",
               err=True)
    sys.exit(ExitCode.BUG)


def fail(exc: TritonPackError, out: Output, command: str) -> NoReturn:
    if out.as_json:
        verdict = {"passed": False} if command == "verify" else {}  # as on success: said
        render.emit_json(command, {**verdict, **render.error_payload(
            exc.message, exc.hint, int(exc.exit_code), exc.detail)})
    click.echo(redact(f"error: {exc.message}"), err=True)
    if exc.hint:
        click.echo(redact(f"hint: {exc.hint}"), err=True)
    if out.verbose and exc.detail:
        click.echo(redact(exc.detail.rstrip()), err=True)
    elif exc.detail:
        click.echo("(run with --verbose for the underlying output)", err=True)
    sys.exit(int(exc.exit_code))
