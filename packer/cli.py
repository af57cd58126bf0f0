"""The command line: parse options, call the pipeline, render the result, map errors to exit codes.

No orchestration lives here: every command is a call into ``packer.pipeline``.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, cast

import click

from . import render
from .check import CheckReport, check
from .core import cache, signals
from .core.errors import ExitCode, TritonPackError
from .core.progress import plural
from .core.version import __version__
from .lock.lockfile import read_lock
from .options import (
    lock_options,
    make_options,
    model_dir,
    output_options,
    remote_options,
    source_options,
    target_options,
    verify_options,
)
from .pack import envcache, remote
from .pack.archive import DEFAULT_LEVEL
from .pack.envcheck import inspect_env, inspect_target
from .pack.output import FORMATS
from .pack.pack import PackOptions
from .pipeline import PackResult, check_lock, lock, package, prepare
from .repository import Failure, RepoResult, package_repository
from .resolve.recipebook import load
from .resolve.target import releases
from .scan.model import is_repository, open_model, require_dir
from .settings import describe, effective
from .verify.layout import is_ensemble
from .verify.requestfile import check_request_file
from .verify.verify import DockerOptions, VerifyReport, verify

MAIN_HELP = """Pack a Triton Python-backend model so it ships like a TorchScript model.pt.

\b
  tritonpack models/my_model/            scan, lock, build, pack, point config.pbtxt at it
  tritonpack scan models/my_model/       what model.py imports, and what provides it
  tritonpack lock models/my_model/       pin it all with hashes in tritonpack.lock
  tritonpack lock --check models/my_model/   exit 1 if the lock is stale (CI)
  tritonpack models/                     a whole model repository: every Python model
  tritonpack verify models/my_model/     load it in a real tritonserver and send a request
  tritonpack check models/               CI: locks fresh, envs match locks, configs point at them
  tritonpack inspect ENV.tar.gz          check any environment against a Triton release
  tritonpack targets                     the Triton releases tritonpack knows

Run `tritonpack COMMAND --help` for each command's options.
"""


class DefaultGroup(click.Group):
    """`tritonpack MODEL_DIR ...` means `tritonpack pack MODEL_DIR ...`."""

    default_command = "pack"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            self._refuse_unknown_command(ctx, args)
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def _refuse_unknown_command(self, ctx: click.Context, args: list[str]) -> None:
        """`tritonpack scna MODEL`: a word that is no path but looks like a command (or is
        followed by a path) is a mistyped command, not a model directory."""
        word = args[0]
        if word.startswith("-") or os.path.lexists(word) or "/" in word:
            return
        close = difflib.get_close_matches(word, list(self.commands), n=1, cutoff=0.6)
        if close or (len(args) > 1 and os.path.isdir(args[1])):
            ctx.fail(f"unknown command {word!r}"
                     + (f" (did you mean {close[0]!r}?)" if close else
                        f"; commands: {', '.join(sorted(self.commands))}"))


def _run(kw: dict[str, Any], command: str, action: Callable[[render.CliReporter], Any],
         text: Callable[[Any], str], payload: Callable[[Any], dict[str, Any]],
         exit_code: Callable[[Any], int] | None = None) -> None:
    """Call ``action``, render its result, turn errors into one message and an exit code."""
    verbose = bool(kw.get("verbose"))
    as_json = bool(kw.get("as_json"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(name)s: %(message)s")
    reporter = render.CliReporter(quiet=bool(kw.get("quiet")) or as_json)
    signals.install()
    try:
        result = action(reporter)
    except TritonPackError as exc:
        _fail(exc, verbose, as_json, command)
    except KeyboardInterrupt as exc:  # AfterCommit: held back until a commit completed
        click.echo(str(exc) if isinstance(exc, signals.AfterCommit)
                   else "interrupted: nothing in the model directory was changed", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except OSError as exc:  # the cache's or the temp dir's file system said no
        refused = cache.cache_error(exc) if cache.under_cache(exc.filename) else \
            cache.disk_full_error(exc)
        if refused is None:
            _bug(exc, verbose, as_json, command)
        _fail(refused, verbose, as_json, command)
    except Exception as exc:  # a bug in tritonpack: say so, trace only on request
        _bug(exc, verbose, as_json, command)
    if as_json:
        render.emit_json(command, payload(result))
    else:
        click.echo(text(result))
    if exit_code is not None:
        sys.exit(exit_code(result))


def _bug(exc: Exception, verbose: bool, as_json: bool, command: str) -> NoReturn:
    if as_json:
        render.emit_json(command, {"error": {"message": f"internal error: {exc!r}",
                                             "hint": "a bug in tritonpack",
                                             "exit_code": int(ExitCode.BUG)}})
    if verbose:
        traceback.print_exc()
    click.echo(f"error: internal error: {exc!r}", err=True)
    click.echo("hint: this is a bug in tritonpack; run with --verbose for the traceback",
               err=True)
    sys.exit(ExitCode.BUG)


def _fail(exc: TritonPackError, verbose: bool, as_json: bool, command: str) -> None:
    if as_json:
        verdict = {"passed": False} if command == "verify" else {}  # as on success: said
        render.emit_json(command, {**verdict, "error": {"message": exc.message, "hint": exc.hint,
                                                        "exit_code": int(exc.exit_code)}})
    click.echo(f"error: {exc.message}", err=True)
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)
    if verbose and exc.detail:
        click.echo(exc.detail.rstrip(), err=True)
    elif exc.detail:
        click.echo("(run with --verbose for the underlying output)", err=True)
    sys.exit(int(exc.exit_code))


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
    logging.shutdown()
    os._exit(code)


@click.group(cls=DefaultGroup, help=MAIN_HELP, context_settings={"max_content_width": 100})
@click.version_option(__version__, prog_name="tritonpack")
def main() -> None:
    pass


@main.command("pack")
@model_dir
@target_options
@source_options
@lock_options
@remote_options
@click.option("--frozen", is_flag=True,
              help="Use tritonpack.lock as it is: fail if it is missing or stale (CI, releases).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="tar.gz", show_default=True,
              help="tar.gz: an archive Triton unpacks at start; dir: the environment unpacked "
              "(no extraction at start; for images).")
@click.option("--output", metavar="NAME",
              help="Archive or directory name inside the model dir "
              "(default: tritonpack-env.tar.gz, or tritonpack-env/ with --format dir).")
@click.option("--compress-level", type=click.IntRange(1, 9), default=DEFAULT_LEVEL,
              show_default=True, help="gzip level of the archive (chosen by bench/).")
@click.option("--keep", multiple=True, metavar="GLOB",
              help="Keep what the default pruning would remove (repeatable), e.g. 'include'.")
@click.option("--no-prune", is_flag=True, help="Ship everything conda-pack chose.")
@click.option("--bytecode/--no-bytecode", default=None,
              help="Hash-checked .pyc for everything (read-only --format dir images) / for "
              "nothing. Default: for the stdlib and the packages the model imports (measured "
              "fastest to READY).")
@click.option("--no-cache", is_flag=True,
              help="Build even if the cache holds an environment for this lock.")
@click.option("--shared-env", metavar="PATH",
              help="Repository mode: one environment for every model, at PATH inside the "
              "repository (e.g. _envs/common.tar.gz); all models must have the same lock.")
@click.option("--sbom", is_flag=True,
              help="Also write a CycloneDX JSON bill of materials beside the environment.")
@click.option("--allow-incompatible", is_flag=True,
              help="Pack even if `tritonpack inspect` finds the env would fail in the target "
              "(a newer GLIBC than the image's, a Python or numpy mismatch): warn instead.")
@click.option("--verify", "then_verify", is_flag=True,
              help="Then load it in a real tritonserver and send it a request (tritonpack verify).")
@verify_options
@output_options
def pack_cmd(model_dir: Path, frozen: bool, fmt: str, output: str | None, compress_level: int,
             keep: tuple[str, ...], no_prune: bool, bytecode: bool | None, no_cache: bool,
             allow_incompatible: bool, sbom: bool, shared_env: str | None,
             then_verify: bool, runtime: str, inputs: Path | None, expect: Path | None,
             with_models: tuple[str, ...], timeout: float, image: str | None, gpus: bool,
             shm_size: str, tag: str | None,
             **kw: Any) -> None:
    """Scan, lock, build, pack and point config.pbtxt at the environment (the default command).

    \b
      tritonpack models/my_model/
      tritonpack models/my_model/ --triton 24.08
      tritonpack models/my_model/ --src ../shared_src --format dir
      tritonpack models/my_model/ --frozen          # release pipelines: never re-lock

    Nothing in MODEL_DIR changes until the environment is complete; the archive and
    config.pbtxt are replaced atomically.
    """
    opts = make_options(kw)
    dopts = DockerOptions(image=image, gpus=gpus, shm_size=shm_size, tag=tag)
    popts = PackOptions(format=fmt, level=compress_level, prune=not no_prune, keep=keep,
                        bytecode={None: "imported", True: "all", False: "none"}[bytecode])
    if is_repository(model_dir):
        def whole(rep: render.CliReporter) -> RepoResult:
            result = package_repository(model_dir, opts, rep, pack_options=popts,
                                        use_cache=not no_cache, frozen=frozen,
                                        allow_incompatible=allow_incompatible, sbom=sbom,
                                        shared_env=shared_env)
            if then_verify:
                for packed in result.packed:
                    p = cast(PackResult, packed)
                    try:
                        result.verified.append(verify(p.context.model.path, opts, rep,
                                                      runtime=runtime, timeout=timeout,
                                                      docker=dopts, with_models=with_models))
                    except TritonPackError as exc:
                        result.failed.append(Failure(p.context.model.name, exc))
                for skipped in result.skipped:  # ensembles: verified with their steps
                    if is_ensemble(model_dir / skipped.name):
                        try:
                            result.verified.append(verify(model_dir / skipped.name, opts, rep,
                                                          runtime=runtime, timeout=timeout,
                                                          docker=dopts))
                        except TritonPackError as exc:
                            result.failed.append(Failure(skipped.name, exc))
            return result

        _run(kw, "pack-repository", whole, render.repo_text, render.repo_payload,
             exit_code=render.repo_exit_code)
        return
    if shared_env is not None:
        raise click.UsageError("--shared-env is for a model repository (a directory of models)")
    if not then_verify:
        _run(kw, "pack",
             lambda rep: package(model_dir, opts, rep, frozen=frozen, pack_options=popts,
                                 output=output, use_cache=not no_cache,
                                 allow_incompatible=allow_incompatible, sbom=sbom),
             render.pack_text, render.pack_payload)
        return

    def both(rep: render.CliReporter) -> tuple[PackResult, VerifyReport]:
        for given, option in ((inputs, "--inputs"), (expect, "--expect")):
            if given is not None:  # refused before packing, not after
                check_request_file(given, option)
        packed = package(model_dir, opts, rep, frozen=frozen, pack_options=popts, output=output,
                         use_cache=not no_cache, allow_incompatible=allow_incompatible,
                         sbom=sbom)
        return packed, verify(model_dir, opts, rep, runtime=runtime, inputs=inputs,
                              expect=expect, timeout=timeout, docker=dopts,
                              with_models=with_models)

    _run(kw, "pack", both,
         lambda r: render.pack_text(r[0]) + "\n" + render.verify_text(r[1]),
         lambda r: {**render.pack_payload(r[0]), "verify": render.verify_payload(r[1])})


@main.command("verify")
@model_dir
@target_options
@source_options
@verify_options
@output_options
def verify_cmd(model_dir: Path, runtime: str, inputs: Path | None, expect: Path | None,
               with_models: tuple[str, ...], timeout: float, image: str | None, gpus: bool,
             shm_size: str, tag: str | None,
               **kw: Any) -> None:
    """Load the packed model in a real tritonserver and prove it answers.

    \b
      tritonpack verify models/my_model/
      tritonpack verify models/my_model/ --inputs request.json --expect response.json
      tritonpack verify models/my_model/ --runtime docker --gpus --tag registry/my_model:1.2

    Static checks first (archive layout, Python vs the stub, numpy's bound); then the model
    and tritonpack's probe (which imports every module the scan found, from inside Triton)
    load, and one inference runs with inputs made from config.pbtxt.
    Exit 11: does not load; exit 12: loads but inference fails.
    """
    opts = make_options(kw)
    dopts = DockerOptions(image=image, gpus=gpus, shm_size=shm_size, tag=tag)
    _run(kw, "verify",
         lambda rep: verify(model_dir, opts, rep, runtime=runtime, inputs=inputs, expect=expect,
                            timeout=timeout, docker=dopts, with_models=with_models),
         render.verify_text, render.verify_payload,
         exit_code=lambda r: 0 if r.passed else int(ExitCode.VERIFY_INFER))


@main.command("scan")
@model_dir
@target_options
@source_options
@output_options
def scan_cmd(model_dir: Path, **kw: Any) -> None:
    """Show what model.py imports (read, never run) and which distribution provides each.

    \b
      tritonpack scan models/my_model/
      tritonpack scan models/my_model/ --src ../shared_src --json

    Kinds: stdlib (of the target's Python), backend (provided by Triton), local (your own
    code: found in the model dir or a --src root), third-party (to install).
    """
    opts = make_options(kw)
    _run(kw, "scan", lambda rep: prepare(model_dir, opts, rep), render.scan_text,
         render.scan_payload)


@main.command("lock")
@model_dir
@target_options
@source_options
@lock_options
@click.option("--check", is_flag=True,
              help="Do not lock: exit 0 if tritonpack.lock is fresh, 1 naming what changed.")
@click.option("--upgrade", is_flag=True, help="Re-resolve even if the lock is fresh.")
@output_options
def lock_cmd(model_dir: Path, check: bool, upgrade: bool, **kw: Any) -> None:
    """Pin every conda and PyPI package with hashes in MODEL_DIR/tritonpack.lock.

    \b
      tritonpack lock models/my_model/ --triton 24.08
      tritonpack lock --check models/my_model/      # CI: is the lock stale?
      tritonpack lock models/my_model/ --python-from auto   # no conda channel here

    Re-locking with unchanged inputs changes nothing on disk.
    """
    opts = make_options(kw)
    if check:
        _run(kw, "lock-check", lambda rep: check_lock(model_dir, opts, rep), render.check_text,
             render.check_payload, exit_code=lambda res: 0 if res.fresh else 1)
        return
    _run(kw, "lock", lambda rep: lock(model_dir, opts, rep, upgrade=upgrade), render.lock_text,
         render.lock_payload)


@main.command("export")
@model_dir
@output_options
def export_cmd(model_dir: Path, **kw: Any) -> None:
    """Print the lock's PyPI part as a requirements file with --hash lines (pip-tools style).

    \b
      tritonpack export models/my_model/ > requirements.txt
      pip install --require-hashes --no-deps -r requirements.txt
    """
    def action(rep: Any) -> Any:
        require_dir(Path(model_dir))
        return read_lock(Path(model_dir) / "tritonpack.lock")

    _run(kw, "export", action,
         lambda lk: lk.requirements_txt().rstrip("\n"),
         lambda lk: {"requirements": lk.requirements_txt()})


@main.command("targets")
@click.option("--recipes", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="A recipe dir of your own that adds releases.")
@output_options
def targets_cmd(recipes: Path | None, **kw: Any) -> None:
    """List the Triton releases tritonpack can target, with their Python and CUDA."""

    def rows(rep: Any) -> list[dict[str, Any]]:
        book = load(recipes)
        return [{"release": r, **book.triton[r]} for r in releases(book)]

    def text(items: list[dict[str, Any]]) -> str:
        lines = ["RELEASE  PYTHON  CUDA     NUMPY  OS"]
        lines += [f"{i['release']:<8} {i['python']:<7} {i['cuda']:<8} {i['numpy'] or '-':<6} "
                  f"{i['os']}" for i in items]
        return "\n".join(lines)

    _run(kw, "targets", rows, text, lambda items: {"targets": items})


@main.command("check")
@model_dir
@target_options
@source_options
@output_options
def check_cmd(model_dir: Path, **kw: Any) -> None:
    """For release pipelines: exit 0 only if every lock is fresh, every environment was packed
    from its lock, and every config.pbtxt points at its environment. No network, no build.

    \b
      tritonpack check models/            # a whole model repository
      tritonpack check models/my_model/

    Exit 1 with one line per problem, naming the model.
    """
    opts = make_options(kw)

    def text(rep: CheckReport) -> str:
        head = f"checked {plural(len(rep.checked), 'model')}: {', '.join(rep.checked)}"
        return head + ("\nall fresh" if rep.ok else "".join(f"\n  {p}" for p in rep.problems))

    _run(kw, "check", lambda rep: check(model_dir, opts), text,
         lambda rep: {"ok": rep.ok, "models": list(rep.checked), "problems": list(rep.problems)},
         exit_code=lambda rep: 0 if rep.ok else 1)


@main.command("config")
@model_dir
@target_options
@source_options
@lock_options
@output_options
def config_cmd(model_dir: Path, **kw: Any) -> None:
    """Show the effective settings for MODEL_DIR and where each comes from.

    \b
    Precedence: the command line > [options] in MODEL_DIR/tritonpack.toml >
    the target already in tritonpack.lock > defaults. For example:

    \b
      # MODEL_DIR/tritonpack.toml
      [options]
      triton = "24.08"
      src = ["../../shared_src"]     # relative to the model dir
      index-url = "https://pypi.internal/simple"
    """
    opts = make_options(kw)

    def action(rep: Any) -> list[tuple[str, str, str]]:
        model = open_model(model_dir, opts.version)
        return describe(*effective(opts, model.path))

    _run(kw, "config", action,
         lambda rows: "\n".join(f"{n:<16} {v or '-':<40} {s}" for n, v, s in rows),
         lambda rows: {"settings": {n: {"value": v or None, "source": s} for n, v, s in rows}})


@main.command("inspect")
@click.argument("env", type=click.Path(path_type=Path, exists=True), metavar="ARCHIVE_OR_DIR")
@click.option("--triton", metavar="RELEASE", help="The release to check against (default: newest).")
@click.option("--python", metavar="X.Y", help="A custom stub's Python.")
@click.option("--platform", type=click.Choice(["linux-64", "linux-aarch64"]))
@click.option("--recipes", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="A recipe dir of your own (e.g. a release the built-in table lacks).")
@output_options
def inspect_cmd(env: Path, triton: str | None, python: str | None, platform: str | None,
                recipes: Path | None, **kw: Any) -> None:
    """Check any environment archive or directory against a Triton release, without running it.

    \b
      tritonpack inspect models/my_model/tritonpack-env.tar.gz --triton 24.08
      tritonpack inspect some-hand-made-env.tar.gz --json

    Layout, Python vs the stub, numpy and its bound, unsafe entries (absolute paths, '..',
    links leaving the env, device files) and the newest GLIBC_/GLIBCXX_ versions its ELF files
    need vs the image's. Exit 0 when Triton would accept it, 1 naming each problem.
    """

    def action(rep: Any) -> Any:
        target, assumed = inspect_target(env, load(recipes), triton, python, platform)
        return inspect_env(env, target), target, assumed

    def text(res: Any) -> str:
        report, target, assumed = res
        lines = [f"{report.path}: {'ok' if report.ok else 'would fail'} for Triton "
                 f"{target.release} (Python {target.python}, GLIBC {target.glibc}; {assumed})",
                 f"  format   {report.format}, {report.entries} entries",
                 f"  python   {report.python or '-'}   numpy {report.numpy or '-'}",
                 f"  needs    GLIBC {report.glibc or '-'}; GLIBCXX {report.glibcxx or '-'}"]
        lines += [f"  {f.level:<8} {f.message}" for f in report.findings]
        return "\n".join(lines)

    def payload(res: Any) -> dict[str, Any]:
        report, target, assumed = res
        return {"path": str(report.path), "ok": report.ok, "target": target.as_dict(),
                "target_source": assumed,
                "format": report.format, "entries": report.entries, "python": report.python,
                "numpy": report.numpy, "glibc": report.glibc, "glibcxx": report.glibcxx,
                "findings": [{"level": f.level, "message": f.message} for f in report.findings]}

    _run(kw, "inspect", action, text, payload, exit_code=lambda res: 0 if res[0].ok else 1)


@main.group("cache")
def cache_group() -> None:
    """Show or trim tritonpack's cache ($TRITONPACK_CACHE, default ~/.cache/tritonpack)."""


@cache_group.command("info")
@output_options
def cache_info_cmd(**kw: Any) -> None:
    """Where the cache is and what it holds: packed envs, local channels, packages, wheels;
    the remote caches set by TRITONPACK_CACHE_FROM/_TO and what the last run pulled or pushed."""

    def action(rep: render.CliReporter) -> tuple[envcache.CacheInfo, dict[str, tuple[str, ...]],
                                                  list[remote.Transfer]]:
        return envcache.info(), remote.configured(), remote.last_run()

    def text(r: tuple[envcache.CacheInfo, dict[str, tuple[str, ...]],
                      list[remote.Transfer]]) -> str:
        ci, remotes, last = r
        lines = [f"cache at {ci.root}"]
        lines += [f"  {name:<10} {n:>5} entries  {b / 1e6:>9.1f} MB"
                  for name, (n, b) in ci.sections.items()]
        for name, refs in remotes.items():
            lines.append(f"{name}: {', '.join(refs) if refs else '(none set)'}")
        if last:
            lines.append("last run, remote caches:")
            lines += [f"  {t.result:<8} {t.ref} {t.key[:12]}"
                      + (f"  {t.rate}" if t.bytes else "") + (f"  ({t.error})" if t.error else "")
                      for t in last]
        return "\n".join(lines)

    def payload(r: tuple[envcache.CacheInfo, dict[str, tuple[str, ...]],
                         list[remote.Transfer]]) -> dict[str, Any]:
        ci, remotes, last = r
        return {"root": ci.root,
                "sections": {k: {"entries": n, "bytes": b} for k, (n, b) in ci.sections.items()},
                "remote": {k: list(v) for k, v in remotes.items()},
                "last_run": [t.__dict__ for t in last]}

    _run(kw, "cache-info", action, text, payload)


@cache_group.command("prune")
@click.option("--days", type=float, default=30.0, show_default=True,
              help="Remove packed envs not used for this many days.")
@click.option("--all", "everything", is_flag=True, help="Remove everything in the cache.")
@output_options
def cache_prune_cmd(days: float, everything: bool, **kw: Any) -> None:
    """Trim the cache: unused packed envs (or everything with --all)."""
    _run(kw, "cache-prune", lambda rep: envcache.prune_cache(days, everything),
         lambda r: f"removed {r[0]} {'entry' if r[0] == 1 else 'entries'}, {r[1] / 1e6:.1f} MB",
         lambda r: {"removed": r[0], "bytes": r[1]})


def run(argv: Sequence[str] | None = None) -> None:
    main.main(args=list(argv) if argv is not None else None, prog_name="tritonpack")
