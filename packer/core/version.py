"""tritonpack's version: one owner, the installed distribution's metadata (pyproject.toml).

The lock file, the SBOM, the stamp and ``--version`` all say it; a source tree that is not
installed says ``0+unknown`` rather than a number that may be wrong.
"""

from __future__ import annotations

import os
import sys


def _installed() -> str:
    """The version in the name of the first ``tritonpack-X.dist-info`` on ``sys.path``: the
    one ``importlib.metadata`` would read, found without importing it (20-40 ms of email and
    zipfile parsing that ``tritonpack --version`` would otherwise pay on every start)."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            stem, _, suffix = name.rpartition(".")
            project, _, number = stem.partition("-")
            if suffix == "dist-info" and project.lower() == "tritonpack" and number:
                return number
    from importlib.metadata import PackageNotFoundError, version  # eggs, zips: the slow path

    try:
        return version("tritonpack")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree not installed
        return "0+unknown"


__version__ = _installed()


def install_hint(extra: str) -> str:
    """How to add an extra: from the source tritonpack was installed from. The name is not
    published on PyPI, so installing it by name from an index could fetch someone else's
    package; a hint never tells a user to."""
    return (f"install the {extra} extra from tritonpack's repository (in a checkout: pip install "
            f"'.[{extra}]'); tritonpack is not on PyPI")
