"""--bytecode: hash-checked .pyc for what the environment's Python can compile; files it
cannot (torch ships one of 3.12 syntax for its own tests) ship as source only."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from packer.core.errors import PackError
from packer.lock.pychannel import find_python
from packer.pack.bytecode import compile_bytecode
from packer.pack.bytecode import targets as bytecode_targets

PY = f"{sys.version_info.major}.{sys.version_info.minor}"


def env_root(tmp_path: Path, python: Path, version: str = PY) -> Path:
    root = tmp_path / "env"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / f"python{version}").symlink_to(python)
    lib = root / "lib" / f"python{version}" / "site-packages" / "pkg"
    lib.mkdir(parents=True)
    (lib / "ok.py").write_text("X = 1\n")
    (lib / "future.py").write_text("def f[T](a: T) -> T:\n    return a\n")  # 3.12 syntax
    return root


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="needs a Python older than 3.12 syntax")
def test_files_of_newer_syntax_ship_as_source(tmp_path: Path) -> None:
    root = env_root(tmp_path, Path(sys.executable))
    skipped = compile_bytecode(root, PY, bytecode_targets(root, PY, "all", ()))
    pkg = root / "lib" / f"python{PY}" / "site-packages" / "pkg"
    assert skipped == (f"lib/python{PY}/site-packages/pkg/future.py",)
    assert [p.name for p in (pkg / "__pycache__").iterdir()] == [
        f"ok.cpython-{PY.replace('.', '')}.pyc"]


def test_any_other_failure_is_an_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\necho 'Fatal Python error: init_fs_encoding' >&2\nexit 1\n")
    broken.chmod(0o755)
    root = env_root(tmp_path, broken)
    with pytest.raises(PackError, match=r"^compiling bytecode failed$"):
        compile_bytecode(root, PY, bytecode_targets(root, PY, "all", ()))


def test_compiling_is_reproducible(tmp_path: Path) -> None:
    """Python 3.10 (the stub's Python up to Triton 24.10) marshals frozenset constants in hash
    order, and marshal's output depends on what the process compiled before: a fixed seed and
    fixed chunks make the bytes the same every time. The machine's 3.10 build, as the
    environment tests use it (--python-from auto)."""
    py310 = find_python("3.10").prefix / "bin" / "python3.10"
    digests = []
    for _ in range(2):  # at one path, as builds are (a .pyc records its source's path)
        shutil.rmtree(tmp_path / "env", ignore_errors=True)
        root = env_root(tmp_path, py310, "3.10")
        pkg = root / "lib" / "python3.10" / "site-packages" / "pkg"
        for i in range(40):
            words = ", ".join(f"'w{i}_{j}'" for j in range(12))
            (pkg / f"m{i:02}.py").write_text(f"def f(x):\n    return x in {{{words}}}\n")
        (pkg / "future.py").unlink()
        assert compile_bytecode(root, "3.10", bytecode_targets(root, "3.10", "all", ())) == ()
        digests.append({p.name: p.read_bytes() for p in (pkg / "__pycache__").iterdir()})
    assert len(digests[0]) == 41 and digests[0] == digests[1]


def test_imported_mode_compiles_the_stdlib_and_what_the_model_imports(tmp_path: Path) -> None:
    root = env_root(tmp_path, Path(sys.executable))
    lib = root / "lib" / f"python{PY}"
    (lib / "json").mkdir()
    (lib / "os.py").write_text("")
    site = lib / "site-packages"
    for name in ("numpy", "pandas", "pip"):
        (site / name).mkdir()
    (site / "six.py").write_text("")
    chosen = bytecode_targets(root, PY, "imported", ("pandas", "six", "not_installed"))
    assert [p.relative_to(lib).as_posix() for p in chosen] == [
        "json", "os.py", "site-packages/numpy", "site-packages/pandas", "site-packages/six.py"]
    assert bytecode_targets(root, PY, "all", ()) == [lib]
    assert bytecode_targets(root, PY, "none", ("pandas",)) == []
