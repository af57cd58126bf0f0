"""Runtime ``docker``: the target release's Triton image with the model repository baked in
(Dockerfile.base), built and run through the docker SDK.

The GPU-only part is one argument (``--gpus``: a device request for every GPU); everything
else runs wherever a Docker engine does, a CPU-only one included.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
from importlib import resources
from pathlib import Path
from typing import Any

from ..core.errors import RuntimeMissingError
from .extras import require_docker
from .runtime import free_port

SHM_DEFAULT = "256m"


def _listening(host: str) -> bool:
    """Whether anything accepts connections at the engine address. Checked before the docker
    SDK is asked: its client asks the engine's API version while it is constructed and, when
    nothing answers, raises with its socket left open."""
    if host.startswith("unix://") or not host:
        path = host.removeprefix("unix://") or "/var/run/docker.sock"
        family, address = socket.AF_UNIX, path
    elif host.startswith("tcp://"):
        name, _, port = host.removeprefix("tcp://").rstrip("/").rpartition(":")
        if not port.isdigit():
            return True  # let the SDK judge an address of a form not parsed here
        family, address = socket.AF_INET, (name or "127.0.0.1", int(port))  # type: ignore[assignment]
    else:
        return True  # ssh:// and others: the SDK connects its own way
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        try:
            sock.connect(address)
        except OSError:
            return False
    return True


def connect() -> Any:
    """A docker SDK client for the engine of DOCKER_HOST (default /var/run/docker.sock) that
    answers a ping; RuntimeMissingError, naming the address, when none does."""
    require_docker()
    import docker

    host = os.environ.get("DOCKER_HOST", "")
    message = f"no Docker engine answers at {host or 'unix:///var/run/docker.sock'}"
    hint = "start dockerd (or set DOCKER_HOST), or verify with --runtime local"
    if not _listening(host):
        raise RuntimeMissingError(message, hint=hint)
    client = None
    try:
        client = docker.from_env()
        client.ping()
        return client
    except Exception as exc:
        if client is not None:
            client.close()
        raise RuntimeMissingError(message, hint=hint, detail=str(exc)) from exc


_NO_HOST = re.compile(r"lookup ([^\s:]+)(?: on [^\s]+)?: no such host")
_CAUSES = (re.compile(r"pull access denied for [^,\s]+"), re.compile(r"manifest unknown"),
           re.compile(r"unauthorized: [^\n]*"), re.compile(r"connection refused"),
           re.compile(r"i/o timeout"), re.compile(r"no space left on device"))


def build_cause(error: str) -> str:
    """The engine's reason a build failed, short enough for the error's one sentence: a
    registry the engine cannot reach says ``lookup nvcr.io: no such host``, a missing image
    ``pull access denied for NAME``; another error's first line."""
    found = _NO_HOST.search(error)
    if found:
        return f"lookup {found[1]}: no such host"
    for pattern in _CAUSES:
        if (match := pattern.search(error)) is not None:
            return match[0].rstrip(". ")
    first = error.strip().splitlines()[0].strip() if error.strip() else ""
    return first if len(first) <= 200 else first[:197] + "..."


def start_failed(what: str, exc: Exception, *, gpus: bool) -> RuntimeMissingError:
    """The engine refused to start a container: its own reason, in one line, is the message.
    The NVIDIA toolkit hint only when ``--gpus`` asked for devices; without it the cause is
    the engine (its network, storage, limits), and naming GPUs would send the user astray."""
    reason = " ".join(str(getattr(exc, "explanation", None) or exc).split())
    if len(reason) > 300:
        reason = reason[:297] + "..."
    hint = ("--gpus needs the NVIDIA container toolkit" if gpus
            else "the Docker engine could not run a container: `docker run` shows the same")
    return RuntimeMissingError(f"{what} failed: {reason}", hint=hint, detail=str(exc))


def start(client: Any, image_id: str, *, what: str, gpus: bool, **kwargs: Any) -> Any:
    """Create, then start, a detached container (``--gpus``: a request for every GPU). The
    SDK's ``containers.run`` leaves a container it created but the engine would not start
    behind, in state Created; this one removes it before saying the engine's reason."""
    import docker

    requests = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])] if gpus else None
    container = None
    try:
        container = client.containers.create(image_id, device_requests=requests, **kwargs)
        container.start()
    except docker.errors.APIError as exc:
        if container is not None:
            with contextlib.suppress(Exception):
                container.remove(force=True)
        raise start_failed(what, exc, gpus=gpus) from exc
    return container


def dockerfile_text() -> str:
    return resources.files("packer.recipes").joinpath("Dockerfile.base").read_text(encoding="utf-8")


def build(client: Any, context: Path, base: str, *, buildargs: dict[str, str],
          labels: dict[str, str], what: str = "image") -> Any:
    """Build Dockerfile.base FROM ``base`` over ``context`` (which holds models/); the image.
    The low-level stream is read to its end: nothing is left open on failure."""
    import docker

    (context / "Dockerfile.base").write_text(dockerfile_text(), encoding="utf-8")
    image_id, log, error = None, [], ""
    try:
        for chunk in client.api.build(
            path=str(context), dockerfile="Dockerfile.base", rm=True, pull=False,
            buildargs={"TRITON_IMAGE": base, **buildargs}, labels=labels, decode=True,
        ):
            log.append(str(chunk.get("stream", "")))
            error = str(chunk.get("error", error))
            image_id = chunk.get("aux", {}).get("ID", image_id)
    except docker.errors.APIError as exc:
        error = str(exc)
    if error or image_id is None:
        raise RuntimeMissingError(
            f"building the {what} FROM {base} failed"
            + (f": {cause}" if (cause := build_cause(error)) else ""),
            hint="is the image available to this engine (docker pull, a registry login)?",
            detail=(error or "no image id") + "\n" + "".join(log),
        )
    return client.images.get(image_id)


def container_alive(container: Any) -> bool:
    """Whether a container the engine made is still starting or running."""
    try:
        container.reload()
    except Exception:
        return False
    return bool(container.status in ("created", "running"))


def container_log(container: Any) -> str:
    """The container's output so far ('' once the engine cannot give it)."""
    try:
        return bytes(container.logs()).decode(errors="replace")
    except Exception:
        return ""


def remove_container(container: Any) -> None:
    """Kill and remove a container in one call; what the engine refuses (already gone) is not
    an error. No SIGTERM first (``stop``), as LocalServer.stop sends none: verify has its
    answer, all the server wrote goes with its container, and Triton's own shutdown (it polls
    its models once a second and waits for each stub's finalize) cost 1-2 s a container more,
    up to the 5 s grace, a Ctrl-C included (measured with the stand-in image, one model)."""
    with contextlib.suppress(Exception):
        container.remove(force=True)


class DockerServer:
    def __init__(self, client: Any, container: Any, url: str, image: Any, grpc_url: str = ""):
        self.client = client
        self.container = container
        self.url = url
        self.grpc_url = grpc_url
        self.image = image

    def alive(self) -> bool:
        return container_alive(self.container)

    def log(self) -> str:
        return container_log(self.container)

    def stop(self) -> None:
        remove_container(self.container)
        with contextlib.suppress(Exception):  # it holds the probe: never a release artifact
            self.client.images.remove(self.image.id, force=True)
        self.client.close()


class DockerRuntime:
    name = "docker"

    def __init__(self, release: str, image: str, *, gpus: bool = False, shm_size: str = SHM_DEFAULT,
                 lock_hash: str = ""):
        self.release = release
        self.image = image
        self.gpus = gpus
        self.shm_size = shm_size
        self.lock_hash = lock_hash

    def start(self, repo: Path, python: str, work: Path, *, complete_config: bool) -> DockerServer:
        client = connect()
        try:
            return self._start(client, repo, work, complete_config)
        except BaseException:
            client.close()
            raise

    def _start(self, client: Any, repo: Path, work: Path, complete_config: bool) -> DockerServer:
        context = work / "context"
        context.mkdir()
        shutil.copytree(repo, context / "models", symlinks=False)  # links become real files
        image = build(client, context, self.image, buildargs={"LOCK_HASH": self.lock_hash},
                      labels={"io.tritonpack.release": self.release}, what="verification image")
        port, grpc = free_port(), free_port()
        command = ["tritonserver", "--model-repository=/models", "--model-control-mode=explicit",
                   "--allow-metrics=false", "--exit-on-error=false", "--log-verbose=1",
                   "--http-port=8000", "--grpc-port=8001"]
        if complete_config:
            command.append("--disable-auto-complete-config")
        try:
            container = start(
                client, image.id, what="starting the verification container", gpus=self.gpus,
                command=command, shm_size=self.shm_size,
                ports={"8000/tcp": ("127.0.0.1", port), "8001/tcp": ("127.0.0.1", grpc)},
                labels={"io.tritonpack.verify": "1"},
            )
        except RuntimeMissingError:
            with contextlib.suppress(Exception):
                client.images.remove(image.id, force=True)
            raise
        return DockerServer(client, container, f"http://127.0.0.1:{port}", image,
                            grpc_url=f"127.0.0.1:{grpc}")
