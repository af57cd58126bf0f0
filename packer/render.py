"""Turn results into what the user reads: text tables or versioned JSON. No logic lives here.

One ``X_text`` and one ``X_payload`` per result; progress lines are ``packer.terminal``'s."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import click

from .core.progress import plural
from .core.redact import redact

if TYPE_CHECKING:  # results only: rendering one never imports the stages that make the others
    from .caches.envs import CacheInfo
    from .caches.remote import Transfer
    from .context import Context
    from .core.errors import TritonPackError
    from .core.reused import Reused
    from .cost.measure import ModelCost
    from .each import Export, LockChecks, Scans
    from .envcheck.inspect import InspectReport
    from .freshness import CheckReport
    from .imaging import ImageReport
    from .lock.lockfile import Lockfile
    from .lock.stage import CheckResult, LockResult
    from .lock.why import WhyResult
    from .pipeline import PackResult
    from .repository import RepoResult
    from .resolve.target import Target
    from .serving import BenchResult
    from .verify.stage import VerifyReport

SCHEMA = "tritonpack/v1"


def emit_json(command: str, payload: dict[str, Any]) -> None:
    """The one JSON document a command prints, its URLs' credentials masked (``redact``)."""
    click.echo(redact(json.dumps({"schema": SCHEMA, "command": command, **payload}, indent=2,
                                 sort_keys=False)))


def _table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def scan_payload(ctx: Context) -> dict[str, Any]:
    return {
        "model": ctx.model.name,
        "model_dir": str(ctx.model.path),
        "version": ctx.model.version,
        "target": ctx.target.as_dict(),
        "target_from": ctx.target_from,
        "imports": [
            {"import": r.key, "kind": r.kind.value, "distribution": r.distribution,
             **({"extras": list(r.extras)} if r.extras else {}),
             "source": r.source or None, "optional": r.optional, "where": list(r.locations)}
            for r in ctx.requirements.rows
        ],
        "local_modules": [
            {"name": m.name, "path": str(m.path), "bundled": not m.in_model_dir}
            for m in ctx.report.local
        ],
        "requirements": list(ctx.requirements.pypi),
        "declared": [{"requirement": line, "source": src}
                     for line, src in ctx.requirements.origins],
        "declared_files": list(ctx.declared.files),
        "warnings": [*ctx.warnings, *map(guess_note, ctx.requirements.guesses)],
        "files": list(ctx.report.files),
    }


def guess_note(guess: tuple[str, str, str]) -> str:
    from .resolve.requirements import guess_note as note

    return note(guess)


def _origin(source: str) -> str:
    """Where the target release came from, as the first line of a command says it."""
    from .context import TARGET_FROM

    return TARGET_FROM.get(source, source)


def _target(release: str, python: str, platform: str, origin: str) -> str:
    """"Triton R (Python X.Y, PLATFORM): where it came from", worded as every command's first
    line (packer.context.target_line) words it: one level of brackets, the origin after a
    colon (its own "(pin one with --triton)" nested in brackets read badly)."""
    return f"Triton {release} (Python {python}, {platform}): {_origin(origin)}"


def _locked(lock: Lockfile, origin: str) -> str:
    """The target a lock was made for, worded as ``_target``."""
    return _target(lock.target["release"], lock.python_version(), lock.target["platform"], origin)


def _mb(size: int) -> str:
    """Megabytes with the precision a reader needs: '38 MB', '1.3 MB', '0.2 MB'."""
    return f"{size / 1e6:.0f} MB" if size >= 10e6 else f"{size / 1e6:.1f} MB"


def scan_text(ctx: Context) -> str:
    rows = []
    for r in ctx.requirements.rows:
        kind = r.kind.value + (" (optional)" if r.optional else "")
        dist = (r.distribution or "-") + (f"[{','.join(r.extras)}]" if r.extras else "")
        if r.source and r.source not in ("recipe", "declared"):
            dist += f" ({r.source})"
        rows.append((r.key, kind, dist, ", ".join(r.locations)))
    out = [f"{ctx.model.name} (version {ctx.model.version}) for "
           f"{_target(ctx.target.release, ctx.target.python, ctx.target.platform, ctx.target_from)}",
           "",
           _table(rows, ("IMPORT", "KIND", "DISTRIBUTION", "WHERE"))]
    bundled = [m.name for m in ctx.report.bundled()]
    if bundled:
        out += ["", f"bundled into the environment: {', '.join(bundled)}"]
    out += ["", "requirements: " + ", ".join(ctx.requirements.pypi)]
    if ctx.requirements.origins:
        out += ["", _table([(line, src) for line, src in ctx.requirements.origins],
                           ("DECLARED", "FROM"))]
    return "\n".join(out)


def lock_payload(res: LockResult) -> dict[str, Any]:
    return {
        "lock": str(res.path),
        "written": res.written,
        "reused": res.reused,
        "inputs_hash": res.lock.inputs_hash,
        "target": res.lock.target,
        "target_from": res.context.target_from,
        "python": res.lock.python_version(),
        "conda": [{"name": p.name, "version": p.version, "build": p.build, "sha256": p.sha256}
                  for p in res.lock.conda],
        "pypi": [{"name": p.name, "version": p.version, **({"sdist": p.sdist} if p.sdist else {})}
                 for p in res.lock.pypi],
        "next": res.next_step or None,
    }


def lock_text(res: LockResult) -> str:
    state = "reused (fresh)" if res.reused else ("written" if res.written else "unchanged")
    pins = ", ".join(f"{p.name}=={p.version}" + (" (built from source)" if p.sdist else "")
                     for p in res.lock.pypi)
    return (f"{res.path}: {state}\n"
            f"  target  {_locked(res.lock, res.context.target_from)}\n"
            f"  conda   {plural(len(res.lock.conda), 'package')}\n"
            f"  pypi    {plural(len(res.lock.pypi), 'package')}: {pins or 'none'}"
            + (f"\nnext: {res.next_step}" if res.next_step else ""))


def check_payload(res: CheckResult) -> dict[str, Any]:
    return {"lock": str(res.path), "fresh": res.fresh, "problems": list(res.problems)}


def check_text(res: CheckResult) -> str:
    if res.fresh:
        return f"{res.path}: fresh"
    return "\n".join([f"{res.path}: stale", *(f"  {p}" for p in res.problems),
                      f"run: tritonpack lock {res.path.parent}   (then commit {res.path.name})"])


def lock_checks_payload(res: LockChecks) -> dict[str, Any]:
    return {"repository": str(res.repo), "fresh": res.fresh,
            "models": [{"model": r.path.parent.name, **check_payload(r)} for r in res.results],
            "failed": [failed_entry(f.name, f.error, key="model") for f in res.failed]}


def lock_checks_text(res: LockChecks) -> str:
    stale = [r for r in res.results if not r.fresh]
    count = len(res.results) + len(res.failed)
    head = f"{res.repo}: {plural(count, 'model')} checked, " + (
        "every lock fresh" if res.fresh else
        ", ".join(s for s in (f"{len(stale)} stale" if stale else "",
                              f"{len(res.failed)} not checked" if res.failed else "") if s))
    lines = [head, *(check_text(r) for r in stale)]
    for f in res.failed:
        lines.append(f"{f.name}: {f.error.message}")
        if f.error.hint:
            lines.append(f"  hint: {f.error.hint}")
    return "\n".join(lines)


def scans_payload(res: Scans) -> dict[str, Any]:
    return {"models": [scan_payload(c) for c in res.contexts],
            "failed": [failed_entry(f.name, f.error) for f in res.failed]}


def scans_text(res: Scans) -> str:
    parts = [scan_text(c) for c in res.contexts]
    parts += [f"{f.name}: error: {f.error.message}" for f in res.failed]
    return ("\n\n" + "-" * 60 + "\n\n").join(parts)


def export_all_text(res: Export) -> str:
    head = f"# tritonpack export: the PyPI pins of {', '.join(res.models)}\n"
    return (head + res.requirements_txt()).rstrip("\n")


def export_all_payload(res: Export) -> dict[str, Any]:
    return {"models": list(res.models), "requirements": res.requirements_txt()}


def pack_payload(res: PackResult) -> dict[str, Any]:
    return {
        "model": res.context.model.name,
        "model_dir": str(res.context.model.path),
        "archive": {"path": str(res.archive.path), "format": res.archive.format,
                    "size": res.archive.size, "files": res.archive.files,
                    "sha256": res.archive.sha256 or None},
        "execution_env_path": res.config.value,
        "config_changed": res.config.changed,
        "python": res.lock.lock.python_version(),
        "target": res.lock.lock.target,
        "target_from": res.context.target_from,
        "packages": {"conda": len(res.lock.lock.conda), "pypi": len(res.lock.lock.pypi)},
        "bundled": list(res.bundled),
        "skipped": list(res.skipped),
        "lock": {"path": str(res.lock.path), "written": res.lock.written,
                 "reused": res.lock.reused},
        "seconds": round(res.seconds, 2),
        "cached": res.cached,
        "pruned": {"files": res.archive.pruned.files, "bytes": res.archive.pruned.bytes,
                   "rules": {k: {"files": f, "bytes": b}
                             for k, (f, b) in res.archive.pruned.removed.items()},
                   "kept": list(res.archive.pruned.kept)},
        "largest_packages": [{"name": n, "bytes": b} for n, b in res.archive.largest],
        "sbom": str(res.sbom) if res.sbom else None,
        "reused": reused_payload(res.reused),
    }


def reused_payload(r: Reused) -> dict[str, Any]:
    """What a pack took from tritonpack's stores and what it did again (``core.reused``)."""
    return {
        "import_check": {"kept_answers": r.checks_kept, "runs": r.checks_run},
        "bytecode": {"placed": r.pyc_placed, "compiled": r.pyc_compiled},
        "gzip_members": {"reused_files": r.members_reused, "reused_bytes": r.members_reused_bytes,
                         "compressed_files": r.members_compressed,
                         "compressed_bytes": r.members_compressed_bytes},
    }


def reused_text(r: Reused) -> str:
    """One short line of what a pack reused; "" when nothing."""
    parts = []
    if r.checks_kept:
        asked = r.checks_kept + r.checks_run
        parts.append("the import check's answer" if asked == 1 else
                     f"the import checks' answers ({r.checks_kept} of {asked})")
    if r.pyc_placed:
        parts.append(f"{r.pyc_placed} of {plural(r.pyc_placed + r.pyc_compiled, 'bytecode file')}"
                     if r.pyc_compiled else plural(r.pyc_placed, "bytecode file"))
    if r.members_reused:
        parts.append(f"{r.members_reused} {'file' if r.members_reused == 1 else 'files'}' "
                     f"compressed members ({_mb(r.members_reused_bytes)})")
    return ", ".join(parts)


def pack_text(res: PackResult) -> str:
    a = res.archive
    size = (f"{a.size / 1e6:.0f} MB" if a.format == "dir" else f"archive {a.size / 1e6:.0f} MB"
            + (f", unpacked {a.unpacked / 1e6:.0f} MB" if a.unpacked else ""))
    lines = [
        f"packed {res.context.model.name} in {res.seconds:.1f}s",
        f"  environment  {a.path} ({a.format}, {size}, {plural(a.files, 'file')})",
        f"  target       {_locked(res.lock.lock, res.context.target_from)}",
        f"  packages     {len(res.lock.lock.conda)} conda, {len(res.lock.lock.pypi)} PyPI",
        f"  bundled      {', '.join(res.bundled) or 'none'}",
        f"  config       EXECUTION_ENV_PATH = {res.config.value}"
        + ("" if res.config.changed else " (already set)"),
    ]
    if res.skipped:
        lines.append(f"  skipped      {', '.join(res.skipped)} (secrets and junk are never bundled)")
    if a.pruned.files:
        lines.append(f"  pruned       {plural(a.pruned.files, 'file')}, {_mb(a.pruned.bytes)}: "
                     + ", ".join(f"{k} {_mb(b)}" for k, (_, b) in sorted(  # the largest first
                         a.pruned.removed.items(), key=lambda kv: (-kv[1][1], kv[0]))
                                 if b >= 50_000))
    if a.largest:
        lines.append("  largest      " + ", ".join(f"{n} {_mb(b)}" for n, b in a.largest[:5]
                                                  if b >= 50_000))
    if res.cached:
        lines.append("  cache        reused: no solve, no install, no pack")
    elif reused := reused_text(res.reused):
        lines.append(f"  reused       {reused}")
    return "\n".join(lines)


def verify_payload(rep: VerifyReport) -> dict[str, Any]:
    return {
        "model": rep.model, "passed": rep.passed, "checks": rep.checks,
        "runtime": rep.runtime, "env": rep.env,
        "python": rep.python, "ready_seconds": round(rep.ready_seconds, 3),
        "first_inference_ms": round(rep.first_inference_ms, 1),
        "probe": rep.probe, "outputs": rep.outputs, "kind": rep.kind,
        "responses": rep.responses, "callees": list(rep.callees), "inputs": rep.inputs,
        "input_sources": dict(rep.input_sources),
        "warnings": list(rep.warnings), "notes": list(rep.notes),
        "proof": _proof_payload(rep),
        **({"bench": cost_payload(rep.measured)} if rep.measured is not None else {}),
    }


def _proof_payload(rep: VerifyReport) -> dict[str, Any] | None:
    p = rep.proof
    if p is None:
        return None
    return {"statement": p.statement, "runtime": p.runtime, "server_release": p.server_release,
            "target": p.target, "image": p.image, "target_image": p.own_image,
            "not_covered": list(p.not_covered)}


def verify_text(rep: VerifyReport) -> str:
    imports = rep.probe.get("imports", {})
    failed = [k.replace("_", " ") for k, v in rep.checks.items()
              if not v and k != "values_compared"]
    where = rep.proof.statement if rep.proof else f"{rep.runtime} tritonserver"
    answers = "answers the expected values" if rep.compared else "answers"
    head = (f"verified {rep.model}: loads and {answers} ({where})" if not failed
            else f"NOT verified {rep.model}: failed {', '.join(failed)} ({where})")
    lines = [
        head,
        f"  ready        {rep.ready_seconds:.1f}s after server start",
        f"  inference    {rep.kind}, {rep.responses} response{'s' * (rep.responses != 1)} in "
        f"{rep.first_inference_ms:.0f} ms, outputs {', '.join(rep.outputs) or 'none'}",
        f"  inputs       {rep.inputs}",
        *([f"  values       compared with --expect {rep.expected}: "
           f"{'every response matches' if rep.responses > 1 else 'the response matches'}"]
          if rep.compared else []),
        f"  environment  Python {rep.python} at {rep.probe.get('prefix')}",
        f"  imports      {plural(len(imports), 'module')} import: "
        f"{', '.join(sorted(imports)) or 'none'}",
    ]
    if rep.callees:
        lines.append(f"  callees      {', '.join(rep.callees)} (loaded with it)")
    if rep.proof is not None:
        lines += [f"  not covered  {gap}" for gap in rep.proof.not_covered]
    lines += [f"  note         {n}" for n in rep.notes]
    lines += [f"  warning      {w}" for w in rep.warnings]
    if rep.measured is not None:
        from .cost.advice import advice

        lines += ["", *_cost_lines(rep.measured)]
        lines += [f"advice: {line}" for line in advice([rep.measured])]
    return "\n".join(lines)


def image_payload(rep: ImageReport) -> dict[str, Any]:
    return {
        "tag": rep.tag, "image_id": rep.image_id, "base": rep.base, "release": rep.release,
        "passed": rep.passed, "labels": dict(rep.labels),
        "ready_seconds": round(rep.ready_seconds, 3),
        "models": [{"name": s.name, "backend": s.backend, "lock": s.lock, "ready": True,
                    "answered": bool(s.kind), "kind": s.kind or None, "responses": s.responses,
                    "outputs": list(s.outputs), "inputs": s.inputs or None}
                   for s in rep.models],
        "notes": list(rep.notes),
    }


def image_text(rep: ImageReport) -> str:
    lines = [f"image {rep.tag}: serves {plural(len(rep.models), 'model')} (Triton "
             f"{rep.release}, FROM {rep.base})",
             f"  proved       its own command loaded every model: READY in "
             f"{rep.ready_seconds:.1f}s, then each answered",
             f"  id           {rep.image_id}"]
    for s in rep.models:
        answer = (f"{s.kind}, {plural(s.responses, 'response')}, outputs "
                  f"{', '.join(s.outputs) or 'none'} (inputs {s.inputs})") if s.kind else "READY"
        lock = f", lock {s.lock.removeprefix('sha256:')[:12]}" if s.lock else ""
        lines.append(f"  model        {s.name}: {answer}{lock}")
    lines += [f"  label        {k}={v}" for k, v in rep.labels
              if not k.startswith("io.tritonpack.lock.")]
    lines += [f"  note         {n}" for n in rep.notes]
    return "\n".join(lines)


def repo_text(res: RepoResult) -> str:
    rows = []
    for packed in res.packed:
        p = cast("PackResult", packed)
        rows.append((p.context.model.name, p.lock.lock.python_version(),
                     f"{p.archive.size / 1e6:.1f} MB", "cached" if p.cached else "built",
                     p.archive.path.name))
    packing = [f for f in res.failed if f.stage == "pack"]
    for f in packing:
        rows.append((f.name, "-", "-", "FAILED", f.error.message))
    for s in res.skipped:
        rows.append((s.name, "-", "-", "skipped", s.why))
    verifying = [f for f in res.failed if f.stage == "verify"]
    out = [f"{res.repo}: {len(res.packed)} packed ({plural(res.builds, 'build')}), "
           f"{len(res.skipped)} left alone, {len(packing)} failed"
           + (f"; {len(verifying)} failed to verify" if verifying else ""), "",
           _table(rows, ("MODEL", "PYTHON", "SIZE", "STATUS", "ENVIRONMENT / WHY"))]
    hints = [f for f in packing if f.error.hint]
    if hints:  # the fix, as the one-model command gives it
        out += ["", *(f"{f.name}: hint: {f.error.hint}" for f in hints)]
    if verifying:
        out += ["", "failed to verify (packed above):"]
        for f in verifying:
            out.append(f"  {f.name}: {f.error.message}")
            if f.error.hint:
                out.append(f"    hint: {f.error.hint}")
    if res.verified:
        out += ["", "verified: " + ", ".join(
            f"{cast('VerifyReport', v).model} (READY {cast('VerifyReport', v).ready_seconds:.1f}s)"
            for v in res.verified)]
    return "\n".join(out)


def repo_payload(res: RepoResult) -> dict[str, Any]:
    return {
        "repository": str(res.repo),
        "builds": res.builds,
        "models": [pack_payload(cast("PackResult", p)) for p in res.packed],
        "skipped": [{"name": s.name, "why": s.why} for s in res.skipped],
        "failed": [{**failed_entry(f.name, f.error), "stage": f.stage} for f in res.failed],
        "verified": [verify_payload(cast("VerifyReport", v)) for v in res.verified],
        "warnings": list(res.warnings),
    }


def repo_exit_code(res: RepoResult) -> int:
    return int(res.failed[0].error.exit_code) if res.failed else 0


def export_text(lock: Lockfile) -> str:
    return lock.requirements_txt().rstrip("\n")


def export_payload(lock: Lockfile) -> dict[str, Any]:
    return {"requirements": lock.requirements_txt()}


def targets_text(items: list[dict[str, Any]]) -> str:
    lines = ["RELEASE  PYTHON  CUDA     NUMPY  OS"]
    lines += [f"{i['release']:<8} {i['python']:<7} {i['cuda']:<8} {i['numpy'] or '-':<6} "
              f"{i['os']}" for i in items]
    return "\n".join(lines)


def targets_payload(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"targets": items}


def repo_check_text(rep: CheckReport) -> str:
    head = f"checked {plural(len(rep.checked), 'model')}: {', '.join(rep.checked)}"
    fresh = "every lock fresh (--locks: no environment checked)" if rep.locks_only else "all fresh"
    return head + (f"\n{fresh}" if rep.ok else "".join(f"\n  {p}" for p in rep.problems))


def repo_check_payload(rep: CheckReport) -> dict[str, Any]:
    return {"ok": rep.ok, "models": list(rep.checked), "problems": list(rep.problems)}


def config_text(rows: list[tuple[str, str, str]]) -> str:
    width = max((len(n) for n, _, _ in rows), default=0)
    return "\n".join(f"{n:<{width}} {v or '-':<40} {s}" for n, v, s in rows)


def config_payload(rows: list[tuple[str, str, str]]) -> dict[str, Any]:
    return {"settings": {n: {"value": v or None, "source": s} for n, v, s in rows}}


def inspect_text(res: tuple[InspectReport, Target, str]) -> str:
    report, target, assumed = res
    lines = [f"{report.path}: {'ok' if report.ok else 'would fail'} for Triton "
             f"{target.release} (Python {target.python}, GLIBC {target.glibc}; {assumed})",
             f"  format   {report.format}, {report.entries} entries",
             f"  python   {report.python or '-'}   numpy {report.numpy or '-'}",
             f"  needs    GLIBC {report.glibc or '-'}; GLIBCXX {report.glibcxx or '-'}"]
    lines += [f"  {f.level:<8} {f.message}" for f in report.findings]
    return "\n".join(lines)


def inspect_payload(res: tuple[InspectReport, Target, str]) -> dict[str, Any]:
    report, target, assumed = res
    return {"path": str(report.path), "ok": report.ok, "target": target.as_dict(),
            "target_source": assumed,
            "format": report.format, "entries": report.entries, "python": report.python,
            "numpy": report.numpy, "glibc": report.glibc, "glibcxx": report.glibcxx,
            "findings": [{"level": f.level, "message": f.message} for f in report.findings]}


CacheView = tuple["CacheInfo", dict[str, tuple[str, ...]], list["Transfer"]]


def cache_info_text(r: CacheView) -> str:
    ci, remotes, last = r
    lines = [f"cache at {ci.root}"]
    width = max((len(name) for name in ci.sections), default=0)
    lines += [f"  {name:<{width}} {n:>6} {'entry  ' if n == 1 else 'entries'}  {b / 1e6:>9.1f} MB"
              for name, (n, b) in ci.sections.items()]
    for name, refs in remotes.items():
        lines.append(f"{name}: {', '.join(refs) if refs else '(none set)'}")
    if last:
        lines.append("last run, remote caches:")
        lines += [f"  {t.result:<8} {t.ref} {t.key[:12]}"
                  + (f"  {t.rate}" if t.bytes else "") + (f"  ({t.error})" if t.error else "")
                  for t in last]
    return "\n".join(lines)


def cache_info_payload(r: CacheView) -> dict[str, Any]:
    ci, remotes, last = r
    return {"root": ci.root,
            "sections": {k: {"entries": n, "bytes": b} for k, (n, b) in ci.sections.items()},
            "remote": {k: list(v) for k, v in remotes.items()},
            "last_run": [t.__dict__ for t in last]}


def cache_prune_text(r: tuple[int, int]) -> str:
    return f"removed {r[0]} {'entry' if r[0] == 1 else 'entries'}, {r[1] / 1e6:.1f} MB"


def cache_prune_payload(r: tuple[int, int]) -> dict[str, Any]:
    return {"removed": r[0], "bytes": r[1]}


def why_text(res: WhyResult) -> str:
    lines = [f"{res.name} {res.version} ({res.source}) is in {res.model}'s lock because:"]
    for chain in res.chains:
        *packages, reason = chain
        needs = "".join(f" <- {p}" for p in packages[1:])
        lines.append(f"  {packages[0]}{needs}: {reason}" if packages else f"  {reason}")
    return "\n".join(lines)


def why_payload(res: WhyResult) -> dict[str, Any]:
    return {"model": res.model, "package": res.name, "version": res.version,
            "source": res.source,
            "because": [{"chain": list(c[:-1]), "reason": c[-1]} for c in res.chains]}


def error_payload(message: str, hint: str | None, exit_code: int,
                  detail: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "hint": hint, "exit_code": exit_code,
                      "detail": detail}}


def failed_entry(name: str, error: TritonPackError, key: str = "name") -> dict[str, Any]:
    """One model that failed in a repository's run, as its own command's error says it: the
    message, hint and exit code, and the underlying output (``detail``, what --verbose
    prints; null when there is none), so that a JSON reader learns why without a rerun."""
    return {key: name, "message": error.message, "hint": error.hint,
            "exit_code": int(error.exit_code), "detail": error.detail}


BENCH_SCHEMA = "tritonpack/bench/v1"  # docs/schema/bench.json


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def cost_payload(c: ModelCost) -> dict[str, Any]:
    from .cost.advice import shm_flag
    from .cost.measure import SHM_MARGIN

    s = c.startup
    return {
        "model": c.model, "kind": c.kind, "inputs": c.inputs, "instances": c.instances,
        "tool": c.load.tool, "fallback_reason": c.load.why or None,
        "levels": [{"concurrency": lv.concurrency, "requests": lv.requests,
                    "p50_ms": round(lv.p50_ms, 3), "p90_ms": round(lv.p90_ms, 3),
                    "p99_ms": round(lv.p99_ms, 3), "throughput": round(lv.throughput, 2)}
                   for lv in c.load.levels],
        "memory": {
            "server": {"pid": c.server.pid, "exe": c.server.exe, "idle_bytes": c.server.idle,
                       "load_bytes": c.server.load},
            "stubs": [{"pid": m.pid, "ppid": m.ppid, "instance": m.instance, "exe": m.exe,
                       "idle_bytes": m.idle, "load_bytes": m.load} for m in c.stubs],
        },
        "shm": {
            "regions": [{"name": r.name, "instance": r.instance, "idle_bytes": r.idle,
                         "peak_bytes": r.peak} for r in c.regions],
            "peak_bytes": c.shm_peak, "needed_bytes": c.shm_needed, "margin": SHM_MARGIN,
            "shm_size": shm_flag(c.shm_needed),
        },
        "startup": None if s is None else {
            "format": s.format, "unpack_s": round(s.unpack, 3),
            "stub_start_s": round(s.stub_start, 3), "initialize_s": round(s.initialize, 3),
            "ready_s": round(s.ready, 3)},
        "env_bytes": c.env_bytes,
        "notes": list(c.notes),
    }


def _cost_lines(c: ModelCost) -> list[str]:
    from .cost.advice import shm_flag
    from .cost.measure import SHM_MARGIN

    rows = [(str(lv.concurrency), f"{lv.p50_ms:.2f}", f"{lv.p90_ms:.2f}", f"{lv.p99_ms:.2f}",
             f"{lv.throughput:.1f}") for lv in c.load.levels]
    tool = c.load.tool + (f" ({c.load.why})" if c.load.why else "")
    lines = [f"{c.model}: {c.kind}, {plural(c.instances, 'instance')}, measured by {tool}, "
             f"inputs {c.inputs}", ""]
    lines += ["  " + ln for ln in _table(rows, ("CONCURRENCY", "P50 MS", "P90 MS", "P99 MS",
                                                 "INFER/S")).splitlines()]
    stubs = ", ".join(f"{m.instance} {_mb(m.idle)} idle / {_mb(m.load)} load" for m in c.stubs)
    lines += ["",
              f"  memory       server {_mb(c.server.idle)} idle / {_mb(c.server.load)} load; "
              f"stubs: {stubs or 'none found'}",
              f"  /dev/shm     peak {_mb(c.shm_peak)} in {plural(len(c.regions), 'region')}: "
              f"--shm-size >= {shm_flag(c.shm_needed)} (peak + {SHM_MARGIN:.0%})"]
    s = c.startup
    if s is not None:
        lines.append(f"  start-up     READY in {_s(s.ready)} ({s.format}): unpack {_s(s.unpack)}, "
                     f"stub start {_s(s.stub_start)}, initialize() {_s(s.initialize)}")
    lines.append(f"  environment  {_mb(c.env_bytes)} unpacked on disk")
    lines += [f"  note         {n}" for n in c.notes]
    return lines


def bench_text(res: BenchResult) -> str:
    out: list[str] = []
    for c in res.costs:
        out += [*_cost_lines(c), ""]
    if res.repository:
        t = res.totals
        rows = [(c.model, str(c.instances), f"{c.load.levels[-1].p99_ms:.2f}" if c.load.levels
                 else "-", f"{max((lv.throughput for lv in c.load.levels), default=0):.1f}",
                 _mb(c.stub_peak), _mb(c.shm_needed),
                 _s(c.startup.ready) if c.startup else "-") for c in res.costs]
        rows.append(("TOTAL", str(t.instances), "", "", _mb(t.memory), _mb(t.shm_needed),
                     _s(t.startup) if t.startup is not None else "-"))
        out += [_table(rows, ("MODEL", "INSTANCES", "P99 MS (MAX CONC.)", "MAX INFER/S",
                              "STUB / TOTAL MEMORY", "SHM", "READY")), ""]
        out += [f"failed: {f.name}: {f.error.message}" for f in res.failed]
    out += [f"advice: {line}" for line in res.advice]
    if res.chart is not None:
        out.append(f"chart: {res.chart}")
    return "\n".join(out).rstrip()


def bench_payload(res: BenchResult) -> dict[str, Any]:
    t = res.totals
    return {
        "bench_schema": BENCH_SCHEMA, "target": str(res.target), "repository": res.repository,
        "models": [cost_payload(c) for c in res.costs],
        "failed": [failed_entry(f.name, f.error) for f in res.failed],
        "totals": {"models": t.models, "instances": t.instances, "memory_bytes": t.memory,
                   "shm_needed_bytes": t.shm_needed, "startup_s":
                   None if t.startup is None else round(t.startup, 3)},
        "advice": res.advice,
        "chart": str(res.chart) if res.chart is not None else None,
        "verified": [verify_payload(r) for r in res.reports],
    }
