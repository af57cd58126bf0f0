"""``tritonpack image``: the release artifact. The packed model (or a whole repository) with
its environments and the models it calls, baked into the release's Triton image with a
command that loads every model at start; then the image is run as it is and every model must
be READY and answer the request verify sends. Only then is it tagged: a tag never names an
image that was not proven.

No probe goes in (tritonpack's own model is verify's, not the user's), and the image's own
command is what runs: the proof is of the artifact a deployment starts, not of a
verification setup.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .context import Context, prepare
from .core.debris import sweep, tagged
from .core.errors import (
    ModelError,
    RuntimeMissingError,
    TargetError,
    TritonPackError,
    VerifyInferError,
    VerifyLoadError,
)
from .core.progress import NullReporter, Reporter, plural
from .core.signals import signals_held
from .envcheck.inspect import inspect_env
from .lock.lockfile import read_lock
from .scan.model import CONFIG_NAME, is_repository, read_config
from .scan.modelconfig import enum_value
from .settings import Options
from .verify import kinds
from .verify.callees import closure
from .verify.client import Client, HttpError
from .verify.diagnose import diagnose, excerpt
from .verify.docker import (
    SHM_DEFAULT,
    build,
    connect,
    container_alive,
    container_log,
    remove_container,
    start,
)
from .verify.extras import require
from .verify.infer import GrpcModel
from .verify.runtime import free_port
from .verify.stage import ask, bug_error, env_location, missing_callees_error, requests_for

PROOF_LABEL = "io.tritonpack.image-proof"  # the proof's container, removed afterwards
_FAILED_LOAD = re.compile(r"failed to load '([^']+)'")
# a docker image reference: [host[:port]/]path[:tag] (the engine's own grammar, in short)
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REFERENCE = re.compile(rf"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
                       r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?")


@dataclass(frozen=True)
class Served:
    """One model of the image, as the running image answered for it."""

    name: str
    backend: str  # python, ensemble, or the other backend's name
    lock: str  # its lock's content hash ("" for a model without one)
    kind: str = ""  # stateless | decoupled | sequence ...; "" when only readiness was asked
    responses: int = 0
    outputs: tuple[str, ...] = ()
    inputs: str = ""  # where the request's inputs came from


@dataclass(frozen=True)
class ImageReport:
    tag: str
    image_id: str
    base: str
    release: str
    labels: tuple[tuple[str, str], ...]
    models: tuple[Served, ...]
    ready_seconds: float
    notes: tuple[str, ...] = ()
    passed: bool = True


@dataclass(frozen=True)
class _Model:
    path: Path
    backend: str
    ctx: Context | None = None  # a Python model (or an ensemble's Python step)
    env: Path | None = None
    lock: str = ""


def _selected(path: Path) -> tuple[Path, list[Path]]:
    """(the repository the image serves from, the model dirs that go in): a whole repository,
    or one model with the models it calls."""
    path = path.resolve()
    if is_repository(path):
        return path, sorted(p for p in path.iterdir() if (p / CONFIG_NAME).is_file())
    if not (path / CONFIG_NAME).is_file():
        raise ModelError(f"{path}: no {CONFIG_NAME}: not a model directory or a repository")
    callees, missing = closure(path)
    if missing:
        raise missing_callees_error(path.name, path.parent, missing)
    return path.parent, [path, *callees]


def _backend(model: Path) -> str:
    _, config = read_config(model / CONFIG_NAME)
    if config.platform == "ensemble":
        return "ensemble"
    return str(config.backend or config.platform or "?")


def _python_model(model: Path, opts: Options, rep: Reporter) -> _Model:
    """A Python model, checked as verify checks it before any server: packed, its
    environment sound for its target, named as its directory."""
    ctx = prepare(model, opts, rep)
    misnamed = ctx.model.warnings()
    if misnamed:
        raise ModelError(misnamed[0], hint="make the name in config.pbtxt the directory's")
    env = env_location(ctx)
    checked = inspect_env(env, ctx.target)
    if not checked.ok:
        errors = checked.errors()
        raise VerifyLoadError(f"{model.name}: {env.name}: {errors[0]}",
                              hint=f"re-pack it: tritonpack {model}", detail="\n".join(errors))
    lock = read_lock(ctx.lock_path).content_hash if ctx.lock_path.is_file() else ""
    return _Model(model, "python", ctx, env, lock)


def _gpu_models(dirs: list[Path]) -> list[str]:
    """The models whose config asks for KIND_GPU: they load only on a GPU."""
    gpu = enum_value("ModelInstanceGroup.Kind", "KIND_GPU")
    names = []
    for model in dirs:
        _, config = read_config(model / CONFIG_NAME)
        if any(g.kind == gpu for g in config.instance_group):
            names.append(model.name)
    return names


def _one_release(models: list[_Model]) -> Context:
    """The context whose target the image is for; every Python model must share it."""
    python = [m for m in models if m.ctx is not None]
    if not python:
        raise ModelError("no Python-backend model to put in an image",
                         hint="give a model directory (config.pbtxt with backend: \"python\") "
                         "or a repository holding one")
    first = python[0].ctx
    assert first is not None
    others = [m for m in python if m.ctx is not None
              and m.ctx.target.release != first.target.release]
    if others:
        shown = ", ".join(f"{m.path.name} ({m.ctx.target.release})" for m in others
                          if m.ctx is not None)
        raise TargetError(
            f"one image serves one Triton release: {first.model.path.name} is packed for "
            f"{first.target.release}, {shown} for another",
            hint="pack every model for the same release (--triton X), or build one image each")
    return first


def _copy_model(model: Path, dest: Path) -> None:
    """The model dir as it is, links inside it kept as links (a directory environment's
    lib/libpython3.X.so), links that leave it copied as what they point at."""
    shutil.copytree(model, dest, symlinks=True)
    root = model.resolve()
    for link in [p for p in dest.rglob("*") if p.is_symlink()]:
        source = model / link.relative_to(dest)
        real = source.resolve()
        if real.is_relative_to(root) and real.exists():
            continue
        link.unlink()
        if real.is_dir():
            shutil.copytree(real, link, symlinks=False)
        elif real.exists():
            shutil.copy2(real, link)


def _context(work: Path, root: Path, models: list[_Model]) -> Path:
    """The build context: models/ as Triton will see it in the image."""
    context = work / "context"
    repo = context / "models"
    repo.mkdir(parents=True)
    for m in models:
        _copy_model(m.path, repo / m.path.name)
        if m.env is not None and not m.env.resolve().is_relative_to(m.path.resolve()):
            shared = m.env.resolve()  # --shared-env: it lies in the repository, outside the dir
            if not shared.is_relative_to(root):
                raise ModelError(f"{m.path.name}: its environment {shared} is outside the "
                                 f"repository {root}: the image cannot hold it")
            place = repo / shared.relative_to(root)
            if not place.exists():
                place.parent.mkdir(parents=True, exist_ok=True)
                (shutil.copytree if shared.is_dir() else shutil.copy2)(shared, place)
    return context


def labels_for(models: list[_Model], release: str, base: str, single: bool) -> dict[str, str]:
    """What a registry shows about the image: the release, the base, and each lock's hash.
    ``io.tritonpack.lock`` is the model's lock hash, or for a repository the sha256 of its
    sorted ``name=hash`` lines."""
    locks = {m.path.name: m.lock for m in models if m.lock}
    labels = {"io.tritonpack.release": release, "org.opencontainers.image.base.name": base,
              "io.tritonpack.models": ",".join(m.path.name for m in models)}
    labels.update({f"io.tritonpack.lock.{name}": value for name, value in sorted(locks.items())})
    if single:
        labels["io.tritonpack.lock"] = models[0].lock
    else:
        lines = "".join(f"{name}={value}\n" for name, value in sorted(locks.items()))
        labels["io.tritonpack.lock"] = hashlib.sha256(lines.encode()).hexdigest()
    return labels


class _Proof:
    """The built image, run with its own command (nothing overridden but the published
    ports), as a deployment would start it."""

    def __init__(self, client: Any, image: Any, *, gpus: bool, shm_size: str):
        self.http, self.grpc = free_port(), free_port()
        self.container = start(
            client, image.id, what="starting the image", gpus=gpus, shm_size=shm_size,
            ports={"8000/tcp": ("127.0.0.1", self.http), "8001/tcp": ("127.0.0.1", self.grpc)},
            labels={PROOF_LABEL: "1"})
        self.url = f"http://127.0.0.1:{self.http}"
        self.grpc_url = f"127.0.0.1:{self.grpc}"

    def alive(self) -> bool:
        return container_alive(self.container)

    def log(self) -> str:
        return container_log(self.container)

    def stop(self) -> None:
        remove_container(self.container)


def _not_loaded(proof: _Proof, models: list[_Model], timeout: float) -> TritonPackError:
    """Which model did not load, and why, from the image's log."""
    log = proof.log()
    named = dict.fromkeys(_FAILED_LOAD.findall(log))
    by_name = {m.path.name: m for m in models}
    culprit = next((by_name[n] for n in named if n in by_name), None)
    ctx = culprit.ctx if culprit is not None else None
    bug = bug_error(log, ctx) if ctx is not None else None
    if bug is not None:  # a bug in model.py, whatever the environment
        return bug
    why = diagnose(log, ctx.requirements if ctx else None)
    if culprit is not None:
        message = f"{culprit.path.name} does not load in the image"
    elif not proof.alive():
        message = "the image's tritonserver exited at start"
    else:
        message = f"the image's models were not READY within {timeout:.0f}s"
    return VerifyLoadError(f"{message}: {why}" if why else message,
                           hint="the image's log excerpt follows with --verbose",
                           detail=excerpt(log) if log else None)


def _wait_ready(proof: _Proof, client: Client, models: list[_Model], deadline: float,
                timeout: float) -> None:
    """Live, then every model READY, before the deadline; the image exits when a model does
    not load (its command does not pass --exit-on-error=false)."""
    while time.monotonic() < deadline:
        if client.live() and all(client.model_ready(m.path.name) for m in models):
            return
        if not proof.alive():
            break
        time.sleep(0.2)
    raise _not_loaded(proof, models, timeout)


def _answer(proof: _Proof, client: Client, model: _Model, models: list[_Model],
            timeout: float) -> Served:
    """The request verify sends (the config's model_warmup, shipped perf_analyzer data, or
    made up from the config), sent to the running image; the answer judged as verify does."""
    name = model.path.name
    try:
        config = client.config(name)
    except (HttpError, OSError) as exc:
        raise VerifyInferError(f"{name} is READY in the image but its config could not be "
                               f"read: {exc}", detail=excerpt(proof.log())) from exc
    plan = kinds.plan(config)
    callees, _ = closure(model.path)
    first = callees[0].name if callees else None
    ctx = model.ctx or next(m.ctx for m in models if m.ctx is not None)  # for the diagnosis
    own = model.ctx.model.model_py if model.ctx is not None else None
    requests = requests_for(plan, config, model.path, None, first, own)
    grpc = GrpcModel(proof.grpc_url, plan, timeout)
    try:
        answer = ask(grpc, proof, ctx, plan, requests, None, timeout)
    finally:
        grpc.close()
    outputs = tuple(sorted({n for r in answer.responses for n in r}))
    return Served(name, model.backend, model.lock, plan.kind(), len(answer.responses), outputs,
                  answer.request.source)


def _tag(image: Any, tag: str) -> None:
    from docker.utils import parse_repository_tag

    repository, version = parse_repository_tag(tag)
    image.tag(repository, tag=version or "latest")


def build_image(path: Path, opts: Options, reporter: Reporter | None = None, *, tag: str,
                base: str | None = None, gpus: bool = False, shm_size: str = SHM_DEFAULT,
                timeout: float = 300.0) -> ImageReport:
    """Build the serving image of ``path`` (a model or a repository), prove it, tag it."""
    rep = reporter or NullReporter()
    require("docker")
    root, dirs = _selected(path)
    gpu = _gpu_models(dirs)
    if gpu and not gpus:
        raise RuntimeMissingError(
            f"{', '.join(gpu)} {'asks' if len(gpu) == 1 else 'ask'} for KIND_GPU: proving the "
            "image needs a GPU",
            hint="add --gpus (the NVIDIA container toolkit), or pack a KIND_CPU config")
    models = [_python_model(d, opts, rep) if (b := _backend(d)) == "python" else _Model(d, b)
              for d in dirs]
    first = _one_release(models)
    release, image_name = first.target.release, base or first.target.image
    labels = labels_for(models, release, image_name, single=not is_repository(path.resolve()))
    sweep(Path(tempfile.gettempdir()), ["tritonpack-image-"])  # left by a killed run
    work = Path(tempfile.mkdtemp(prefix=tagged("tritonpack-image-")))
    client = connect()
    image: Any = None
    proof: _Proof | None = None
    passed = False
    try:
        rep.start("image", f"building FROM {image_name} with {plural(len(models), 'model')}")
        context = _context(work, root, models)
        image = build(client, context, image_name, labels=labels,
                      buildargs={"LOCK_HASH": labels["io.tritonpack.lock"]})
        t0 = time.monotonic()
        rep.start("image", "running it as it is: every model must load at start")
        proof = _Proof(client, image, gpus=gpus, shm_size=shm_size)
        http = Client(proof.url, timeout=timeout)
        _wait_ready(proof, http, models, t0 + timeout, timeout)
        ready = time.monotonic() - t0
        rep.done("image", f"{plural(len(models), 'model')} READY in {ready:.1f}s", ready)
        served = tuple(_answer(proof, http, m, models, timeout) if m.backend in
                       ("python", "ensemble") else Served(m.path.name, m.backend, m.lock)
                       for m in models)
        _tag(image, tag)
        passed = True
        notes = tuple(f"{s.name} ({s.backend} backend): READY; no request sent (tritonpack "
                      "makes requests for Python models and ensembles)"
                      for s in served if not s.kind)
        return ImageReport(tag, str(image.id), image_name, release, tuple(sorted(labels.items())),
                           served, ready, notes)
    finally:
        with signals_held():
            if proof is not None:
                proof.stop()
            if image is not None and not passed:
                with contextlib.suppress(Exception):
                    client.images.remove(image.id, force=True)
            client.close()
            shutil.rmtree(work, ignore_errors=True)
