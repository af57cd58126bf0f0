"""tritonpack's version: one owner, the installed distribution's metadata (pyproject.toml).

The lock file, the SBOM, the stamp and ``--version`` all say it; a source tree that is not
installed says ``0+unknown`` rather than a number that may be wrong.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tritonpack")
except PackageNotFoundError:  # pragma: no cover - run from a source tree that is not installed
    __version__ = "0+unknown"
