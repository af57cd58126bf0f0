"""--bytecode: hash-checked .pyc for what the environment's Python can compile; files it
cannot (torch ships one of 3.12 syntax for its own tests) ship as source only."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from packer.errors import PackError
from packer.pack import compile_bytecode

PY = f"{sys.version_info.major}.{sys.version_info.minor}"


def env_root(tmp_path: Path, python: Path) -> Path:
    root = tmp_path / "env"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / f"python{PY}").symlink_to(python)
    lib = root / "lib" / f"python{PY}" / "site-packages" / "pkg"
    lib.mkdir(parents=True)
    (lib / "ok.py").write_text("X = 1\n")
    (lib / "future.py").write_text("def f[T](a: T) -> T:\n    return a\n")  # 3.12 syntax
    return root


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="needs a Python older than 3.12 syntax")
def test_files_of_newer_syntax_ship_as_source(tmp_path: Path) -> None:
    root = env_root(tmp_path, Path(sys.executable))
    skipped = compile_bytecode(root, PY)
    pkg = root / "lib" / f"python{PY}" / "site-packages" / "pkg"
    assert skipped == (f"lib/python{PY}/site-packages/pkg/future.py",)
    assert [p.name for p in (pkg / "__pycache__").iterdir()] == [
        f"ok.cpython-{PY.replace('.', '')}.pyc"]


def test_any_other_failure_is_an_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\necho 'Fatal Python error: init_fs_encoding' >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(PackError, match=r"^compiling bytecode failed$"):
        compile_bytecode(env_root(tmp_path, broken), PY)
