"""``tritonpack check``: for release pipelines, is everything shipped what its lock says?

Per Python model: the lock is fresh, the environment is byte for byte what was packed (its
sha256 record: a truncated, corrupted or replaced archive fails; 0.17 s for the 260 MB torch
archive, where re-inspecting it would take 9.5 s), was packed from that lock (the stamp that
is the archive's first entry), and config.pbtxt points at it. No network, no build: exit 0,
or 1 with one line per problem (a model that cannot be read at all, a broken config.pbtxt:
that error's own code, 3, as every other command gives it).

The record proves the bytes are the ones packed, not that the packing was sound: someone who
can replace the archive can replace its record too. ``--deep`` also reads every entry again
(the checks of ``tritonpack inspect``: unsafe paths and links, the Python and glibc the
target's stub needs), trusting nothing written beside the environment.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .archive.inflate import read_targz
from .archive.writer import read_stamp
from .build.prefix import bundle_plan
from .context import Context, prepare
from .core.errors import ExitCode, ModelError, TritonPackError
from .core.fsguard import not_regular
from .core.integrity import sha256_file
from .core.integrity import verify as verify_record
from .core.journal import JOURNAL
from .core.progress import Reporter
from .lock.lockfile import LOCK_NAME, read_lock
from .lock.stage import stale
from .repository import python_models
from .scan.model import CONFIG_NAME, TOKEN, is_repository, require_dir
from .settings import Options


@dataclass(frozen=True)
class CheckReport:
    checked: tuple[str, ...]
    problems: tuple[str, ...]
    locks_only: bool = False  # --locks: the environments were not looked at
    # a model that could not be read at all (a broken config.pbtxt: exit 3, as scan says it)
    # fails with its own error's code, not "stale" (1): re-locking would not mend it
    unreadable: ExitCode | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        if self.unreadable is not None:
            return int(self.unreadable)
        return int(ExitCode.CHECK_FAILED) if self.problems else 0


def check_model(path: Path, opts: Options, reporter: Reporter | None = None, *,
                deep: bool = False, locks: bool = False) -> list[str]:
    """The problems of one model; with ``locks``, only what the committed files decide (the
    lock fresh against the model dir, tritonpack.toml, declared files and --src modules,
    config.pbtxt pointing into the model dir): no environment needs to be there. A model that
    cannot be read (its config.pbtxt) raises, as every other command does."""
    ctx = prepare(path, opts, reporter)
    name = ctx.model.name
    problems: list[str] = []
    if (ctx.model.path / JOURNAL).exists():
        problems.append(f"{name}: a run was killed while committing ({JOURNAL} is there): run "
                        f"tritonpack {ctx.model.path} to finish or roll back that commit")
    if not ctx.lock_path.exists():
        return [f"{name}: no {LOCK_NAME} (run tritonpack lock {ctx.model.path})"]
    try:
        lock = read_lock(ctx.lock_path)
    except TritonPackError as exc:
        return [f"{name}: {exc.message}"]
    diff = stale(ctx, lock)
    if diff:
        fix = (f"run tritonpack lock {ctx.model.path} and commit {LOCK_NAME}" if locks else
               f"run tritonpack {ctx.model.path}: it re-locks and re-packs")
        problems.append(f"{name}: {LOCK_NAME} is stale: {'; '.join(diff)} ({fix})")
    where = ctx.model.env_location()
    if where.fault == "unset":
        return [*problems, f"{name}: config.pbtxt has no EXECUTION_ENV_PATH (run tritonpack "
                           f"{ctx.model.path})"]
    if where.fault == "no-token" or where.path is None:
        return [*problems, f"{name}: EXECUTION_ENV_PATH {where.value!r} does not start with "
                           f"{TOKEN}/"]
    if locks:  # the environment is a build output: a fresh clone has none
        return problems
    env = where.path
    problems += [f"{name}: {other.name} is an environment tritonpack made that config.pbtxt does "
                 f"not point at: remove it (it ships with the model for nothing)"
                 for other in stray_envs(ctx.model.path, env)]
    if where.fault == "missing":
        return [*problems, f"{name}: EXECUTION_ENV_PATH points at {env.name}, which does not exist "
                           f"(pack it: tritonpack {ctx.model.path}; `check --locks` needs no "
                           "environment)"]
    if where.fault == "not-env":
        return [*problems, f"{name}: EXECUTION_ENV_PATH points at {env.name}, which is "
                           f"{where.kind}, not an environment"]
    if deep:  # the entries themselves, whatever the record says
        from .envcheck.inspect import inspect_env

        problems += [f"{name}: {env.name}: {error}"
                     for error in inspect_env(env, ctx.target).errors()]
    damaged = verify_record(env)  # pack inspected exactly the bytes the record vouches for
    if damaged is not None:
        return [*problems, f"{name}: {damaged}"]
    stamp = read_stamp(env)
    if stamp is None:
        problems.append(f"{name}: {env.name} carries no tritonpack stamp: it was not packed from "
                        f"{LOCK_NAME}")
    elif stamp.get("lock") != lock.content_hash:
        problems.append(f"{name}: {env.name} was packed from another lock (re-pack it: "
                        f"tritonpack {ctx.model.path})")
    else:
        problems += bundled_problems(ctx, env, stamp, deep=deep)
    return problems


def bundled_problems(ctx: Context, env: Path, stamp: dict[str, Any], *,
                     deep: bool = False) -> list[str]:
    """The bundled --src files the environment ships against the sources as they are now:
    a lock pins packages, not the user's own code, so a changed module passes every lock
    check. The stamp records each file's sha256; ``deep`` hashes the shipped files
    themselves, trusting no record."""
    name, fix = ctx.model.name, f"re-pack it: tritonpack {ctx.model.path}"
    plan = bundle_plan(ctx.report, frozenset(ctx.options.allow_secrets)).files
    now = {rel: sha256_file(src) for rel, src in plan}
    if not now and "bundled" not in stamp:
        return []
    if "bundled" not in stamp:
        return [f"{name}: {env.name} records no hashes of its bundled modules (packed by an "
                f"older tritonpack): {fix}"]
    shipped = dict(stamp["bundled"])
    if deep:
        try:
            shipped = shipped_files(env, str(stamp.get("target", {}).get("python", "")) or
                                    ctx.target.python, set(shipped) | set(now))
        except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:  # the stamp, first,
            return [f"{name}: {env.name}: its bundled modules cannot be read back "  # read
                    f"({exc}): {fix}"]
    changed = sorted(rel for rel in now.keys() & shipped.keys() if now[rel] != shipped[rel])
    added, gone = sorted(now.keys() - shipped.keys()), sorted(shipped.keys() - now.keys())
    said = [f"{rel} changed" for rel in changed] + [f"{rel} is new" for rel in added] + \
        [f"{rel} is no longer bundled" for rel in gone]
    if not said:
        return []
    return [f"{name}: {env.name} ships older bundled code than --src holds: "
            f"{', '.join(said[:3])}{f' (+{len(said) - 3} more)' if len(said) > 3 else ''} "
            f"({fix})"]


def shipped_files(env: Path, python: str, wanted: set[str]) -> dict[str, str]:
    """sha256 of the named site-packages files as the environment holds them (a directory,
    or the archive read member by member)."""
    site = f"lib/python{python}/site-packages/"
    if env.is_dir():
        return {rel: sha256_file(env / site / rel) for rel in wanted
                if (env / site / rel).is_file()}
    found: dict[str, str] = {}
    with read_targz(env) as tar:
        for member in tar:
            rel = member.name.removeprefix("./").removeprefix(site)
            if member.isfile() and member.name.removeprefix("./").startswith(site) \
                    and rel in wanted:
                fh = tar.extractfile(member)
                if fh is not None:
                    found[rel] = hashlib.sha256(fh.read()).hexdigest()
    return found


def stray_envs(model_dir: Path, current: Path) -> list[Path]:
    """Environments tritonpack made (they carry its stamp) in the model dir, other than
    ``current``: left by a run with another --format or --output."""
    found = []
    for entry in sorted(model_dir.iterdir()):
        if entry == current or entry.name.startswith(".") or entry.is_symlink():
            continue
        candidate = entry.is_dir() or (entry.name.endswith(".tar.gz")
                                       and not_regular(entry) is None)
        if candidate and read_stamp(entry) is not None:
            found.append(entry)
    return found


def check(path: Path, opts: Options, reporter: Reporter | None = None, *,
          deep: bool = False, locks: bool = False) -> CheckReport:
    require_dir(path)
    if is_repository(path):
        models = python_models(path)[0]
    elif os.path.lexists(path / CONFIG_NAME):
        models = [path]
    else:  # neither a model nor a repository: a mistyped path, not a model with a problem
        raise ModelError(f"{path}: no {CONFIG_NAME}, and no model directory in it holds one",
                         hint="pass a model directory or a model repository")
    problems: list[str] = []
    unreadable: ExitCode | None = None
    for model in models:  # one unreadable model does not hide the others' problems
        try:
            problems += check_model(model, opts, reporter, deep=deep, locks=locks)
        except TritonPackError as exc:
            problems.append(exc.message)
            unreadable = unreadable or exc.exit_code
    return CheckReport(tuple(m.resolve().name for m in models), tuple(problems), locks,
                       unreadable)
