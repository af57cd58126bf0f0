"""Hostile and odd inputs to the pack's bytecode, import check, hint, compress-ahead, pip
pruning and conda-unpack records: each once broke a pack (an adversarial review of the
change that compiles only what a start loads); each must now hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.build import importcheck
from packer.pack import bytecode
from packer.pack.bytecode import compile_bytecode, targets
from packer.pack.staging import drop_gone_records

from .conftest import run_cli
from .freshcache import fresh_cache
from .test_bytecode import PY, env_root

TAG = f"cpython-{PY.replace('.', '')}"


def _plain_env(tmp_path: Path) -> tuple[Path, Path]:
    root = env_root(tmp_path, Path(sys.executable))
    pkg = root / "lib" / f"python{PY}" / "site-packages" / "pkg"
    (pkg / "future.py").unlink()  # 3.12 syntax: not this review's subject
    return root, pkg


def _venv(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root], check=True)
    return root, root / "lib" / f"python{PY}" / "site-packages"


# --- 1. the compile driver writes through a symlink the env ships (regression: compileall's
# _write_atomic used O_EXCL on a unique name) -------------------------------------------------

def test_compile_driver_never_writes_through_a_symlinked_tmp(tmp_path: Path) -> None:
    root, pkg = _plain_env(tmp_path)
    (pkg / "__pycache__").mkdir()  # kept by --no-prune, or put back by a failed import check
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (pkg / "__pycache__" / f"ok.{TAG}.pyc.tmp").symlink_to(victim)
    compile_bytecode(root, PY, targets(root, PY, "all", ()))
    assert victim.read_bytes() == b"precious\n"


# --- 2. the compile driver imports modules from the env root (its cwd is on sys.path) ---------

def test_compile_driver_runs_no_code_from_the_env_root(tmp_path: Path) -> None:
    root, _ = _plain_env(tmp_path)
    marker = tmp_path / "ran"
    # a wheel's <name>.data/data/json.py is installed exactly here (the prefix root)
    (root / "json.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n"
                                  "raise SystemExit('json.py from the env root ran')\n")
    compile_bytecode(root, PY, targets(root, PY, "all", ()))
    assert not marker.exists()


# --- 3. the import check's loaded-files scan aborts on a lazy module in sys.modules ----------

def test_a_lazy_module_whose_import_fails_does_not_abort_the_check(tmp_path: Path) -> None:
    """The documented importlib.util.LazyLoader recipe (cpython#139669, lazy_import#24):
    getattr(module, "__file__") runs the deferred import; if that raises, the whole check
    fails (CheckFailed) and the pack restores everything pruned ("nothing pruned")."""
    root, site = _venv(tmp_path)
    (site / "heavy_optional.py").write_text("raise RuntimeError('needs a GPU')\n")
    (site / "pkg.py").write_text(
        "import importlib.util, sys\n"
        "spec = importlib.util.find_spec('heavy_optional')\n"
        "spec.loader = importlib.util.LazyLoader(spec.loader)\n"
        "mod = importlib.util.module_from_spec(spec)\n"
        "sys.modules['heavy_optional'] = mod\n"
        "spec.loader.exec_module(mod)\n")
    out = importcheck.run(root, PY, ("pkg",))
    assert out.failed == {}
    assert f"lib/python{PY}/site-packages/pkg.py" in out.loaded
    # listed (its spec named the file: its first use will load it), never run by the check


def test_a_module_object_whose_getattr_raises_does_not_abort_the_check(tmp_path: Path) -> None:
    root, site = _venv(tmp_path)
    (site / "shim.py").write_text(
        "import sys, types\n"
        "m = types.ModuleType('shim._compat')\n"
        "def __getattr__(name):\n    raise ImportError(f'{name} needs the optional extra')\n"
        "m.__getattr__ = __getattr__\n"
        "sys.modules['shim._compat'] = m\n")
    assert importcheck.run(root, PY, ("shim",)).failed == {}


# --- 4. a report the check cannot read must be CheckFailed, never an internal error ----------

@pytest.mark.parametrize("payload", ["'[' * 200000", "json.dumps([{}, ['lib/a\\0.py']])",
                                     "json.dumps('not a report')"])
def test_a_forged_report_is_a_failed_check_not_a_crash(tmp_path: Path, payload: str) -> None:
    """A package overwrites the report at exit (it can read where it is): what it wrote is
    a failed check, or a list whose impossible names are dropped, never an internal error;
    and what it prints on stdout at exit is nobody's report."""
    root, site = _venv(tmp_path)
    (site / "noisy.py").write_text(
        "import atexit, json, sys\n"
        f"atexit.register(lambda: open(sys.argv[1], 'w').write({payload}))\n"
        "atexit.register(lambda: sys.stdout.write('\\n@@TRITONPACK@@[{}, []]'))\n")
    try:
        out = importcheck.run(root, PY, ("noisy",))
    except importcheck.CheckFailed:
        return
    assert targets(root, PY, "imported", (), out.loaded) == []


def test_output_that_is_not_utf8_is_no_crash(tmp_path: Path) -> None:
    """A C library printing Latin-1 at import: the check reads its report, not its output."""
    root, site = _venv(tmp_path)
    (site / "latin.py").write_text("import sys\nsys.stdout.buffer.write(b'caf\\xe9\\n')\n")
    out = importcheck.run(root, PY, ("latin",))
    assert out.failed == {} and f"lib/python{PY}/site-packages/latin.py" in out.loaded


# --- 5. a malformed loaded-files hint in the cache breaks every later pack of that lock -------

def test_a_hint_naming_an_impossible_path_is_no_hint(tmp_path: Path) -> None:
    root, _ = _plain_env(tmp_path)
    store = tmp_path / "store"
    bytecode._store(store, "ab" * 32, json.dumps([f"lib/python{PY}/x\0.py"]).encode())
    hint = bytecode.recall(store, "ab" * 32)
    # what staging._place_hint does with it: no hint, not an internal error (exit 70 on
    # every later pack, before: the crash came before the check that rewrites the hint)
    assert hint is None
    assert targets(root, PY, "imported", (), (f"lib/python{PY}/x\0.py",)) == []


# --- 6. non-UTF-8 file names (pre-existing: the store key encodes the name strictly) ---------

def test_a_file_name_that_is_not_utf8_is_compiled_or_skipped_not_a_crash(tmp_path: Path) -> None:
    root, pkg = _plain_env(tmp_path)
    os.close(os.open(os.fsencode(pkg) + b"/caf\xe9.py", os.O_CREAT | os.O_WRONLY))
    compile_bytecode(root, PY, targets(root, PY, "all", ()), tmp_path / "store")



@pytest.mark.skipif(sys.version_info >= (3, 12), reason="needs a Python older than 3.12 syntax")
def test_a_file_named_like_the_compile_s_report_marker_ships_as_source(tmp_path: Path) -> None:
    """The compile driver lists the files it skipped after a marker; a skipped file named
    with the marker in it was taken for the marker: "compiling bytecode failed" (exit 9),
    pointing at the bytecode store."""
    root, pkg = _plain_env(tmp_path)
    (pkg / 'x@@TRITONPACK@@["a"].py').write_text("def f[T](a: T) -> T:\n    return a\n")
    assert compile_bytecode(root, PY, targets(root, PY, "all", ())) == (
        f'lib/python{PY}/site-packages/pkg/x@@TRITONPACK@@["a"].py',)

# --- 7. conda-unpack written in the locale's encoding (conda-pack's NamedTemporaryFile "w") ---

def test_conda_unpack_in_a_latin1_locale_is_not_an_internal_error(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    script = ("#!/usr/bin/env python\n_prefix_records = [\n"
              "('lib/gone.txt', '/home/jos\xe9/build/prefix', 'text'),\n"
              "('bin/conda-unpack', '/home/jos\xe9/build/prefix', 'text')\n]\n")
    (tmp_path / "bin" / "conda-unpack").write_bytes(script.encode("latin-1"))
    drop_gone_records(tmp_path)
    assert b"gone.txt" not in (tmp_path / "bin" / "conda-unpack").read_bytes()


# --- 8. pip named in requirements.txt is pruned all the same ----------------------------------

@pytest.mark.slow
def test_pip_the_user_requires_is_not_pruned(model_copy: Callable[..., Path]) -> None:
    model = model_copy("plain_numpy")
    (model / "requirements.txt").write_text("numpy\npip\n")
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == 0, res.stderr
    with tarfile.open(model / "tritonpack-env.tar.gz") as tf:
        names = tf.getnames()
    assert any("/site-packages/pip/__init__.py" in n for n in names)


# --- 9. a top-level package that is a symlink out of the env (pre-existing; the guard of
# 2116168 covers only the import check's list) ---------------------------------------------

def test_a_symlinked_package_dir_gets_no_pycache_outside_the_env(tmp_path: Path) -> None:
    root, _ = _plain_env(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("X = 1\n")
    (root / "lib" / f"python{PY}" / "site-packages" / "linked").symlink_to(outside)
    compile_bytecode(root, PY, targets(root, PY, "imported", ("linked",), ()), tmp_path / "s")
    assert not (outside / "__pycache__").exists()


# --- 10. compress_ahead holds a whole file's members in memory (twice), the write streams ---

def test_compressing_ahead_does_not_hold_a_whole_large_file_in_memory(tmp_path: Path) -> None:
    import threading
    import tracemalloc

    from packer.archive.writer import compress_ahead
    tree = tmp_path / "tree"
    tree.mkdir()
    size = 48 << 20  # libtorch_cuda.so is ~1 GB: the same 2x is ~1-2 GB of RSS there
    (tree / "lib.so").write_bytes(os.urandom(size))
    tracemalloc.start()
    compress_ahead(tree, 4, tmp_path / "store", threading.Event())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < size // 2, f"peak {peak >> 20} MiB for a {size >> 20} MiB file"


# --- 11. output after the report (atexit handlers, "Exception ignored in ...", a helper
# process's warning at shutdown) makes the report unreadable: CheckFailed, nothing pruned
# (pre-existing: 06edf31 crashed with an uncaught ValueError on the same output) -----------

def test_noise_printed_at_interpreter_exit_does_not_void_the_report(tmp_path: Path) -> None:
    root, site = _venv(tmp_path)
    (site / "chatty.py").write_text(
        "import atexit, sys\n"
        "atexit.register(lambda: print('chatty: flushing telemetry, bye', file=sys.stderr))\n")
    out = importcheck.run(root, PY, ("chatty",))
    assert out.failed == {}


# --- second round -------------------------------------------------------------------

def test_a_symlinked_pycache_dir_gets_no_pyc_written_outside_the_env(tmp_path: Path) -> None:
    """A conda package may ship symlinks; `pkg/__pycache__ -> /somewhere` makes the compile
    driver (mkstemp + os.replace in that dir) write outside the env."""
    root, pkg = _plain_env(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (pkg / "__pycache__").symlink_to(outside)
    compile_bytecode(root, PY, targets(root, PY, "all", ()))
    assert list(outside.iterdir()) == []


def test_a_symlinked_pycache_dir_gets_no_cached_pyc_placed_outside(tmp_path: Path) -> None:
    root, pkg = _plain_env(tmp_path)
    store = tmp_path / "store"
    compile_bytecode(root, PY, targets(root, PY, "all", ()), store)  # fills the store
    import shutil

    shutil.rmtree(pkg / "__pycache__")
    outside = tmp_path / "outside"
    outside.mkdir()
    (pkg / "__pycache__").symlink_to(outside)
    compile_bytecode(root, PY, targets(root, PY, "all", ()), store)  # placed from the store
    assert list(outside.iterdir()) == []


def test_a_helper_process_left_running_by_an_import_does_not_stall_the_check(
        tmp_path: Path) -> None:
    """A package that starts a background helper at import (telemetry, a server, a
    resource tracker) which inherits stdout: the check's process exits at once, but
    proc.run waits for EOF on the pipe until the timeout (180 s in a pack), and the check
    then counts as failed: nothing pruned, bytecode for the whole stdlib."""
    import time

    from packer.build import importcheck
    root, site = _venv(tmp_path)
    (site / "spawner.py").write_text(
        "import subprocess\nsubprocess.Popen(['sleep', '30'])\n")
    start = time.monotonic()
    try:
        out = importcheck.run(root, PY, ("spawner",), timeout=8)
    except importcheck.CheckFailed as exc:
        pytest.fail(f"the check failed ({exc}) after {time.monotonic() - start:.1f}s")
    assert out.failed == {} and time.monotonic() - start < 5


def test_a_lock_s_sha256_and_file_name_never_place_a_download_outside_the_cache(
        tmp_path: Path) -> None:
    """read_lock checks the content hash (anyone can recompute it) but not that sha256 is
    64 hex digits nor that file_name is one name: the download's path is
    cache/downloads/<sha256>-<file_name>. With a URL of scheme FILE: (not 'file://', so not
    the local-path branch; urllib lower-cases the scheme) this copies any readable file to
    any directory, offline, and the copy stays after the sha256 refusal."""
    from packer.build import condainstall
    from packer.core.errors import BuildError
    from packer.lock import conda
    secret = tmp_path / "secret.txt"
    secret.write_text("token=hunter2\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    cache = Path(os.environ["TRITONPACK_CACHE"])
    up = os.path.relpath(outside, cache / "downloads") + "/"
    sha = (up + "P" * 64)[:64]
    assert len(sha) == 64 and sha.startswith("..")
    pkg = conda.CondaPackage(name="pip", version="1", build="b", build_number=0,
                             subdir="noarch", url=f"FILE://{secret}", sha256=sha,
                             channel="x", file_name="stolen.conda")
    with pytest.raises(BuildError):
        condainstall.verified(pkg)
    assert list(outside.iterdir()) == []


def _pycs(archive: Path) -> dict[str, bytes]:
    """Every .pyc the archive ships (loose, or in the zipped stdlib): name -> bytes."""
    import io
    import tarfile
    import zipfile
    out = {}
    with tarfile.open(archive) as tf:
        for m in tf.getmembers():
            if m.isfile() and m.name.endswith(".pyc"):
                out[m.name] = tf.extractfile(m).read()
            elif m.isfile() and m.name.endswith(".zip") and "/python" in "/" + m.name:
                with zipfile.ZipFile(io.BytesIO(tf.extractfile(m).read())) as z:
                    out.update({f"{m.name}/{n}": z.read(n) for n in z.namelist()
                                if n.endswith(".pyc")})
    return out


@pytest.mark.slow
def test_the_compile_driver_leaves_no_bytecode_of_its_own_imports(
        model_copy: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, session_cache: Path) -> None:
    """The compile driver (-S -s, not -B) imports tempfile, shutil, bz2, lzma, ... from the
    env's stdlib and CPython writes their timestamp-based .pyc into the tree being packed:
    they ship, though only hash-checked bytecode should."""
    # cold environment and bytecode stores (the compile driver runs); downloads shared
    monkeypatch.setenv("TRITONPACK_CACHE", str(fresh_cache(tmp_path / "cold-cache", session_cache)))
    model = model_copy("plain_numpy")
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "-q")
    assert res.exit_code == 0, res.stderr
    stamped = sorted(n for n, d in _pycs(model / "tritonpack-env.tar.gz").items()
                     if int.from_bytes(d[4:8], "little") != 1)
    assert stamped == []


@pytest.mark.slow
def test_a_warm_bytecode_store_gives_the_archive_a_cold_one_gives(
        model_copy: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, session_cache: Path) -> None:
    """Same lock, same machine: cold cache, then the bytecode and gzip stores warm (the env
    cache dropped, so the pack runs again): the compile driver does not run the second
    time, so the .pyc it wrote for its own imports the first time are missing."""
    import hashlib
    import shutil

    cache = fresh_cache(tmp_path / "cache", session_cache)  # cold stores, downloads shared
    monkeypatch.setenv("TRITONPACK_CACHE", str(cache))
    model = model_copy("plain_numpy")
    assert run_cli(model, "--triton", "24.10", "--python-from", "auto", "-q").exit_code == 0
    first = (model / "tritonpack-env.tar.gz").read_bytes()
    shutil.rmtree(cache / "envs")
    (model / "tritonpack-env.tar.gz").unlink()
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--frozen", "-q")
    assert res.exit_code == 0, res.stderr
    second = (model / "tritonpack-env.tar.gz").read_bytes()
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()


@pytest.mark.slow
def test_the_packing_machine_s_locale_does_not_change_the_archive(
        model_copy: Callable[..., Path], packed_once: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The import check inherits the caller's locale: under a Latin-1 LC_ALL the interpreter
    loads encodings.latin_1 instead of encodings.utf_8 at start-up, so another set of files
    gets bytecode and the same lock packs to another sha256 (and, with the first finding,
    utf_8 ships as the driver's timestamp .pyc)."""
    import shutil
    import subprocess

    loc = tmp_path / "loc"
    loc.mkdir()
    if shutil.which("localedef") is None or subprocess.run(
            ["localedef", "-i", "en_US", "-f", "ISO-8859-1", loc / "en_US.ISO-8859-1"],
            capture_output=True).returncode not in (0, 1):
        pytest.skip("no localedef to make a Latin-1 locale")
    packed = packed_once("plain_numpy", "--triton", "24.10", "--python-from", "auto")  # any locale
    first = (packed / "tritonpack-env.tar.gz").read_bytes()
    model = model_copy("plain_numpy")
    shutil.copy2(packed / "tritonpack.lock", model / "tritonpack.lock")
    monkeypatch.setenv("LOCPATH", str(loc))
    monkeypatch.setenv("LC_ALL", "en_US.ISO-8859-1")
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "-q", "--frozen", "--no-cache")
    assert res.exit_code == 0, res.stderr
    assert (model / "tritonpack-env.tar.gz").read_bytes() == first


def test_a_package_printing_a_flood_at_import_does_not_fill_tritonpack_s_memory(
        tmp_path: Path) -> None:
    """The report goes to a file, but proc.run still keeps all of the check's stdout (and
    decodes it to a str): a package writing N bytes at import costs tritonpack ~3N of
    memory (a C library dumping a log, a progress bar with no tty; 10 GB -> OOM)."""
    import tracemalloc

    from packer.build import importcheck
    root, site = _venv(tmp_path)
    size = 96 << 20
    (site / "flood.py").write_text(
        f"import sys\nfor _ in range({size >> 20}):\n    sys.stdout.write('x' * (1 << 20))\n")
    tracemalloc.start()
    out = importcheck.run(root, PY, ("flood",))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.failed == {}
    assert peak < size // 4, f"peak {peak >> 20} MiB for {size >> 20} MiB printed"
