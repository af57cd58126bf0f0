"""Verification runtimes behind one small interface: where a tritonserver runs."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path
from typing import Protocol

# Where Triton's Python backend unpacks environments and keeps its shared memory: fixed paths.
TRITON_TMP = Path("/tmp")  # noqa: S108
SHM = Path("/dev/shm")  # noqa: S108
_ENV_DIRS = re.compile(r"(/tmp/python_env_[A-Za-z0-9_]+)")
_SHM = re.compile(r"(triton_python_backend_shm_region_[A-Za-z0-9_\-]+)")


class Server(Protocol):
    """A running tritonserver, reachable on loopback."""

    url: str
    grpc_url: str  # host:port of its gRPC endpoint (decoupled models, binary tensors)

    def alive(self) -> bool: ...

    def log(self) -> str: ...

    def stop(self) -> None: ...


class Runtime(Protocol):
    name: str
    release: str  # the Triton release the runtime's server is

    def start(self, repo: Path, python: str, work: Path, *, complete_config: bool) -> Server:
        """Start a server over ``repo`` (explicit model control) with the stub for ``python``."""
        ...


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_dirs() -> set[Path]:
    return set(TRITON_TMP.glob("python_env_*"))


def cleanup_from_log(log: str, before: set[Path] | None = None) -> None:
    """Remove the extracted envs and shm regions a (killed) server named in its log, and the
    empty env dirs it made without naming them (a directory env: nothing was extracted)."""
    for path in set(_ENV_DIRS.findall(log)):
        shutil.rmtree(path, ignore_errors=True)
    for name in set(_SHM.findall(log)):
        (SHM / name).unlink(missing_ok=True)
    if before is not None:
        for path in env_dirs() - before:
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
