"""The import check's compile server (``packer.build.compileahead``): what it writes is the
bytecode step's own bytes, a pack with it is the pack without it, and a server that is gone
costs nothing but the shortcut (a real interpreter, real processes, a real pack)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.build import compileahead, importcheck
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


def test_the_server_writes_what_the_bytecode_step_writes(tmp_path: Path) -> None:
    root, site = make_env(tmp_path)
    into = tmp_path / "into"
    ahead = importcheck.run(root, PY, ("pkg",), pycache=into, ahead=True)
    alone = importcheck.run(root, PY, ("pkg",), pycache=tmp_path / "elsewhere")
    assert ahead == alone and ahead.failed == {}  # the same answer, the same files read
    sources = [site / "pkg" / "__init__.py", site / "pkg" / "used.py"]
    served = {f: bytecode.prefixed_pyc(into, f, PY).read_bytes() for f in sources}
    stdlib = [root / rel for rel in ahead.loaded if "site-packages" not in rel]
    assert bytecode.compiled_ahead(into, root, PY, sources) == set(sources)
    # json's files too: every source the check loaded from the environment (a venv: none of
    # the stdlib lies inside it, so nothing of it is compiled)
    assert not [f for f in stdlib if bytecode.prefixed_pyc(into, f, PY).exists()]
    bytecode.compile_bytecode(root, PY, sources)
    assert {f: bytecode.cached_pyc(f, PY).read_bytes() for f in sources} == served


def test_what_the_server_wrote_is_kept_in_the_store_by_a_thread(tmp_path: Path) -> None:
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

def test_a_server_that_is_gone_leaves_the_check_alone_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It dies at start: the check does not wait its connect time, answers as without it,
    and nothing is written for it."""
    root, _ = make_env(tmp_path)
    monkeypatch.setattr(compileahead, "_SERVE", "raise SystemExit(3)")
    into = tmp_path / "into"
    t0 = time.monotonic()
    out = importcheck.run(root, PY, ("pkg",), pycache=into, ahead=True)
    assert time.monotonic() - t0 < compileahead._CONNECT_S
    assert out == importcheck.run(root, PY, ("pkg",), pycache=tmp_path / "elsewhere")
    assert out.failed == {}
    assert not into.exists() or not list(into.rglob("*.pyc"))


@pytest.mark.slow
def test_a_pack_without_the_server_is_the_same_archive(
        model_copy: Callable[..., Path], packed_once: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's build (its imports compiled by the server while the check ran) and a
    build from scratch whose server is gone (the bytecode step compiles everything, as
    before the server): the same bytes."""
    first = packed_once("plain_numpy", "--triton", "24.10", "--python-from", "auto")
    monkeypatch.setattr(compileahead, "_SERVE", "raise SystemExit(3)")
    model = model_copy("plain_numpy")
    shutil.copy2(first / "tritonpack.lock", model / "tritonpack.lock")
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--frozen", "--no-cache",
                  "-q")
    assert res.exit_code == 0, res.stderr
    assert sha(first / "tritonpack-env.tar.gz") == sha(model / "tritonpack-env.tar.gz")
