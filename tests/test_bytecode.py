"""--bytecode: hash-checked .pyc for what the environment's Python can compile; files it
cannot (torch ships one of 3.12 syntax for its own tests) ship as source only."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from packer.build import importcheck
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
    with pytest.raises(PackError) as failed:
        compile_bytecode(root, PY, bytecode_targets(root, PY, "all", ()))
    assert failed.value.message == ("compiling bytecode failed: the environment's Python did "
                                    "not finish its compile")
    assert failed.value.hint == ("its output follows with --verbose; a .pyc it names as bad "
                                 "comes from tritonpack's bytecode store: `tritonpack cache "
                                 "prune --all` empties it")


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


def test_imported_mode_compiles_what_the_import_check_loaded(tmp_path: Path) -> None:
    root = env_root(tmp_path, Path(sys.executable))
    lib = root / "lib" / f"python{PY}"
    site = lib / "site-packages"
    for name in ("numpy", "mine", "pandas"):
        (site / name).mkdir()
    loaded = (f"lib/python{PY}/json/__init__.py", f"lib/python{PY}/site-packages/numpy/core.py")
    chosen = bytecode_targets(root, PY, "imported", ("mine", "absent"), loaded)
    # the loaded files one by one, the bundled packages whole; pandas was not loaded
    assert [p.relative_to(lib).as_posix() for p in chosen] == [
        "json/__init__.py", "site-packages/numpy/core.py", "site-packages/mine"]


def test_a_loaded_list_naming_files_outside_the_env_is_not_followed(tmp_path: Path) -> None:
    """The list comes from a process that ran the packages' code: a path outside the env,
    through a symlink, or not Python is dropped (nothing outside is read or written)."""
    root = env_root(tmp_path, Path(sys.executable))
    (tmp_path / "outside.py").write_text("SECRET = 1\n")
    site = root / "lib" / f"python{PY}" / "site-packages"
    (site / "escape").symlink_to(tmp_path)
    loaded = ("../outside.py", str(tmp_path / "outside.py"),
              f"lib/python{PY}/site-packages/escape/outside.py",
              f"lib/python{PY}/site-packages/pkg/ok.py", "bin/activate")
    chosen = bytecode_targets(root, PY, "imported", (), loaded)
    assert [p.relative_to(root).as_posix() for p in chosen] == [f"lib/python{PY}/site-packages/pkg/ok.py"]


def test_imported_mode_without_the_checks_list_compiles_the_stdlib_and_the_imports(
        tmp_path: Path) -> None:
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
    assert bytecode_targets(root, PY, "all", (), ("x.py",)) == [lib]


def test_the_import_check_says_which_files_of_the_env_were_loaded(tmp_path: Path) -> None:
    """A real interpreter in a venv: the check imports ``load`` (failures ignored) and the
    checked modules, and reports the env's own source files they loaded, nothing outside
    (a module that failed is not loaded: nothing to compile for it)."""
    root = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root], check=True)
    site = root / "lib" / f"python{PY}" / "site-packages"
    (site / "pkg").mkdir()
    (site / "pkg" / "__init__.py").write_text("from . import used\n")
    (site / "pkg" / "used.py").write_text("import json\n")
    (site / "pkg" / "unused.py").write_text("X = 1\n")
    (site / "broken.py").write_text("raise RuntimeError('no GPU')\n")
    (site / "side.py").write_text("")
    out = importcheck.run(root, PY, ("pkg", "broken"), ("side", "no_such_module"))
    assert out.failed == {"broken": "RuntimeError: no GPU"}
    assert [p for p in out.loaded if "site-packages" in p] == [
        f"lib/python{PY}/site-packages/pkg/__init__.py",
        f"lib/python{PY}/site-packages/pkg/used.py", f"lib/python{PY}/site-packages/side.py"]
    assert all(not p.startswith("/") and ".." not in p for p in out.loaded)  # json: outside


def test_the_loaded_list_is_remembered_and_garbage_is_no_hint(tmp_path: Path) -> None:
    from packer.core.cachehome import distrusted
    from packer.pack.bytecode import _store, recall, remember

    store = tmp_path / "store"
    remember(store, "ab" * 32, ("lib/python3.10/json/__init__.py",))
    assert recall(store, "ab" * 32) == ("lib/python3.10/json/__init__.py",)
    with distrusted():  # --no-cache: the stores are written, never read
        assert recall(store, "ab" * 32) is None
    assert recall(None, "ab" * 32) is None and recall(store, "cd" * 32) is None
    for n, garbage in enumerate((b"not json at all, not at all", b'{"a": "dict, not list"}',
                                 b'[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]')):
        _store(store, f"{n:02}" * 32, garbage)
        assert recall(store, f"{n:02}" * 32) is None


@pytest.mark.parametrize("version", ["3.10", PY])
def test_a_damaged_store_entry_is_named_dropped_and_compiled_again(
        tmp_path: Path, version: str, caplog: pytest.LogCaptureFixture) -> None:
    """An entry whose digest holds but whose code is garbage (a disk error under the digest,
    a hand edit): placed, it broke every later pack ("compiling bytecode failed", the driver
    reading it as its own json). Checked by the environment's own Python (its marshal format
    is its own), named, dropped, compiled again and stored anew."""
    import hashlib

    python = (find_python("3.10").prefix / "bin" / "python3.10" if version == "3.10"
              else Path(sys.executable))  # another Python's marshal, and tritonpack's own
    store = tmp_path / "store"
    first = env_root(tmp_path / "one", python, version)
    compile_bytecode(first, version, bytecode_targets(first, version, "all", ()), store)
    entries = [p for p in store.rglob("*") if p.is_file() and p.stat().st_size > 100]
    assert len(entries) == 1  # ok.py's .pyc (future.py: a short "source only" entry)
    good = entries[0].read_bytes()
    data = good[32:48] + b"\xff" * 40  # the header kept, the code garbage
    entries[0].write_bytes(hashlib.sha256(data).digest() + data)
    again = env_root(tmp_path / "two", python, version)
    with caplog.at_level("WARNING", logger="tritonpack.bytecode"):
        compile_bytecode(again, version, bytecode_targets(again, version, "all", ()), store)
    rel = f"lib/python{version}/site-packages/pkg/ok.py"
    # the bytecode module's own words (a CLI run before in this worker may have left the
    # reuse counts' INFO lines on, a logger of their own)
    assert [r.getMessage() for r in caplog.records if r.name == "tritonpack.bytecode"] == [
        f"dropped the damaged bytecode-store entry {entries[0]} ({rel}): compiled again"]
    pyc = again / rel.replace("ok.py", f"__pycache__/ok.cpython-{version.replace('.', '')}.pyc")
    subprocess.run([python, "-c", "import marshal, sys; "
                    "marshal.loads(open(sys.argv[1], 'rb').read()[16:])", pyc], check=True)
    assert entries[0].read_bytes() == good  # stored anew, as it was before the damage


def test_the_interpreter_key_follows_the_bytes_and_is_hashed_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kept while the files are the same (no second read of 16 MB per use); a byte written
    in place, even with the size and times put back, or a file replaced, is a new key."""
    import os

    from packer.pack import bytecode

    root = tmp_path / "env"
    (root / "bin").mkdir(parents=True)
    (root / "lib").mkdir()
    lib = root / "lib" / "libpython3.10.so.1.0"
    (root / "bin" / "python3.10").write_bytes(b"interpreter")
    lib.write_bytes(b"a" * 4096)
    old = time.time() - 60
    for part in (root / "bin" / "python3.10", lib):
        os.utime(part, (old, old))
    time.sleep(0.2)  # ctime settled
    first = bytecode.interpreter_key(root, "3.10")
    reads: list[Path] = []
    real_open = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: (reads.append(self),
                                                             real_open(self, *a, **k))[1])
    assert bytecode.interpreter_key(root, "3.10") == first and reads == []  # kept
    with real_open(lib, "r+b") as fh:  # one byte, in place
        fh.write(b"b")
    os.utime(lib, (old, old))  # mtime put back: the ctime still moved
    assert bytecode.interpreter_key(root, "3.10") != first and reads
    lib.write_bytes(b"a" * 4096)
    os.utime(lib, (old, old))
    assert bytecode.interpreter_key(root, "3.10") == first  # the bytes decide, not the memo


def test_within_answers_as_resolving_each_path_whole_does(tmp_path: Path) -> None:
    """``Within`` resolves each folder once; its answer for any path (links in and out of
    the root, relative ones, ``..``, a loop, names that do not exist) is the one
    ``Path.resolve().is_relative_to(root)`` gives, a loop being outside (one the kernel
    meets too: ``loop/..``, which ``realpath`` reads as the root, ``_resolved_inside``)."""
    import itertools

    from packer.pack.bytecode import Within

    root = tmp_path / "root"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "out" / "x").mkdir(parents=True)
    (root / "a" / "out").symlink_to(tmp_path / "out")
    (root / "a" / "in").symlink_to(root / "a" / "b")
    (root / "a" / "b" / "up").symlink_to("../..")
    (root / "a" / "b" / "away").symlink_to("../../../out")
    (root / "loop").symlink_to(root / "loop")
    (root / "a" / "b" / "f.py").write_text("")
    names = ["a", "b", "c", "out", "in", "up", "away", "x", "..", "loop", "f.py", "none"]
    inside = Within(root)
    real = root.resolve()
    checked = {True: 0, False: 0}
    for depth in (1, 2, 3):
        for parts in itertools.product(names, repeat=depth):
            path = root.joinpath(*parts)
            want = _resolved_inside(path, real)
            assert inside(path) is want, path
            assert inside(str(path)) is want, path
            checked[want] += 1
    assert checked[True] > 100 and checked[False] > 100
    assert not inside(root / "a\0b")


def _resolved_inside(path: Path, real: Path) -> bool:
    """The reference ``Within`` answers as: ``Path.resolve`` inside ``real``, and a path the
    kernel cannot follow for a loop of links outside (nothing is written through it)."""
    import errno
    import os

    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return False
    try:
        return path.resolve().is_relative_to(real)
    except RuntimeError:
        return False


def test_within_answers_as_resolve_where_the_kernel_and_realpath_disagree(
        tmp_path: Path) -> None:
    """Trees found by a random walk: a link to ``m/../a`` where there is no ``m`` (the kernel
    looks for ``m``, ``realpath`` reads the '..' after it), one to ``l/..`` from ``l`` itself
    (a loop the kernel sees, ``realpath`` does not). Asking the
    unresolved path's ``lstat`` whether a name is a link answered "inside" for a file that
    resolves out of the root; each name is now looked at under its folder's resolution."""
    from packer.pack.bytecode import Within

    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (tmp_path / "c").mkdir()
    (root / "n").symlink_to("m/../a")  # no m: the kernel fails, realpath gives root/a
    (root / "a" / "o").symlink_to("../o")
    (root / "o").symlink_to("../c")  # out
    (root / "a" / "b" / "l").symlink_to("l/..")
    real = root.resolve()
    inside = Within(root)
    for path in (root / "n" / "o", root / "n" / "o" / "x.py", root / "a" / "b" / "l" / "l" / "a",
                 root / "a" / "b" / "l" / "x"):
        assert _resolved_inside(path, real) is False, path
        assert inside(path) is False, path
    assert inside(f"{root}//a/./b//") is True
    assert inside(root / "n" / "b") is True  # realpath's reading: root/a/b


def test_within_answers_as_resolve_on_random_trees_of_links(tmp_path: Path) -> None:
    """A property test: random trees of folders, files and links (absolute, relative, '..',
    to themselves, dangling) in and out of the root; one ``Within`` per tree answers every
    path as ``_resolved_inside`` does."""
    import os
    import random

    from packer.pack.bytecode import Within

    checked = {True: 0, False: 0}
    for seed in range(120):
        rnd = random.Random(seed)
        base = tmp_path / str(seed)
        root, out = base / "root", base / "out"
        dirs = [root, out]
        for folder in dirs:
            folder.mkdir(parents=True)
        for _ in range(8):
            folder = rnd.choice(dirs) / rnd.choice("abcd")
            if not os.path.lexists(folder):
                folder.mkdir()
                dirs.append(folder)
        nodes = list(dirs)
        for _ in range(8):
            link = rnd.choice(dirs) / rnd.choice("lmno")
            if os.path.lexists(link):
                continue
            target = rnd.choice([*nodes, root / "none", link])
            link.symlink_to(rnd.choice([
                str(target), os.path.relpath(target, link.parent),
                "../" * rnd.randrange(4) + rnd.choice("abcdlmno"),
                rnd.choice([".", "..", "./l", "../..", "/", "l/..", "m/../a"])]))
            nodes.append(link)
        inside, real = Within(root), root.resolve()
        for depth in (1, 2, 3, 4):
            for _ in range(40):
                parts = [rnd.choice(["a", "b", "l", "m", "n", "o", "..", ".", "zz"])
                         for _ in range(depth)]
                path = root.joinpath(*parts)
                want = _resolved_inside(path, real)
                assert inside(path) is want, (seed, path)
                assert inside("/".join((str(root), "", *parts))) is want, (seed, path)
                checked[want] += 1
    assert checked[True] > 1000 and checked[False] > 1000


def _deep(top: Path, depth: int) -> Path:
    """``top/a/a/...`` ``depth`` folders deep, made one folder at a time (``mkdir -p`` and
    ``shutil.rmtree`` recurse a frame a folder)."""
    folder = top
    for _ in range(depth):
        folder = folder / "a"
        folder.mkdir()
    return folder


def _undeep(top: Path, bottom: Path) -> None:
    """Remove ``_deep``'s tree from the bottom up, without recursion (pytest's clean-up of
    tmp_path would hit the RecursionError this test is about)."""
    import os

    folder = bottom
    while folder != top:
        for entry in os.scandir(folder):
            if entry.is_dir(follow_symlinks=False):
                os.rmdir(entry.path)
            else:
                os.unlink(entry.path)
        folder = folder.parent
    for entry in os.scandir(top):
        if entry.is_dir(follow_symlinks=False):
            os.rmdir(entry.path)


def test_a_tree_a_thousand_folders_deep_gets_its_bytecode(tmp_path: Path) -> None:
    """A wheel may ship a deep tree (a path of 2,000 bytes is 1,000 folders of one letter):
    ``Within`` resolved each folder by recursion, a RecursionError from 500 folders down
    taken for "outside" (the files silently got no bytecode), and ``rglob`` raised it from
    1,000 down (a traceback). Both walk in a loop now."""
    from packer.pack.bytecode import Within, files

    root = tmp_path / "env"
    pkg = root / "lib" / f"python{PY}" / "site-packages" / "pkg"
    pkg.mkdir(parents=True)
    bottom = _deep(pkg, 1000)
    try:
        (bottom / "m.py").write_text("")
        middle = bottom.parents[400] / "m.py"
        middle.write_text("")
        assert Within(root)(bottom / "m.py") is True
        assert files(root, [pkg]) == sorted([middle, bottom / "m.py"])
    finally:
        _undeep(pkg, bottom)


def test_a_folder_made_a_link_out_between_two_packs_steps_gets_no_bytecode(
        tmp_path: Path) -> None:
    """Each ``files()`` asks a new ``Within``: a folder resolved inside once and replaced by
    a link out of the environment afterwards (between the import check's answer and the
    compile) is resolved again: nothing is written through it."""
    from packer.pack.bytecode import files

    root = env_root(tmp_path, Path(sys.executable))
    pkg = root / "lib" / f"python{PY}" / "site-packages" / "pkg"
    (pkg / "future.py").unlink()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "ok.py").write_text("X = 1\n")
    chosen = bytecode_targets(root, PY, "all", ())
    assert files(root, chosen) == [pkg / "ok.py"]
    (pkg / "ok.py").unlink()
    pkg.rmdir()
    pkg.symlink_to(outside)
    assert files(root, chosen) == []
    assert files(root, [pkg]) == []  # the link named itself: still outside
    assert compile_bytecode(root, PY, [pkg]) == ()
    assert sorted(p.name for p in outside.iterdir()) == ["ok.py"]


@pytest.mark.parametrize("stored", [False, True])
def test_a_folder_at_a_pyc_s_name_is_left_alone_and_its_source_ships_as_source(
        tmp_path: Path, stored: bool) -> None:
    """``--no-prune`` keeps a package's ``__pycache__``; one holding a folder where a
    ``.pyc`` goes failed the pack: a traceback (IsADirectoryError) placing the store's
    entry, else "compiling bytecode failed" naming the store, a ``.tmp`` left beside it.
    That file ships as source only, its folder untouched; the others get bytecode."""
    root = env_root(tmp_path, Path(sys.executable))
    pkg = root / "lib" / f"python{PY}" / "site-packages" / "pkg"
    (pkg / "future.py").unlink()
    (pkg / "other.py").write_text("Y = 2\n")
    store = tmp_path / "store"
    tag = PY.replace(".", "")
    if stored:  # the store holds both files' bytecode
        compile_bytecode(root, PY, bytecode_targets(root, PY, "all", ()), store)
        shutil.rmtree(pkg / "__pycache__")
    taken = pkg / "__pycache__" / f"ok.cpython-{tag}.pyc"
    taken.mkdir(parents=True)
    (taken / "kept").write_text("a package's byte")
    assert compile_bytecode(root, PY, bytecode_targets(root, PY, "all", ()), store) == ()
    assert sorted(p.name for p in (pkg / "__pycache__").iterdir()) == [
        f"ok.cpython-{tag}.pyc", f"other.cpython-{tag}.pyc"]
    assert [p.name for p in taken.iterdir()] == ["kept"]
    assert (taken / "kept").read_text() == "a package's byte"


def test_a_folder_linked_to_another_one_compiles_each_file_once(tmp_path: Path) -> None:
    """``foo -> bar`` in site-packages, both chosen: each file was listed under both names,
    and their ``.pyc`` (one file, in bar's ``__pycache__``) written by two compile processes
    at once, the archive taking the last. One name each, the one through no link."""
    from packer.pack.bytecode import files

    root = env_root(tmp_path, Path(sys.executable))
    site = root / "lib" / f"python{PY}" / "site-packages"
    (site / "pkg" / "future.py").unlink()
    (site / "alias").symlink_to("pkg")
    chosen = bytecode_targets(root, PY, "imported", ("alias", "pkg"), ())
    assert [p.name for p in chosen] == ["alias", "pkg"]
    assert files(root, chosen) == [site / "pkg" / "ok.py"]
    assert files(root, [site / "alias"]) == [site / "alias" / "ok.py"]  # its only name


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="needs a Python older than 3.12 syntax")
def test_the_reuse_report_counts_no_bytecode_for_a_file_that_ships_as_source(
        tmp_path: Path) -> None:
    """``reused``'s bytecode counts are the files that have bytecode: a file of newer syntax
    was counted "compiled" by a cold pack and not at all by a warm one (the store says
    "source only"), so cold and warm disagreed on how many bytecode files there are."""
    from packer.core import reused

    root = env_root(tmp_path, Path(sys.executable))
    store = tmp_path / "store"
    with reused.counting() as cold:
        compile_bytecode(root, PY, bytecode_targets(root, PY, "all", ()), store)
    shutil.rmtree(root / "lib" / f"python{PY}" / "site-packages" / "pkg" / "__pycache__")
    with reused.counting() as warm:
        compile_bytecode(root, PY, bytecode_targets(root, PY, "all", ()), store)
    assert (cold.frozen().pyc_placed, cold.frozen().pyc_compiled) == (0, 1)
    assert (warm.frozen().pyc_placed, warm.frozen().pyc_compiled) == (1, 0)
