"""Every module imports on its own (no circular imports), and the public API is complete."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import packer

MODULES = sorted(m.name for m in pkgutil.walk_packages(packer.__path__, "packer.")
                 if m.name != "packer.__main__")


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(module: str) -> None:
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)


def test_public_api() -> None:
    for name in packer.__all__:
        assert hasattr(packer, name), name
