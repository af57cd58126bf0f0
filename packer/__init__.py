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

__version__ = "0.1.0"

from .check import CheckReport, check
from .core.errors import ExitCode, TritonPackError
from .lock.pypi import Indexes
from .pack.envcheck import InspectReport, inspect_env
from .pack.pack import PackOptions
from .pipeline import (
    CheckResult,
    Context,
    LockResult,
    Options,
    PackResult,
    check_lock,
    lock,
    package,
    prepare,
)
from .repository import RepoResult, package_repository
from .verify.verify import DockerOptions, VerifyReport, verify

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
