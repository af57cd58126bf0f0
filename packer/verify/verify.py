"""verify: static checks, then load the model and tritonpack's probe in a real tritonserver,
then a real inference. Readiness is not proof; an answer is."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from ..debris import sweep, tagged
from ..errors import RuntimeMissingError, TritonPackError, VerifyInferError, VerifyLoadError
from ..fsguard import not_regular
from ..inspect import inspect_env
from ..lock import read_lock
from ..model import TOKEN
from ..pipeline import Context, Options, prepare
from ..progress import NullReporter, Reporter
from ..scan import Kind
from ..signals import signals_held
from . import tensors
from .client import Client, HttpError
from .diagnose import diagnose, excerpt
from .docker import SHM_DEFAULT, DockerRuntime
from .local import LocalRuntime
from .probe import PROBE_NAME, write_probe
from .requestfile import check_request_file
from .runtime import TRITON_TMP, Runtime, Server

RUNTIMES = ("local", "docker")


@dataclass(frozen=True)
class DockerOptions:
    image: str | None = None  # default: the target release's image
    gpus: bool = False
    shm_size: str = SHM_DEFAULT
    tag: str | None = None  # keep the built image under this name


def make_runtime(name: str, ctx: Context, docker: DockerOptions) -> Runtime:
    if name == "docker":
        lock_hash = ""
        if ctx.lock_path.is_file():
            with contextlib.suppress(TritonPackError):
                lock_hash = read_lock(ctx.lock_path).content_hash
        return DockerRuntime(ctx.target.release, docker.image or ctx.target.image,
                             gpus=docker.gpus, shm_size=docker.shm_size, tag=docker.tag,
                             lock_hash=lock_hash)
    return LocalRuntime()


@dataclass(frozen=True)
class VerifyReport:
    model: str
    runtime: str
    env: str
    python: str
    ready_seconds: float
    first_inference_ms: float
    probe: dict[str, Any]
    outputs: list[str]
    warnings: tuple[str, ...] = field(default=())
    compared: bool = False  # --expect was given and the values matched

    @property
    def checks(self) -> dict[str, bool]:
        """What was proven, each from what the server answered (not assumed)."""
        imports = self.probe.get("imports", {})
        return {"loaded": self.ready_seconds > 0,
                "modules_import": all(v == "ok" for v in imports.values()),
                "answered": bool(self.outputs), "values_compared": self.compared}

    @property
    def passed(self) -> bool:
        return all(v for k, v in self.checks.items() if k != "values_compared")


def env_location(ctx: Context) -> Path:
    value = ctx.model.env_path()
    if not value:
        raise VerifyLoadError(
            f"{ctx.model.config_path}: no EXECUTION_ENV_PATH: nothing to verify",
            hint=f"pack it first: tritonpack {ctx.model.path}",
        )
    if not value.startswith(TOKEN + "/"):
        raise VerifyLoadError(f"EXECUTION_ENV_PATH {value!r} does not start with {TOKEN}/",
                              hint="Triton substitutes the token only at the start of the value")
    path = ctx.model.path / value[len(TOKEN) + 1:]
    if not path.exists():
        raise VerifyLoadError(f"EXECUTION_ENV_PATH points at {path}, which does not exist",
                              hint=f"pack it: tritonpack {ctx.model.path}")
    if not path.is_dir() and (kind := not_regular(path)) is not None:
        raise VerifyLoadError(f"EXECUTION_ENV_PATH points at {path}, which is {kind}, not an "
                              "environment", hint=f"pack it: tritonpack {ctx.model.path}")
    return path


def probe_modules(ctx: Context) -> list[str]:
    """Every third-party and bundled module the scan found, as importable names."""
    names = [r.key for r in ctx.requirements.rows if r.kind is Kind.THIRD_PARTY and r.required]
    names += sorted({m.name.split(".")[0] for m in ctx.report.bundled()})
    return sorted(dict.fromkeys(names))


def _fail_load(message: str, server: Server | None, ctx: Context, **kw: Any) -> VerifyLoadError:
    log = server.log() if server else ""
    why = diagnose(log, ctx.requirements, **kw)
    return VerifyLoadError(f"{message}: {why}" if why else message,
                           hint="the server log excerpt follows with --verbose",
                           detail=excerpt(log) if log else None)


def _load(client: Client, server: Server, name: str, ctx: Context, timeout: float) -> None:
    client.timeout = timeout
    try:
        client.load(name)
    except HttpError as exc:
        raise _fail_load(f"{name} did not load", server, ctx) from exc
    except TimeoutError as exc:
        raise _fail_load(f"{name} did not load within {timeout:.0f}s", server, ctx,
                         timed_out=True) from exc
    except OSError as exc:
        if not server.alive():
            raise _fail_load("tritonserver exited while loading", server, ctx) from exc
        raise _fail_load(f"{name} did not load within {timeout:.0f}s", server, ctx,
                         timed_out=True) from exc


def _probe(client: Client, server: Server, ctx: Context, env: Path) -> dict[str, Any]:
    try:
        result = client.infer(PROBE_NAME, [], ["REPORT"])
    except HttpError as exc:
        raise VerifyInferError(f"tritonpack's probe model failed: {exc.message}",
                               detail=excerpt(server.log())) from exc
    report = dict(json.loads(result["outputs"][0]["data"][0]))
    prefix = str(report.get("prefix", ""))
    # a directory env runs in place (here, or copied into an image); an archive is unpacked
    # to /tmp/python_env_*
    ok = Path(prefix).name == env.name if env.is_dir() else \
        Path(prefix).is_relative_to(TRITON_TMP) and Path(prefix).parts[2].startswith("python_env_")
    if not ok:
        raise VerifyLoadError(
            f"the model ran on {prefix}, not on the packed environment",
            hint="the environment lacks bin/python3 or lib/libpython3.X.so.1.0, so Triton fell back "
            "to its own Python",
        )
    failed = {k: v for k, v in report.get("imports", {}).items() if v != "ok"}
    if failed:
        name, err = next(iter(failed.items()))
        where = next((r.locations[0] for r in ctx.requirements.rows if r.key == name), "")
        raise VerifyLoadError(
            f"module {name!r} does not import in the environment"
            + (f" (imported at {where})" if where else "") + f": {err}",
            hint="re-pack (tritonpack MODEL_DIR); declare it in tritonpack.toml if it is missing",
        )
    return report


def _runtime_fits(engine: Runtime, numpy: str | None, ctx: Context) -> None:
    """A runtime's own release must accept the environment, not only the target's."""
    row = ctx.recipes.triton.get(engine.release, {})
    bound = str(row.get("numpy", ""))
    if numpy and bound and Version(numpy) not in SpecifierSet(bound):
        raise RuntimeMissingError(
            f"the {engine.name} runtime is Triton {engine.release}, whose Python backend needs "
            f"numpy{bound}; this environment has numpy {numpy} (right for Triton "
            f"{ctx.target.release})",
            hint="verify in the target's image (--runtime docker), or pack for "
            f"--triton {engine.release} to verify here",
        )


def verify(
    path: Path,
    opts: Options,
    reporter: Reporter | None = None,
    *,
    runtime: str = "local",
    inputs: Path | None = None,
    expect: Path | None = None,
    timeout: float = 120.0,
    docker: DockerOptions | None = None,
) -> VerifyReport:
    rep = reporter or NullReporter()
    for given, option in ((inputs, "--inputs"), (expect, "--expect")):
        if given is not None:
            check_request_file(given, option)
    ctx = prepare(path, opts, rep)
    env = env_location(ctx)
    checked = inspect_env(env, ctx.target)  # the static checks: no server needed
    if not checked.ok:
        errors = checked.errors()
        raise VerifyLoadError(f"{env.name}: {errors[0]}", hint="re-pack with tritonpack MODEL_DIR",
                              detail="\n".join(errors))
    python = checked.python or ctx.target.python
    engine = make_runtime(runtime, ctx, docker or DockerOptions())
    _runtime_fits(engine, checked.numpy, ctx)
    sweep(Path(tempfile.gettempdir()), ["tritonpack-verify-"])  # left by a killed verify
    server: Server | None = None
    work = Path(tempfile.mkdtemp(prefix=tagged("tritonpack-verify-")))
    try:
        repo = work / "repo"
        repo.mkdir()
        os.symlink(ctx.model.path, repo / ctx.model.name)
        shared = Path(os.path.relpath(env.resolve(), ctx.model.path.parent))
        if not env.resolve().is_relative_to(ctx.model.path) and ".." not in shared.parts:
            (repo / shared).parent.mkdir(parents=True, exist_ok=True)  # --shared-env: the env
            os.symlink(env.resolve(), repo / shared)  # sits where the repository has it
        write_probe(repo, env, probe_modules(ctx))
        complete = len(ctx.model.config.input) > 0 and len(ctx.model.config.output) > 0
        t0 = time.monotonic()
        rep.start("verify", f"starting tritonserver ({engine.name}, Python {python} stub)")
        server = engine.start(repo, python, work, complete_config=complete)
        client = Client(server.url, timeout=timeout)
        if not client.wait_live(t0 + timeout, server.alive):
            raise _fail_load("tritonserver did not start", server, ctx)
        rep.start("verify", f"loading {ctx.model.name} and the probe")
        _load(client, server, PROBE_NAME, ctx, timeout)
        probe = _probe(client, server, ctx, env)
        _load(client, server, ctx.model.name, ctx, timeout)
        ready = time.monotonic() - t0
        rep.done("load", f"{ctx.model.name} READY in {ready:.1f}s on {probe['prefix']}", ready)
        request = tensors.from_file(inputs, ctx.model.config) if inputs else \
            tensors.synthesise(ctx.model.config)
        t1 = time.monotonic()
        try:
            result = client.infer(ctx.model.name, request)
        except HttpError as exc:
            raise VerifyInferError(
                f"{ctx.model.name} loaded but inference failed: {exc.message}",
                hint="check execute() and the inputs (--inputs FILE)",
                detail=excerpt(server.log()),
            ) from exc
        latency = (time.monotonic() - t1) * 1000
        problems = tensors.check_outputs(ctx.model.config, result)
        if expect is not None:
            problems += tensors.compare(result, expect)
        if problems:
            raise VerifyInferError(f"{ctx.model.name} answered wrongly: {problems[0]}",
                                   detail="\n".join(problems))
        rep.done("infer", f"{len(result.get('outputs', []))} outputs in {latency:.0f} ms", latency / 1000)
        return VerifyReport(
            model=ctx.model.name, runtime=engine.name, env=str(env), python=str(probe["python"]),
            ready_seconds=ready, first_inference_ms=latency, probe=probe,
            outputs=[o["name"] for o in result.get("outputs", [])], compared=expect is not None,
        )
    finally:
        with signals_held():  # a second Ctrl-C or SIGTERM does not cut the cleanup short
            if server is not None:
                server.stop()
            shutil.rmtree(work, ignore_errors=True)
