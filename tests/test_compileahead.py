"""The import check compiling what it loads, once (``packer.build.compileahead``): what it
writes is the bytecode step's own bytes, its answer is the answer without it, a pack with it
is the pack without it, and a .pyc it cannot write costs nothing but the shortcut (a real
interpreter, real processes, a real pack)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.build import importcheck
from packer.pack import bytecode

from .conftest import run_cli
from .test_cache_speed import sha

PY = f"{sys.version_info.major}.{sys.version_info.minor}"


def make_env(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root], check=True)
    site = root / "lib" / f"python{PY}" / "site-packages"
    (site / "pkg").mkdir()
    (site / "pkg" / "__init__.py").write_text("from . import used\nNAMES = frozenset({'a', 'b'})\n")
    (site / "pkg" / "used.py").write_text("import json\nS = 'x y'\n")
    return root, site


def test_the_check_writes_what_the_bytecode_step_writes(tmp_path: Path) -> None:
    root, site = make_env(tmp_path)
    into = tmp_path / "into"
    ahead = importcheck.run(root, PY, ("pkg",), pycache=into, ahead=True)
    alone = importcheck.run(root, PY, ("pkg",), pycache=tmp_path / "elsewhere")
    assert ahead == alone and ahead.failed == {}  # the same answer, the same files read
    assert not (tmp_path / "elsewhere").exists()  # without ``ahead`` nothing is written
    sources = [site / "pkg" / "__init__.py", site / "pkg" / "used.py"]
    served = {f: bytecode.prefixed_pyc(into, f, PY).read_bytes() for f in sources}
    stdlib = [root / rel for rel in ahead.loaded if "site-packages" not in rel]
    assert bytecode.compiled_ahead(into, root, PY, sources) == set(sources)
    # every source the check loaded from the environment (a venv: none of the stdlib lies
    # inside it, so nothing of it is compiled)
    assert not [f for f in stdlib if bytecode.prefixed_pyc(into, f, PY).exists()]
    bytecode.compile_bytecode(root, PY, sources)
    assert {f: bytecode.cached_pyc(f, PY).read_bytes() for f in sources} == served


def test_the_code_run_is_named_by_its_path_and_a_failing_import_still_fails(
        tmp_path: Path) -> None:
    """The check runs the code it compiled under the file's real path (a traceback, a
    warning, ``co_filename`` say where the file is, as when the loader compiles it), and a
    module that raises, or does not compile, fails the check with the loader's own error."""
    root, site = make_env(tmp_path)
    (site / "where.py").write_text("import sys\nNAME = sys._getframe().f_code.co_filename\n"
                                   "assert NAME == __file__, (NAME, __file__)\n")
    (site / "boom.py").write_text("raise RuntimeError('no GPU here')\n")
    (site / "broken.py").write_text("def f(:\n")
    into = tmp_path / "into"
    ahead = importcheck.run(root, PY, ("where", "boom", "broken"), pycache=into, ahead=True)
    alone = importcheck.run(root, PY, ("where", "boom", "broken"))
    assert ahead.failed == alone.failed
    assert set(ahead.failed) == {"boom", "broken"}
    assert ahead.failed["boom"] == "RuntimeError: no GPU here"
    assert ahead.failed["broken"].startswith("SyntaxError: ")
    assert bytecode.prefixed_pyc(into, site / "where.py", PY).is_file()
    assert not bytecode.prefixed_pyc(into, site / "broken.py", PY).exists()


def test_what_the_check_wrote_is_kept_in_the_store_by_a_thread(tmp_path: Path) -> None:
    """``keep`` reads the files at once and writes the store on a thread it returns: once
    joined, the next pack of the same files places every one and compiles none; the files
    may go meanwhile (the site zip moves them) without changing what is kept."""
    root, site = make_env(tmp_path)
    sources = {site / "pkg" / "__init__.py", site / "pkg" / "used.py"}
    into = tmp_path / "into"
    importcheck.run(root, PY, ("pkg",), pycache=into, ahead=True)
    bytecode.adopt(into, sources, PY)
    wanted = {f: bytecode.cached_pyc(f, PY).read_bytes() for f in sources}
    store = tmp_path / "store"
    writer = bytecode.keep(root, PY, sources, store)
    assert writer is not None
    for f in sources:  # gone from the tree before the thread is done with the store
        bytecode.cached_pyc(f, PY).unlink()
    writer.join()
    placed, todo, _, _ = bytecode._reuse(root, PY, sorted(sources), store)
    assert placed == sources and todo == []
    assert {f: bytecode.cached_pyc(f, PY).read_bytes() for f in sources} == wanted
    assert bytecode.keep(root, PY, set(), store) is None  # nothing to keep: no thread

def test_a_pyc_the_check_cannot_write_is_the_bytecode_steps(tmp_path: Path) -> None:
    """Its pycache prefix is a file: nothing is written, the answer is the same, and the
    bytecode step compiles the files itself (with a warm store, places them)."""
    root, site = make_env(tmp_path)
    into = tmp_path / "into"
    into.write_text("not a folder\n")
    out = importcheck.run(root, PY, ("pkg",), pycache=into, ahead=True)
    assert out == importcheck.run(root, PY, ("pkg",), pycache=tmp_path / "elsewhere")
    assert out.failed == {}
    sources = [site / "pkg" / "__init__.py", site / "pkg" / "used.py"]
    assert bytecode.compiled_ahead(into, root, PY, sources) == set()


@pytest.mark.slow
def test_a_pack_whose_check_compiles_nothing_is_the_same_archive(
        model_copy: Callable[..., Path], packed_once: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's build (its imports compiled by the check) and a build from scratch
    whose check compiles nothing (the bytecode step compiles everything, as before): the
    same bytes."""
    first = packed_once("plain_numpy", "--triton", "24.10", "--python-from", "auto")
    assert "    _ahead(quiet)" in importcheck.SCRIPT
    monkeypatch.setattr(importcheck, "SCRIPT",
                        importcheck.SCRIPT.replace("    _ahead(quiet)", "    pass"))
    model = model_copy("plain_numpy")
    shutil.copy2(first / "tritonpack.lock", model / "tritonpack.lock")
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--frozen", "--no-cache",
                  "-q")
    assert res.exit_code == 0, res.stderr
    assert sha(first / "tritonpack-env.tar.gz") == sha(model / "tritonpack-env.tar.gz")
