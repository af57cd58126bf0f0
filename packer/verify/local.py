"""Runtime ``local``: the real tritonserver shipped in the nvidia-pytriton wheel, on the CPU.

Used straight from its files (never through pytriton's Python API): its ``bin``,
``backends`` and ``caches`` go to a work dir, with the backend stub matching the
environment's Python put at ``backends/python/triton_python_backend_stub``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import signal
from pathlib import Path

from ..core import proc
from ..core.errors import RuntimeMissingError
from ..core.version import install_hint
from .runtime import LOCAL_LOG, cleanup_from_log, free_port

RELEASE = "24.10"  # nvidia-pytriton 0.7.0 ships tritonserver 2.51.0


def pytriton_root() -> tuple[Path, Path]:
    """(pytriton/tritonserver, nvidia_pytriton.libs) of the installed wheel."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeMissingError(
            "the local runtime needs the nvidia-pytriton wheel",
            hint=install_hint("verify"),
        )
    pkg = Path(next(iter(spec.submodule_search_locations)))
    return pkg / "tritonserver", pkg.parent / "nvidia_pytriton.libs"


def stub_pythons() -> tuple[str, ...]:
    """The Pythons the local tritonserver has a backend stub for."""
    root, _ = pytriton_root()
    stubs = root / "python_backend_stubs"
    return tuple(sorted(p.parent.name for p in stubs.glob("*/triton_python_backend_stub")))


class LocalServer:
    def __init__(self, service: proc.Service, url: str, log_path: Path, grpc_url: str = ""):
        self.service = service
        self.process = service.process
        self.url = url
        self.grpc_url = grpc_url
        self.log_path = log_path

    def alive(self) -> bool:
        return self.process.poll() is None

    def exit_status(self) -> str | None:
        """'killed by SIGKILL', 'exited with status 1'; None while it runs."""
        code = self.process.poll()
        if code is None:
            return None
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
            return f"killed by signal {-code}"
        return f"exited with status {code}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """SIGKILL to the whole process group and every process the server started, in the
        group or not; then remove what it left in /tmp and /dev/shm, which its log names (and
        the empty env dir its Python backend made as the log says it started). No SIGINT
        first: verify has its answer, and Triton's own shutdown polls its models once a
        second and waits for each stub's finalize, 2-3 s a server that prove nothing more."""
        self.service.stop_all()  # the group, and what left it (a model's setsid'd daemon)
        cleanup_from_log(self.log())


class LocalRuntime:
    name = "local"
    release = RELEASE

    def __init__(self, library_path: tuple[Path, ...] = (), python_home: Path | None = None):
        # bench/ only: a model with no environment runs on an installed Python
        self.library_path = library_path
        self.python_home = python_home

    def start(self, repo: Path, python: str, work: Path, *, complete_config: bool) -> LocalServer:
        root, libs = pytriton_root()
        stub = root / "python_backend_stubs" / python / "triton_python_backend_stub"
        if not stub.is_file():
            raise RuntimeMissingError(f"the local tritonserver has no backend stub for Python {python}")
        server_dir = work / "server"
        server_dir.mkdir()
        (server_dir / "bin").symlink_to(root / "bin")
        shutil.copytree(root / "backends", server_dir / "backends")
        shutil.copy2(stub, server_dir / "backends" / "python" / "triton_python_backend_stub")
        http, grpc, metrics = free_port(), free_port(), free_port()
        argv: list[str | Path] = [
            server_dir / "bin" / "tritonserver",
            f"--model-repository={repo}",
            f"--backend-directory={server_dir / 'backends'}",
            f"--cache-directory={root / 'caches'}",
            "--http-address=127.0.0.1", f"--http-port={http}",
            "--grpc-address=127.0.0.1", f"--grpc-port={grpc}",
            "--metrics-address=127.0.0.1", f"--metrics-port={metrics}",
            "--allow-metrics=false", "--allow-gpu-metrics=false",
            "--model-control-mode=explicit", "--pinned-memory-pool-byte-size=0",
            "--cuda-memory-pool-byte-size=0:0", "--exit-on-error=false",
            f"--log-file={work / LOCAL_LOG}",  # written line by line, unlike a piped stdout
            "--log-verbose=1",  # names the env dirs and shm regions to clean up
        ]
        if complete_config:
            argv.append("--disable-auto-complete-config")
        ld = ":".join(str(p) for p in (libs, *self.library_path))
        env = proc.clean_env({"LD_LIBRARY_PATH": ld})
        if self.python_home is not None:
            env["PYTHONHOME"] = str(self.python_home)
        service = proc.popen(argv, env=env, cwd=work, log_file=work / "server.log")
        return LocalServer(service, f"http://127.0.0.1:{http}", work / LOCAL_LOG,
                           grpc_url=f"127.0.0.1:{grpc}")
