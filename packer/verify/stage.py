"""verify: static checks, then load the model and tritonpack's probe in a real tritonserver,
then a real inference. Readiness is not proof; an answer is."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name

from ..context import Context, prepare
from ..core.debris import tagged
from ..core.errors import (
    ModelBugError,
    ModelError,
    TritonPackError,
    UsageError,
    VerifyInferError,
    VerifyInputsError,
    VerifyLoadError,
)
from ..core.integrity import record_path
from ..core.integrity import verify as verify_record
from ..core.progress import NullReporter, Reporter, plural
from ..core.signals import signals_held
from ..envcheck.inspect import inspect_env
from ..lock.lockfile import Lockfile, read_lock
from ..scan.imports import Kind
from ..scan.inputuse import Use, answers_nothing, input_uses
from ..scan.model import TOKEN, ModelDir, read_config
from . import kinds, samples, tensors
from .callees import closure, unservable
from .client import Client, HttpError
from .diagnose import diagnose, excerpt, execute_raised, last_error
from .docker import SHM_DEFAULT, DockerRuntime
from .expect_inputs import expected
from .extras import require
from .fits import Proof, before_lock, before_write, numpy_refusal, proof
from .infer import GrpcModel, InferFailed, Response, synthesise
from .kinds import Plan
from .layout import is_ensemble, link_shared_env, place, python_step, shared_env_of
from .local import LocalRuntime, stub_pythons
from .modelbug import model_bug
from .probe import PROBE_NAME, write_probe
from .requestfile import check_request_file
from .runtime import TRITON_TMP, WORK_PREFIX, Runtime, Server, sweep_killed
from .unpack import unpack_failure

if TYPE_CHECKING:  # made by the CLI or the caller; verify only passes them on
    from ..resolve.target import Target
    from ..settings import Options

@dataclass(frozen=True)
class DockerOptions:
    image: str | None = None  # default: the target release's image
    gpus: bool = False
    shm_size: str = SHM_DEFAULT


def make_runtime(name: str, ctx: Context, docker: DockerOptions) -> Runtime:
    if name == "docker":
        lock_hash = ""
        if ctx.lock_path.is_file():
            with contextlib.suppress(TritonPackError):
                lock_hash = read_lock(ctx.lock_path).content_hash
        return DockerRuntime(ctx.target.release, docker.image or ctx.target.image,
                             gpus=docker.gpus, shm_size=docker.shm_size,
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
    warnings: tuple[str, ...] = field(default=())  # served, but not as config.pbtxt says
    kind: str = "stateless"  # stateless | decoupled | sequence | decoupled sequence
    responses: int = 1
    notes: tuple[str, ...] = field(default=())  # what verify changed or found worth saying
    callees: tuple[str, ...] = field(default=())  # models loaded because this one calls them
    inputs: str = "made up from the config"  # where the request's inputs came from
    input_sources: dict[str, str] = field(default_factory=dict)  # the same, input by input
    compared: bool = False  # --expect was given and the values matched
    proof: Proof | None = None  # the server that answered, and what it stood in for
    expected: str | None = None  # the --expect file every response was compared with
    measured: Any = None  # what ``measure`` returned (tritonpack bench: a ModelCost)

    @property
    def checks(self) -> dict[str, bool]:
        """What was proven, each from what the server answered (not assumed). A decoupled
        model may validly answer with zero responses: the stream's final flag is its answer."""
        imports = self.probe.get("imports", {})
        answered = bool(self.outputs) or self.kind.startswith("decoupled")
        return {"loaded": self.ready_seconds > 0,
                "modules_import": all(v == "ok" for v in imports.values()),
                "answered": answered, "values_compared": self.compared}

    @property
    def passed(self) -> bool:
        return all(v for k, v in self.checks.items() if k != "values_compared")


def pack_first(ctx: Context) -> str:
    """The pack command a hint gives for a model that is not packed: with the release and
    the ``--src`` dirs this run was given, so that following it packs what was asked."""
    words = ["tritonpack", shlex.quote(str(ctx.model.path))]
    if ctx.target_from == "command line":
        words += ["--triton", ctx.target.release]
    for src in ctx.options.src:
        words += ["--src", shlex.quote(str(src))]
    return " ".join([*words, "--verify"])


def env_location(ctx: Context) -> Path:
    """The environment config.pbtxt names. A model with none, or whose environment is not
    on this disk (a fresh clone: archives are not committed), is not packed here: verifying
    it is a usage error found before any server starts, not a model that "does not load"."""
    where = ctx.model.env_location()
    if where.fault == "unset":
        raise UsageError(
            f"{ctx.model.name} is not packed: {ctx.model.config_path} has no "
            "EXECUTION_ENV_PATH, so there is nothing to verify",
            hint=f"pack it first: {pack_first(ctx)}",
        )
    if where.fault == "no-token" or where.path is None:
        raise VerifyLoadError(f"EXECUTION_ENV_PATH {where.value!r} does not start with {TOKEN}/",
                              hint="Triton substitutes the token only at the start of the value")
    if where.fault == "missing":
        raise UsageError(f"{ctx.model.name} is not packed here: EXECUTION_ENV_PATH points at "
                         f"{where.path}, which does not exist, so there is nothing to verify",
                         hint=f"pack it first: {pack_first(ctx)}")
    if where.fault == "not-env":
        raise VerifyLoadError(f"EXECUTION_ENV_PATH points at {where.path}, which is {where.kind}, "
                              "not an environment", hint=f"pack it: tritonpack {ctx.model.path}")
    _refuse_damaged(where.path, ctx)
    return where.path


def _refuse_damaged(env: Path, ctx: Context) -> None:
    """An environment whose sha256 record disagrees with its bytes is never verified, nor
    served by an image: a ``--format dir`` env's files are hard links shared with the cache
    and every model packed from it, so a file edited in place in one model (root ignores the
    read-only mode) changed it in all of them; ``check`` said so, verify and image used it.
    An environment without a record (not packed by tritonpack) is checked as before."""
    if not os.path.lexists(record_path(env)):
        return
    damaged = verify_record(env)
    if damaged is not None:
        raise VerifyLoadError(f"{ctx.model.name}: {damaged}",
                              hint=f"re-pack it: tritonpack {ctx.model.path}")


def probe_modules(ctx: Context) -> list[str]:
    """Every third-party and bundled module the scan found, as importable names."""
    names = [r.key for r in ctx.requirements.rows if r.kind is Kind.THIRD_PARTY and r.required]
    names += sorted({m.name.split(".")[0] for m in ctx.report.bundled()})
    return sorted(dict.fromkeys(names))


def locked_versions(ctx: Context) -> dict[str, str]:
    """The lock's versions by normalized distribution name (empty when it cannot be read: the
    sentence then names the distribution without a version)."""
    try:
        lock = read_lock(ctx.lock_path)
    except TritonPackError:
        return {}
    versions: dict[str, str] = {canonicalize_name(p.name): p.version for p in lock.conda}
    versions.update((canonicalize_name(p.name), p.version) for p in lock.pypi)
    return versions


def bug_error(text: str, ctx: Context) -> ModelBugError | None:
    """A ModelBugError when ``text`` (a server log, an inference error) says model.py has a bug
    whatever the inputs; shared with the image's proof, which reads its container's log."""
    why = model_bug(text, requirements=ctx.requirements, versions=locked_versions(ctx),
                    providers=ctx.recipes.table.providers)
    return ModelBugError(why, hint="fix model.py (or its package), then verify again",
                         detail=text) if why else None


def _fail_load(message: str, server: Server | None, ctx: Context, said: str = "",
               **kw: Any) -> TritonPackError:
    """A load failure with its cause: a bug in model.py, else the table's sentence, else what
    the server answered (``said``), else its last error line; never the bare "did not load"."""
    log = server.log() if server else ""
    bug = bug_error(log, ctx)
    if bug is not None:
        return bug
    unpack = unpack_failure(log, ctx.model.env_location().path,
                            shutil.disk_usage(TRITON_TMP).free, str(TRITON_TMP))
    if unpack:  # the environment itself, not the model that failed to load first
        return VerifyLoadError(unpack, hint="free space in /tmp (Triton unpacks archives there "
                               "at every start), or pack with --format dir (no unpacking)",
                               detail=excerpt(log))
    why = diagnose(log, ctx.requirements, **kw) or said.strip() or last_error(log)
    return VerifyLoadError(f"{message}: {why}" if why else message,
                           hint="the server log excerpt follows with --verbose",
                           detail=excerpt(log) if log else None)


def _load(client: Client, server: Server, name: str, ctx: Context, timeout: float) -> None:
    """Load ``name``, watching the server meanwhile: a server killed while loading (by the
    model's code, by the OOM killer) is said to be so at once, not after the request's
    timeout (its stubs inherit the server's sockets and keep the connection open)."""
    client.timeout = timeout
    done: list[BaseException | None] = []
    loading = threading.Thread(target=_call, args=(client.load, name, done), daemon=True,
                               name="tritonpack-load")  # daemon: a dead server's request
    loading.start()  # is left to its socket's timeout
    while not done:
        loading.join(0.2)
        if not done and (died := _ended(server, within=0.0)) is not None:
            raise _died(name, died, server, ctx)
    if isinstance(done[0], HttpError):
        raise _fail_load(f"{name} did not load", server, ctx) from done[0]
    if isinstance(done[0], OSError):  # a timeout, or the connection dropped: dying, maybe
        if (died := _ended(server)) is not None:
            raise _died(name, died, server, ctx) from done[0]
        raise _fail_load(f"{name} did not load within {timeout:.0f}s", server, ctx,
                         timed_out=True) from done[0]
    if done[0] is not None:
        raise done[0]


def _call(function: Callable[[str], None], name: str, done: list[BaseException | None]) -> None:
    try:
        function(name)
    except BaseException as exc:  # handed to the waiting thread, raised there
        done.append(exc)
    else:
        done.append(None)


def _died(name: str, how: str, server: Server, ctx: Context) -> TritonPackError:
    """The server itself ended while loading: a bug in model.py when its log names one, else
    how it ended (its log's last error line would be a bystander's)."""
    log = server.log()
    return bug_error(log, ctx) or VerifyLoadError(
        f"tritonserver died while loading {name} ({how})",
        hint="something killed it: the model's initialize() (a signal to its parent process, "
             "os._exit in the wrong process) or the kernel's out-of-memory killer; the server "
             "log follows with --verbose", detail=excerpt(log) if log else None)


def _ended(server: Server, within: float = 3.0) -> str | None:
    """How the server ended ('killed by SIGKILL', 'exited with status 1'), or None while it
    runs: waited for a moment, as a dying server drops its connections before it is gone."""
    deadline = time.monotonic() + within
    while server.alive():
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)
    status: Callable[[], str | None] = getattr(server, "exit_status", lambda: None)
    return status() or "it exited"


def _probe(client: Client, server: Server, ctx: Context, env: Path) -> dict[str, Any]:
    try:
        result = client.infer(PROBE_NAME, [], ["REPORT"])
    except HttpError as exc:
        raise VerifyInferError(f"tritonpack's probe model failed: {exc.message}",
                               detail=excerpt(server.log())) from exc
    except OSError as exc:  # a timeout, or the server went away
        why = diagnose(server.log(), ctx.requirements)
        raise VerifyInferError(f"tritonpack's probe model did not answer ({exc})"
                               + (f": {why}" if why else ""),
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
    bound = str(ctx.recipes.triton.get(engine.release, {}).get("numpy", ""))
    refused = numpy_refusal(engine.name, engine.release, bound, numpy, ctx.target.release,
                            locked=False)
    if refused is not None:
        raise refused


def check_before_lock(model: ModelDir, target: Target, runtime: str) -> None:
    """``--verify``: whether the runtime can serve this model dir for its target, asked before
    the pack scans, resolves or locks anything (``packer.verify.fits.before_lock``). A docker
    runtime runs the target's release (``make_runtime``), with a stub for any Python."""
    if runtime == "docker":
        before_lock(model, target, runtime, target.release, None)
    else:
        before_lock(model, target, LocalRuntime.name, LocalRuntime.release, stub_pythons())


def check_before_write(ctx: Context, lock: Lockfile, runtime: str,
                       docker: DockerOptions | None = None) -> None:
    """``--verify``: whether the runtime can run what this lock makes, asked before the pack
    writes anything (``packer.verify.fits.before_write``)."""
    engine = make_runtime(runtime, ctx, docker or DockerOptions())
    before_write(ctx, lock, engine.name, engine.release)


def _gpu_here(engine: Runtime, docker: DockerOptions) -> bool:
    """Whether the verifying server has a GPU: the docker runtime with --gpus, or a local one on
    a machine with an NVIDIA device node."""
    if engine.name == "docker":
        return docker.gpus
    return Path("/dev/nvidiactl").exists()


def missing_callees_error(name: str, repo: Path, missing: list[str]) -> VerifyLoadError:
    """The error for callees (ensemble steps, BLS targets) absent from the repository: verify
    and the image's proof refuse them in the same words, before any server starts."""
    them = ", ".join(repr(m) for m in missing)
    verb = "is" if len(missing) == 1 else "are"
    return VerifyLoadError(
        f"{name} calls {them}, which {verb} not in the repository {repo}: put "
        f"{'it' if len(missing) == 1 else 'them'} beside {name} (a model dir with config.pbtxt)",
        hint="callees come from ensemble steps, literal model_name= strings in model.py, "
        "and --with MODEL")


def _infer_error(exc: InferFailed, name: str, server: Server, timeout: float,
                 ctx: Context, made_up: bool) -> TritonPackError:
    """One sentence for a failed inference: the model's own cause when a pattern knows it; for
    an execute() that raised on synthesized inputs, the sentence (and exit code) that says the
    environment is fine and real inputs are needed."""
    log = server.log()
    detail = exc.message + ("\n" + excerpt(log) if log else "")
    bug = bug_error(exc.message, ctx)
    if bug is not None:
        return bug
    why = diagnose(exc.message) or diagnose(log, ctx.requirements)
    if exc.timed_out:
        message = f"{name} did not answer within {timeout:.0f}s"
    elif exc.dropped or not server.alive():
        message = f"tritonserver dropped the connection while {name} ran"
    elif not why and made_up and (raised := execute_raised(exc.message)):
        return VerifyInputsError(
            f"{name} loaded; its execute() rejected tritonpack's made-up inputs ({raised}): give "
            "real ones with --inputs FILE or a model_warmup", detail=detail)
    else:
        message = f"{name} loaded but inference failed"
        why = why or exc.message.strip().splitlines()[0]
    return VerifyInferError(f"{message}: {why}" if why else message,
                            hint="check execute() and the inputs (--inputs FILE)", detail=detail)


@dataclass(frozen=True)
class Session:
    """What verify hands ``measure`` once the model answered, before the server stops: the
    server, the repository it serves, and the request verify chose."""

    server: Server
    client: Client
    repo: Path
    work: Path
    env: Path
    plan: Plan
    config: dict[str, Any]  # as the server completed it
    arrays: dict[str, Any]
    source: str  # where the inputs came from
    timeout: float


Measure = Callable[[Session], Any]


def _send(client: GrpcModel, server: Server, ctx: Context, plan: Plan,
          requests: list[samples.Request], timeout: float
          ) -> tuple[samples.Request, list[Response], float]:
    """The first request the model accepts, its responses and latency (ms). A request the
    model rejects is followed by the next; when none is accepted, a bug of the model's own is
    named first, else the first request's failure (the most plausible one). A timeout or a
    dropped server ends the tries."""
    failures: list[TritonPackError] = []
    for request in requests:
        t1 = time.monotonic()
        try:
            responses = client.run(request.arrays)
        except InferFailed as exc:
            error = _infer_error(exc, plan.name, server, timeout, ctx, request.made_up)
            if exc.timed_out and not plan.decoupled:
                error = _answers_nothing(plan, ctx) or error
            if exc.timed_out or exc.dropped or not server.alive():
                raise error from exc
            failures.append(error)
            continue
        return request, responses, (time.monotonic() - t1) * 1000
    raise next((f for f in failures if isinstance(f, ModelBugError)), None) \
        or _pointer_bytes(plan, ctx) or failures[0]


def _pointer_bytes(plan: Plan, ctx: Context) -> ModelBugError | None:
    """``x.tobytes()`` of an array of a BYTES tensor (an object array: its elements are
    pointers to bytes objects) gives the pointers' bytes, never a request's content, so a
    model that decodes them fails whatever it is sent: its bug, named, rather than "rejected
    the made-up inputs". Only asked once every request failed."""
    model = ctx.model
    if plan.name != model.path.name:
        return None
    inputs = {t.name: t for t in plan.inputs}
    for use in input_uses(model.model_py):
        tensor = inputs.get(use.input)
        if use.kind != "tobytes" or tensor is None or tensor.datatype != "BYTES" \
                or use.offset is None:
            continue
        rank = len(tensor.dims) + (1 if plan.batching else 0) - use.offset
        if rank > 0:
            return ModelBugError(
                f"{model.path.name}/{model.version}/{model.model_file}:{use.line} calls .tobytes() on an "
                f"array of BYTES input {use.input} (rank {rank}): that is the addresses of its "
                "elements, not their bytes, whatever the request holds (a bug in the model, not "
                "in its inputs)", hint="take an element instead (x[0][0], x.item(0)): each "
                "element of a BYTES tensor is already bytes")
    return None


def _answers_nothing(plan: Plan, ctx: Context) -> ModelBugError | None:
    """A model that is not decoupled and whose execute() returns no responses never answers:
    its bug, named, rather than a timeout."""
    model = ctx.model
    line = answers_nothing(model.model_py) if plan.name == model.path.name else None
    if line is None:
        return None
    return ModelBugError(
        f"{model.path.name}/{model.version}/{model.model_file}:{line} execute() returns no responses: "
        f"{plan.name} is not decoupled, so no request is ever answered (a bug in the model, not "
        "in its inputs)", hint="return one pb_utils.InferenceResponse per request")


def _answers(client: GrpcModel, plan: Plan, arrays: dict[str, Any], responses: list[Response],
             expect: Path | None) -> tuple[list[str], list[str]]:
    """(warnings, notes) of the answers: failures raise, oddities are warnings."""
    warnings: list[str] = []
    notes: list[str] = []
    failures: list[str] = []
    if not responses:
        notes.append(f"{plan.name} sent 0 responses and the final flag: valid for a decoupled "
                     "model")
    for response in responses:
        bad, odd = tensors.check_outputs(plan, response)
        failures += bad
        warnings += odd
    if expect is not None:
        failures += tensors.compare_all(responses, expect)
    if failures:
        failures = list(dict.fromkeys(failures))
        raise VerifyInferError(f"{plan.name} answered wrongly: {failures[0]}",
                               detail="\n".join(failures))
    if plan.all_optional and not arrays.keys() - {t.name for t in plan.inputs if t.optional}:
        try:
            client.run({})
        except InferFailed as exc:
            warnings.append("every input is optional, but a request with none of them failed: "
                            + exc.message)
    return list(dict.fromkeys(warnings)), notes


@dataclass(frozen=True)
class Answer:
    """The request a model accepted, and its answers judged."""

    request: samples.Request
    responses: list[Response]
    latency_ms: float
    warnings: list[str]
    notes: list[str]


def requests_for(plan: Plan, config: dict[str, Any], model_dir: Path, inputs: Path | None,
                 callee: str | None, model_py: Path | None) -> list[samples.Request]:
    """The requests to try (samples.candidates): ``model_py``'s execute() shapes one of them.
    An input that names the model a BLS call goes to needs a model to name: refused in one
    sentence when there is none to send and no request of the user's."""
    uses = input_uses(model_py) if model_py is not None else ()
    requests = samples.candidates(
        plan, config, model_dir, inputs, lambda: synthesise(plan, callee=callee),
        lambda: expected(plan, uses, lambda: synthesise(plan, callee=callee),
                         model_py.name if model_py is not None else "model.py", callee=callee),
        lambda: synthesise(plan, callee=callee, images=False))
    named = [u for u in uses if u.kind == "model_name"]
    if named and callee is None and all(r.made_up for r in requests):
        raise _names_a_model(plan.name, named[0], model_dir,
                             model_py.name if model_py is not None else "model.py")
    return requests


def _names_a_model(name: str, use: Use, model_dir: Path, code: str) -> VerifyInputsError:
    others = sorted(p.name for p in model_dir.parent.iterdir()
                    if p != model_dir and (p / "config.pbtxt").is_file())
    beside = f" (beside it: {', '.join(others)})" if others else ""
    return VerifyInputsError(
        f"{name} loaded; its input {use.input} names the model it calls ({code}:{use.line}), "
        f"and no model is known to send: name one with --with MODEL{beside}",
        hint="--with MODEL loads it from the same repository and sends its name")


def ask(grpc: GrpcModel, server: Server, ctx: Context, plan: Plan,
        requests: list[samples.Request], expect: Path | None, timeout: float) -> Answer:
    """The first request the model accepts, its answers judged (failures raise)."""
    request, responses, latency = _send(grpc, server, ctx, plan, requests, timeout)
    warnings, notes = _answers(grpc, plan, request.arrays, responses, expect)
    return Answer(request, responses, latency, warnings, notes)


@dataclass(frozen=True)
class _Served:
    """What a run serves, judged without a server: the model (or ensemble), the models it
    calls, the environment that passed the static checks and the Python its stub needs."""

    ctx: Context
    target: Path
    callees: tuple[Path, ...]
    env: Path
    python: str
    numpy: str | None
    completes_config: bool  # config.pbtxt declares inputs and outputs: no auto-complete


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
    with_models: tuple[str, ...] = (),
    measure: Measure | None = None,
) -> VerifyReport:
    """Judge the environment, then serve the model and ask it. The user's request files are
    checked first (a bad one is exit 2 whatever is installed), then the runtime's extra.
    With ``measure``, it is called in the same server once the model answered (its result
    is the report's ``measured``)."""
    rep = reporter or NullReporter()
    for given, option in ((inputs, "--inputs"), (expect, "--expect")):
        if given is not None:
            check_request_file(given, option)
    require(runtime)
    served = _judge(path, opts, rep, with_models)
    dopts = docker or DockerOptions()
    engine = make_runtime(runtime, served.ctx, dopts)
    _runtime_fits(engine, served.numpy, served.ctx)
    return _serve(served, engine, dopts, rep, inputs, expect, timeout, with_models, measure)


def _judge(path: Path, opts: Options, rep: Reporter, with_models: tuple[str, ...]) -> _Served:
    """The static half of verify: callees found, scan and resolve, the environment checked."""
    target = path.resolve()
    callees, missing = closure(target, with_models) if is_ensemble(target) else ([], [])
    if missing:
        raise missing_callees_error(target.name, target.parent, missing)
    # an ensemble has no environment of its own: its first Python step's is checked and probed
    ctx = prepare(python_step(target, callees) if callees else path, opts, rep)
    if not callees:
        target = ctx.model.path
        callees, missing = closure(target, with_models)
        if missing:
            raise missing_callees_error(target.name, target.parent, missing)
    for callee in callees:
        why = unservable(callee)
        if why:
            raise VerifyLoadError(f"{target.name} calls {callee.name}, {why}",
                                  hint=f"pack the repository (tritonpack {target.parent}) with "
                                  "every model's files in place")
    misnamed = ctx.model.warnings()  # Triton would not load it from this directory
    if misnamed:
        raise ModelError(misnamed[0], hint="verify it from a directory of that name (a copy "
                         "will do), or make the name in config.pbtxt the directory's")
    env = env_location(ctx)
    checked = inspect_env(env, ctx.target)  # the static checks: no server needed
    if not checked.ok:
        errors = checked.errors()
        raise VerifyLoadError(f"{env.name}: {errors[0]}", hint="re-pack with tritonpack MODEL_DIR",
                              detail="\n".join(errors))
    _, config = read_config(target / "config.pbtxt")
    return _Served(ctx, target, tuple(callees), env, checked.python or ctx.target.python,
                   checked.numpy, len(config.input) > 0 and len(config.output) > 0)


def _layout(repo: Path, served: _Served, engine: Runtime, dopts: DockerOptions) -> list[str]:
    """The repository the server loads: the model, its callees and the probe; the notes."""
    notes = []
    cpu = not _gpu_here(engine, dopts)
    for model in (served.target, *served.callees):
        if place(repo, model, cpu=cpu):
            notes.append(f"{model.name} asks for KIND_GPU and this machine has no GPU: a copy "
                         "ran with KIND_CPU (--runtime docker --gpus keeps the config)")
        shared_env = served.env if model == served.ctx.model.path else shared_env_of(model)
        if shared_env is not None and shared_env.exists():
            link_shared_env(repo, model, shared_env)
    write_probe(repo, served.env, probe_modules(served.ctx))
    return notes


def _serve(served: _Served, engine: Runtime, dopts: DockerOptions, rep: Reporter,
           inputs: Path | None, expect: Path | None, timeout: float,
           with_models: tuple[str, ...], measure: Measure | None = None) -> VerifyReport:
    """Start a server in a temp dir, load the probe, the callees and the model, ask it; the
    server is stopped and the temp dir removed whatever happens."""
    ctx, name = served.ctx, served.target.name
    sweep_killed(Path(tempfile.gettempdir()))  # left by a killed verify
    server: Server | None = None
    work = Path(tempfile.mkdtemp(prefix=tagged(WORK_PREFIX)))
    try:
        repo = work / "repo"
        repo.mkdir()
        notes = [*ctx.model.notes, *_layout(repo, served, engine, dopts)]
        t0 = time.monotonic()
        rep.start("verify", f"starting tritonserver ({engine.name}, Python {served.python} stub)")
        server = engine.start(repo, served.python, work, complete_config=served.completes_config)
        client = Client(server.url, timeout=timeout)
        if not client.wait_live(t0 + timeout, server.alive):
            raise _fail_load("tritonserver did not start", server, ctx)
        rep.start("verify", f"loading {name} and the probe")
        _load(client, server, PROBE_NAME, ctx, timeout)
        probe = _probe(client, server, ctx, served.env)
        for callee in reversed(served.callees):  # the deepest first
            _load(client, server, callee.name, ctx, timeout)
        _load(client, server, name, ctx, timeout)
        ready = time.monotonic() - t0
        rep.done("load", f"{name} READY in {ready:.1f}s on {probe['prefix']}", ready)
        return _request(served, engine, dopts, server, client, rep, inputs, expect, timeout,
                        with_models, probe=probe, ready=ready, notes=notes,
                        measure=measure, work=work)
    finally:
        with signals_held():  # a second Ctrl-C or SIGTERM does not cut the cleanup short
            if server is not None:
                server.stop()
            shutil.rmtree(work, ignore_errors=True)


def _request(served: _Served, engine: Runtime, dopts: DockerOptions, server: Server,
             client: Client, rep: Reporter, inputs: Path | None, expect: Path | None, timeout: float,
             with_models: tuple[str, ...], *, probe: dict[str, Any], ready: float,
             notes: list[str], measure: Measure | None = None,
             work: Path | None = None) -> VerifyReport:
    """The loaded model's inference, as its kind needs, and the report."""
    ctx, name, callees = served.ctx, served.target.name, served.callees
    try:
        server_config = client.config(name)
        plan = kinds.plan(server_config)
    except (HttpError, OSError) as exc:
        raise VerifyInferError(f"{name} is READY but its config could not be read: "
                               f"{exc}", detail=excerpt(server.log())) from exc
    if expect is not None:
        samples.check_expected_names(expect, plan)
    first = next(iter(with_models), callees[0].name if callees else None)
    requests = requests_for(plan, server_config, served.target, inputs, first,
                            ctx.model.model_py if served.target == ctx.model.path else None)
    grpc = GrpcModel(server.grpc_url, plan, timeout)
    try:
        answer = ask(grpc, server, ctx, plan, requests, expect, timeout)
    finally:
        grpc.close()
    request, responses, latency = answer.request, answer.responses, answer.latency_ms
    for line in answer.warnings:
        rep.note(f"warning: {line}")
    names = sorted({n for r in responses for n in r})
    rep.done("infer", f"{plan.kind()}: {plural(len(responses), 'response')}, outputs "
             f"{', '.join(names) or 'none'} in {latency:.0f} ms", latency / 1000)
    measured = None if measure is None or work is None else measure(Session(
        server, client, work / "repo", work, served.env, plan, server_config, request.arrays,
        request.source, timeout))
    return VerifyReport(
        model=name, runtime=engine.name, env=str(served.env), python=str(probe["python"]),
        ready_seconds=ready, first_inference_ms=latency, probe=probe,
        outputs=names, warnings=tuple(answer.warnings), kind=plan.kind(),
        responses=len(responses), notes=tuple(notes + answer.notes),
        callees=tuple(c.name for c in callees), inputs=request.source,
        input_sources=dict(request.sources) or {t.name: request.source for t in plan.inputs
                                                if t.name in request.arrays},
        compared=expect is not None, expected=str(expect) if expect else None,
        proof=proof(engine.name, engine.release, ctx.target,
                    (dopts.image or ctx.target.image) if engine.name == "docker" else None),
        measured=measured,
    )
