"""tritonpack: ship a Triton Python-backend model as easily and safely as a TorchScript model.pt.

The pipeline, usable without the command line (the CLI only parses options, calls these
and renders what they return)::

    from pathlib import Path
    import packer

    opts = packer.Options(triton="24.10")
    ctx = packer.prepare(Path("models/my_model"), opts)       # scan + resolve (no network)
    result = packer.package(Path("models/my_model"), opts)    # lock, build, pack, patch
    report = packer.verify(Path("models/my_model"), opts)     # a real tritonserver
"""

from __future__ import annotations

import sys

if sys.argv[:1] == ["-m"] or sys.argv[0].rpartition("/")[2] == "tritonpack":
    # the CLI's process (`python -m packer`, the console script): from its first instruction
    # on, a Ctrl-C is one line and exit 130 (packer.core.signals), never a traceback
    from .core.signals import exit_on_interrupt

    exit_on_interrupt()

from importlib import import_module
from types import ModuleType
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
    from .pipeline import PackResult, check_lock, lock, package
    from .repository import RepoResult, package_repository
    from .settings import Options
    from .verify.stage import DockerOptions, VerifyReport, verify

_HOME = {  # public name -> the module that owns it (``import packer`` imports none of them)
    "CheckReport": "freshness", "check": "freshness",
    "ExitCode": "core.errors", "TritonPackError": "core.errors",
    "Indexes": "lock.pypi",
    "InspectReport": "envcheck.inspect", "inspect_env": "envcheck.inspect",
    "PackOptions": "pack.stage",
    "CheckResult": "lock.stage", "LockResult": "lock.stage",
    **dict.fromkeys(["PackResult", "check_lock", "lock", "package"], "pipeline"),
    "Context": "context", "prepare": "context", "Options": "settings",
    "RepoResult": "repository", "package_repository": "repository",
    "DockerOptions": "verify.stage", "VerifyReport": "verify.stage", "verify": "verify.stage",
}


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use, so that ``tritonpack --version`` and
    ``import packer.core.errors`` do not pay for the whole pipeline."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'packer' has no attribute {name!r}")
    value = getattr(import_module(f".{home}", __name__), name)
    if name not in _SHADOWED:
        globals()[name] = value
    return value


_SHADOWED = {"lock": "pipeline", "verify": "verify.stage"}


class _Packer(ModuleType):
    """``packer.lock`` and ``packer.verify`` name both a stage package and a public function:
    the function wins, as it did when this module imported everything. The import system's
    binding of the subpackage is dropped; ``from packer.lock import x`` and relative imports
    find the package in ``sys.modules``, not as an attribute, and are unaffected."""

    def __getattribute__(self, name: str) -> Any:
        home = _SHADOWED.get(name)
        if home is not None:
            return getattr(import_module(f"packer.{home}"), name)
        return super().__getattribute__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _SHADOWED:
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Packer


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
    "lock",
    "package",
    "package_repository",
    "prepare",
    "verify",
]
