"""``tritonpack MODEL_DIR [--verify]``: pack a model or a whole repository, then, when asked,
verify what was packed in a real tritonserver. The CLI hands one ``PackRequest`` here.

The verify stage is imported only when a request asks for it: a pack alone never loads the
Triton clients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core.errors import TritonPackError
from .core.progress import NullReporter, Reporter
from .pack.stage import PackOptions
from .pipeline import Guard, PackResult, package
from .repository import Failure, RepoResult, package_repository
from .settings import Options

if TYPE_CHECKING:
    from .verify.stage import VerifyReport


@dataclass(frozen=True)
class VerifyRequest:
    """How ``tritonpack verify`` (or ``--verify``) runs the server and what it sends."""

    runtime: str = "local"
    inputs: Path | None = None
    expect: Path | None = None
    with_models: tuple[str, ...] = ()
    timeout: float = 120.0
    image: str | None = None  # docker: the image to build FROM
    gpus: bool = False
    shm_size: str = "256m"

    def arguments(self) -> dict[str, Any]:
        """``packer.verify.stage``'s keyword arguments."""
        from .verify.stage import DockerOptions

        return {"runtime": self.runtime, "inputs": self.inputs, "expect": self.expect,
                "timeout": self.timeout, "with_models": self.with_models,
                "docker": DockerOptions(image=self.image, gpus=self.gpus,
                                        shm_size=self.shm_size)}


@dataclass(frozen=True)
class PackRequest:
    """Everything ``tritonpack pack`` takes beyond the settings (``Options``)."""

    pack_options: PackOptions = field(default_factory=PackOptions)
    frozen: bool = False  # use the lock as it is; refuse a missing or stale one
    output: str | None = None  # the environment's name inside the model dir
    use_cache: bool = True
    allow_incompatible: bool = False
    sbom: bool = False
    shared_env: str | None = None  # repository mode: one environment for every model
    verify: VerifyRequest | None = None  # then verify it (--verify)


def pack(path: Path, opts: Options, reporter: Reporter | None, request: PackRequest) -> PackResult:
    """One model: ``packer.pipeline.package`` with the request's choices; with ``--verify``,
    a runtime that cannot run what the lock makes is refused before anything is written."""
    return package(path, opts, reporter, frozen=request.frozen,
                   pack_options=request.pack_options, output=request.output,
                   use_cache=request.use_cache, allow_incompatible=request.allow_incompatible,
                   sbom=request.sbom, guard=_runtime_check(request.verify))


def _runtime_check(wanted: VerifyRequest | None) -> Guard | None:
    """``--verify``: the refusals of a model and a lock the runtime could not verify."""
    if wanted is None:
        return None
    from .verify.stage import check_before_lock, check_before_write

    docker = wanted.arguments()["docker"]
    return Guard(model=lambda model, target: check_before_lock(model, target, wanted.runtime),
                 lock=lambda ctx, lock: check_before_write(ctx, lock, wanted.runtime, docker))


def pack_and_verify(path: Path, opts: Options, reporter: Reporter | None,
                    request: PackRequest) -> tuple[PackResult, VerifyReport]:
    """One model, packed and then verified; a bad request file is refused before packing."""
    from .verify.extras import require as require_extras
    from .verify.requestfile import check_request_file
    from .verify.stage import verify

    wanted = request.verify or VerifyRequest()
    for given, option in ((wanted.inputs, "--inputs"), (wanted.expect, "--expect")):
        if given is not None:  # the user's input first: exit 2 whatever is installed
            check_request_file(given, option)
    require_extras(wanted.runtime)  # refused before packing, not after
    packed = pack(path, opts, reporter, request)
    return packed, verify(path, opts, reporter, **wanted.arguments())


def pack_repository(repo: Path, opts: Options, reporter: Reporter | None,
                    request: PackRequest) -> RepoResult:
    """Every Python model of a repository; with ``request.verify``, each packed model and
    each ensemble (whose steps were packed) is then verified, one failure not stopping the
    others."""
    rep = reporter or NullReporter()
    if request.verify is not None:
        from .verify.extras import require as require_extras

        require_extras(request.verify.runtime)  # refused before packing, not after
    result = package_repository(repo, opts, rep, pack_options=request.pack_options,
                                use_cache=request.use_cache, frozen=request.frozen,
                                allow_incompatible=request.allow_incompatible,
                                sbom=request.sbom, shared_env=request.shared_env,
                                guard=_runtime_check(request.verify))
    if request.verify is None:
        return result
    from .verify.layout import is_ensemble
    from .verify.stage import verify

    # per model, inputs are made from each config.pbtxt (--inputs/--expect are one model's)
    arguments = {**request.verify.arguments(), "inputs": None, "expect": None}
    for packed in result.packed:
        model = packed.context.model  # type: ignore[attr-defined]
        try:
            result.verified.append(verify(model.path, opts, rep, **arguments))
        except TritonPackError as exc:
            result.failed.append(Failure(model.name, exc, "verify"))
    ensembles = {**arguments, "with_models": ()}
    for skipped in result.skipped:  # ensembles: verified with their steps
        if is_ensemble(repo / skipped.name):
            try:
                result.verified.append(verify(repo / skipped.name, opts, rep, **ensembles))
            except TritonPackError as exc:
                result.failed.append(Failure(skipped.name, exc, "verify"))
    return result
