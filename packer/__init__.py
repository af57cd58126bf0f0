"""tritonpack: ship a Triton Python-backend model as easily and safely as a TorchScript model.pt.

The pipeline, usable without the command line (the CLI only parses options, calls these
and renders what they return)::

    from pathlib import Path
    import packer

    opts = packer.Options(triton="24.10")
    ctx = packer.prepare(Path("models/my_model"), opts)       # scan + resolve (no network)
    result = packer.package(Path("models/my_model"), opts)    # lock, build, pack, patch
    report = packer.verify_model(Path("models/my_model"), opts)   # a real tritonserver

``packer.lock`` and ``packer.verify`` are the stage packages; their entry points are exported
as ``lock_model`` and ``verify_model``, so a name means one thing.
"""

from __future__ import annotations

from .core.signals import cli_process, exit_on_interrupt

if cli_process():  # `python -m packer`, the console script: from its first instruction on, a
    exit_on_interrupt()  # Ctrl-C is one line and exit 130, never a traceback

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .core.version import __version__

if TYPE_CHECKING:  # the names below, for type checkers; at run time they load on first use
    from .context import Context, prepare
    from .core.errors import ExitCode, TritonPackError
    from .envcheck.inspect import InspectReport, inspect_env
    from .freshness import CheckReport, check
    from .lock.pypi import Indexes
    from .lock.stage import CheckResult, LockResult
    from .pack.stage import PackOptions
    from .pipeline import PackResult, check_lock, package
    from .pipeline import lock as lock_model
    from .repository import RepoResult, package_repository
    from .settings import Options
    from .verify.stage import DockerOptions, VerifyReport
    from .verify.stage import verify as verify_model

_HOME: dict[str, tuple[str, str]] = {  # public name -> (its module, its name there);
    # ``import packer`` imports none of them
    "CheckReport": ("freshness", "CheckReport"), "check": ("freshness", "check"),
    "ExitCode": ("core.errors", "ExitCode"), "TritonPackError": ("core.errors", "TritonPackError"),
    "Indexes": ("lock.pypi", "Indexes"),
    "InspectReport": ("envcheck.inspect", "InspectReport"),
    "inspect_env": ("envcheck.inspect", "inspect_env"),
    "PackOptions": ("pack.stage", "PackOptions"),
    "CheckResult": ("lock.stage", "CheckResult"), "LockResult": ("lock.stage", "LockResult"),
    "PackResult": ("pipeline", "PackResult"), "check_lock": ("pipeline", "check_lock"),
    "lock_model": ("pipeline", "lock"), "package": ("pipeline", "package"),
    "Context": ("context", "Context"), "prepare": ("context", "prepare"),
    "Options": ("settings", "Options"),
    "RepoResult": ("repository", "RepoResult"),
    "package_repository": ("repository", "package_repository"),
    "DockerOptions": ("verify.stage", "DockerOptions"),
    "VerifyReport": ("verify.stage", "VerifyReport"),
    "verify_model": ("verify.stage", "verify"),
}


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use, so that ``tritonpack --version`` and
    ``import packer.core.errors`` do not pay for the whole pipeline."""
    if name not in _HOME:
        raise AttributeError(f"module 'packer' has no attribute {name!r}")
    module, attribute = _HOME[name]
    value = getattr(import_module(f".{module}", __name__), attribute)
    globals()[name] = value
    return value


__all__ = [
    "CheckReport",
    "CheckResult",
    "Context",
    "DockerOptions",
    "ExitCode",
    "Indexes",
    "InspectReport",
    "LockResult",
    "Options",
    "PackOptions",
    "PackResult",
    "RepoResult",
    "TritonPackError",
    "VerifyReport",
    "__version__",
    "check",
    "check_lock",
    "inspect_env",
    "lock_model",
    "package",
    "package_repository",
    "prepare",
    "verify_model",
]
