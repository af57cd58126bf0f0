"""What verify needs beyond the core, installed by extras: tritonclient's gRPC client for every
runtime, nvidia-pytriton's tritonserver for ``local``, the docker SDK for ``docker``.

The core (scan, lock, build, pack, patch) needs none of them. A verify without its extra is
refused before anything is packed or started, naming the pip command that installs it.
"""

from __future__ import annotations

import importlib

from ..core.errors import RuntimeMissingError
from ..core.version import install_hint

EXTRA = {"local": "verify", "docker": "docker"}  # the extra that installs each runtime's needs


def _missing(module: str) -> bool:
    """Whether ``module`` cannot be imported: absent, or a dependency of it is (tritonclient
    installed without its ``grpc`` extra raises RuntimeError for want of grpcio)."""
    try:
        importlib.import_module(module)
    except (ImportError, RuntimeError):
        return True
    return False


def require(runtime: str) -> None:
    """Refuse a verify with ``runtime`` whose Python packages are not installed."""
    hint = install_hint(EXTRA.get(runtime, "verify"))
    if _missing("tritonclient.grpc"):
        raise RuntimeMissingError("verify needs tritonclient's gRPC client, which is not installed",
                                  hint=hint)
    if runtime == "docker":
        require_docker()
    elif runtime == "local":
        from .local import pytriton_root

        pytriton_root()  # its own refusal: the same extra


def require_docker() -> None:
    """Refuse the docker runtime when the docker SDK is not installed."""
    if _missing("docker"):
        raise RuntimeMissingError("the docker runtime needs the docker SDK, which is not installed",
                                  hint=install_hint("docker"))
