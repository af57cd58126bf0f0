"""A stand-in for NVIDIA's Triton image, built locally (no registry is reachable here).

A minimal root file system: the real tritonserver and Python backend from the
nvidia-pytriton wheel (release 24.10) at the paths NVIDIA's image uses, the shared
libraries it needs copied from this machine, bash and a few tools for the backend's
stub launcher, then `docker import`. The verification is the same code path users run
against nvcr.io/nvidia/tritonserver:<release>-py3.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from packer.verify.local import pytriton_root

TAG = "tritonpack-test/tritonserver:24.10"
STUB_PYTHON = "3.10"  # the 24.10 image's stub
TOOLS = ["bash", "env", "dirname", "basename", "readlink", "realpath", "cat", "ls", "rm",
         "mkdir", "sed", "grep", "uname", "sleep", "true", "false", "tr", "cut", "head", "id"]


def _needed_libs(binaries: list[Path], extra_path: Path) -> set[Path]:
    libs: set[Path] = set()
    for binary in binaries:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False,
                             env={"LD_LIBRARY_PATH": str(extra_path)}).stdout
        for line in out.splitlines():
            parts = line.split("=>")
            path = (parts[1] if len(parts) == 2 else parts[0]).split("(")[0].strip()
            if path.startswith("/") and Path(path).exists():
                libs.add(Path(path))
    return libs


def build_rootfs(dest: Path) -> None:
    root, libs = pytriton_root()
    opt = dest / "opt" / "tritonserver"
    shutil.copytree(root / "bin", opt / "bin")
    shutil.copytree(root / "backends", opt / "backends")
    shutil.copy2(root / "python_backend_stubs" / STUB_PYTHON / "triton_python_backend_stub",
                 opt / "backends" / "python" / "triton_python_backend_stub")
    shutil.copytree(libs, opt / "lib")
    tools = [Path(shutil.which(t) or f"/bin/{t}") for t in TOOLS]
    binaries = [opt / "bin" / "tritonserver", *sorted((opt / "backends").rglob("*.so")),
                opt / "backends" / "python" / "triton_python_backend_stub",
                *sorted((opt / "lib").glob("*.so*")), *tools]
    for lib in _needed_libs(binaries, opt / "lib"):
        if str(lib).startswith(str(dest)):
            continue
        target = dest / str(lib.resolve()).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib.resolve(), target)
        link = dest / str(lib).lstrip("/")
        if link != target and not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(lib.resolve())
    for tool in tools:
        (dest / "usr" / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(tool, dest / "usr" / "bin" / tool.name)
    (dest / "bin").symlink_to("usr/bin")
    (dest / "usr" / "bin" / "sh").symlink_to("bash")
    for d in ("tmp", "dev/shm", "proc", "sys", "etc"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")


def build_image(docker: str = "docker") -> str:
    """Build the stand-in image (once: an existing tag is reused) and return its tag."""
    have = subprocess.run([docker, "image", "inspect", TAG], capture_output=True, check=False)
    if have.returncode == 0:
        return TAG
    with tempfile.TemporaryDirectory(prefix="tritonpack-standin-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        rootfs.mkdir()
        build_rootfs(rootfs)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(rootfs, arcname=".")
        subprocess.run(
            [docker, "import",
             "--change", "ENV PATH=/opt/tritonserver/bin:/usr/bin:/bin",
             "--change", "ENV LD_LIBRARY_PATH=/opt/tritonserver/lib",
             "--change", 'CMD ["tritonserver"]',
             "-", TAG],
            input=buf.getvalue(), check=True, capture_output=True,
        )
    return TAG


if __name__ == "__main__":
    print(build_image())
