"""The command line: parse options, call the pipeline, render the result, map errors to exit codes.

No orchestration lives here, and no command is imported before it runs: ``LazyGroup`` loads
``packer.commands.NAME`` on use, so ``tritonpack --help`` and ``--version`` import click and
nothing of the pipeline, and ``tritonpack scan`` imports the scan and resolve stages only.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from .core.version import __version__

MAIN_HELP = """Pack a Triton Python-backend model so it ships like a TorchScript model.pt.

\b
  tritonpack models/my_model/            scan, lock, build, pack, point config.pbtxt at it
  tritonpack scan models/my_model/       what model.py imports, and what provides it
  tritonpack lock models/my_model/       pin it all with hashes in tritonpack.lock
  tritonpack lock --check models/my_model/   exit 1 if the lock is stale (CI)
  tritonpack models/                     a whole model repository: every Python model
  tritonpack verify models/my_model/     load it in a real tritonserver and send a request
  tritonpack image models/ --tag NAME    the image that serves them, proven before it is tagged
  tritonpack bench models/my_model/      what it costs to serve: latency, memory, shm, start-up
  tritonpack check models/               CI: locks fresh, envs match locks, configs point at them
  tritonpack inspect ENV.tar.gz          check any environment against a Triton release
  tritonpack targets                     the Triton releases tritonpack knows
  tritonpack why models/my_model/ idna   which import, file or dependency locked it

Run `tritonpack COMMAND --help` for each command's options.
"""

# name -> (module:attribute, the command's short_help for `tritonpack --help`, one line on 80
# columns; a test checks that each is its command's own)
COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("bench:bench_cmd", "What a packed model costs to serve: latency, memory, start."),
    "cache": ("cache:cache_group", "Show or trim tritonpack's cache."),
    "check": ("check:check_cmd", "CI: locks fresh, envs from their locks, configs point at them."),
    "config": ("config:config_cmd", "The effective settings and where each comes from."),
    "export": ("lock:export_cmd", "The lock's PyPI pins as a requirements file with --hash."),
    "image": ("image:image_cmd", "Build the image that serves the packed models, prove it, tag it."),
    "inspect": ("inspect:inspect_cmd", "Check an environment against a Triton release."),
    "lock": ("lock:lock_cmd", "Pin every conda and PyPI package with hashes."),
    "pack": ("pack:pack_cmd", "Scan, lock, build, pack, patch config.pbtxt (the default)."),
    "scan": ("scan:scan_cmd", "What model.py imports (never run) and what provides it."),
    "targets": ("targets:targets_cmd", "The Triton releases tritonpack can target."),
    "verify": ("verify:verify_cmd", "Load the packed model in a real tritonserver and ask it."),
    "why": ("why:why_cmd", "Which import, file or dependency locked a package."),
}


class LazyGroup(click.Group):
    """Commands imported from ``packer.commands`` when they run, not when the CLI starts."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, _, attribute = COMMANDS[cmd_name][0].partition(":")
            command = getattr(importlib.import_module(f"packer.commands.{module}"), attribute)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the summaries, importing no command."""
        shown = click.Group(commands=[click.Command(name, short_help=summary)
                                      for name, (_, summary) in COMMANDS.items()])
        shown.format_commands(ctx, formatter)


class DefaultGroup(LazyGroup):
    """`tritonpack MODEL_DIR ...` means `tritonpack pack MODEL_DIR ...`."""

    default_command = "pack"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        names = self.list_commands(ctx)
        args = self._command_first(ctx, args, names)
        if args and args[0] not in names and args[0] not in ("--help", "-h", "--version"):
            self._refuse_unknown_command(ctx, args, names)
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def _command_first(self, ctx: click.Context, args: list[str], names: list[str]) -> list[str]:
        """`tritonpack -q scan DIR` / `tritonpack --json check DIR`: options written before the
        command (a habit from git and docker) belong to it; every option is the command's. A
        command's name that is the value of the option before it (`--src lock`, a directory
        named lock) is that value, not the command."""
        if not args or not args[0].startswith("-") or args[0] in ("--help", "-h", "--version"):
            return args
        previous = ""
        for i, word in enumerate(args):
            if word == "--":
                break
            if word in names and not self._takes_value(ctx, previous, word):
                return [word, *args[:i], *args[i + 1:]]
            previous = word
        return args

    def _takes_value(self, ctx: click.Context, option: str, candidate: str) -> bool:
        """Whether ``option`` takes a value: as the command ``candidate`` names declares it,
        else (an option it does not have) as the default command does."""
        if not option.startswith("-") or "=" in option:
            return False
        for name in dict.fromkeys((candidate, self.default_command)):
            command = self.get_command(ctx, name)
            for param in command.params if command else ():
                if isinstance(param, click.Option) and option in param.opts:
                    return not param.is_flag and not param.count
        return False

    def _refuse_unknown_command(self, ctx: click.Context, args: list[str],
                                names: list[str]) -> None:
        """`tritonpack scna MODEL`: a word that is no path but looks like a command (or is
        followed by a path) is a mistyped command, not a model directory."""
        word = args[0]
        if word.startswith("-") or os.path.lexists(word) or "/" in word:
            return
        import difflib

        close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
        if close or (len(args) > 1 and os.path.isdir(args[1])):
            ctx.fail(f"unknown command {word!r}"
                     + (f" (did you mean {close[0]!r}?)" if close else
                        f"; commands: {', '.join(sorted(names))}"))

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        """With ``--json`` on the command line, a usage error is a JSON object on stdout too
        (a script parsing stdout gets an answer), besides click's message on stderr."""
        argv = list(sys.argv[1:] if args is None else args)
        from .core import network

        network.set_offline(False)  # until a command's --offline says otherwise
        if not standalone_mode or "--json" not in argv:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            from . import render

            render.emit_json("usage", render.error_payload(
                exc.format_message(), "run tritonpack --help", exc.exit_code))  # redacted
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)  # --help and --version: click's Exit


@click.group(cls=DefaultGroup, help=MAIN_HELP, context_settings={"max_content_width": 100})
@click.version_option(__version__, prog_name="tritonpack")
def main() -> None:
    pass


def console() -> NoReturn:
    """The ``tritonpack`` console script (and ``python -m packer``).

    Runs the CLI, flushes what it wrote and leaves with ``os._exit``: by then every file,
    lock, temp dir and server of the run has been closed by its own ``with``/``finally``.
    Skipping interpreter finalization avoids a crash in a native thread during teardown
    (measured here, under load, on a run that solves with py-rattler and then fails: 9 of 40
    runs ended in SIGSEGV/SIGABRT, exit 139/134 instead of 9; 0 of 40 with this exit), which
    would hand the release pipelines that read the exit code a wrong answer.
    """
    try:
        main(prog_name="tritonpack")
        code = 0
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (tritonpack scan | head)
            stream.flush()
    logging = sys.modules.get("logging")  # imported by the commands that log, not here
    if logging is not None:
        logging.shutdown()
    os._exit(code)


def run(argv: Sequence[str] | None = None) -> None:
    main.main(args=list(argv) if argv is not None else None, prog_name="tritonpack")

