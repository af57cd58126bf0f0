"""The pure-Python stdlib in lib/pythonXY.zip: what goes in, what stays a file, and that
what went in imports from the zip's bytecode."""

from __future__ import annotations

import hashlib
import os
import py_compile
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from packer.lock.pychannel import find_python
from packer.pack.stdlibzip import DOCS, plan, zip_name, zip_stdlib

PY = f"{sys.version_info.major}.{sys.version_info.minor}"
TAG = f"cpython-{sys.version_info.major}{sys.version_info.minor}"

READS_DATA = """\
import os
with open(os.path.join(os.path.dirname(__file__), "Grammar.txt"), encoding="utf-8") as fh:
    GRAMMAR = fh.read().strip()
"""


def stdlib(tmp_path: Path, name: str = "env") -> Path:
    """A staged env's stdlib: modules, a pure package, one reading a file beside its
    ``__file__``, the prefix landmark, what conda-unpack rewrites, extension modules and
    site-packages; compiled like the pack step does (hash-checked, in __pycache__)."""
    root = tmp_path / name
    lib = root / "lib" / f"python{PY}"
    for d in ("tp_pure/sub", "tp_grammar", "lib-dynload", "site-packages/tp_site",
              "config-x/", "email"):
        (lib / d).mkdir(parents=True, exist_ok=True)
    (lib / "tp_mod.py").write_text("VALUE = 'module'\n")
    (lib / "tp_pure" / "__init__.py").write_text("")
    (lib / "tp_pure" / "sub" / "__init__.py").write_text("")
    (lib / "tp_pure" / "sub" / "deep.py").write_text("VALUE = 'deep'\n")
    (lib / "tp_grammar" / "__init__.py").write_text(READS_DATA)
    (lib / "tp_grammar" / "Grammar.txt").write_text("file_input: stmt* ENDMARKER\n")
    (lib / "email" / "__init__.py").write_text("")
    (lib / "email" / "architecture.rst").write_text("docs no code reads\n")
    (lib / "os.py").write_text("")
    (lib / "_sysconfigdata_x.py").write_text("build_time_vars = {'prefix': '/opt/anaconda1anaconda2'}\n")
    (lib / "lib-dynload" / "_tp.so").write_bytes(b"\x7fELF")
    (lib / "site-packages" / "tp_site" / "__init__.py").write_text("")
    (lib / "config-x" / "Makefile").write_text("all:\n")
    (root / "bin").mkdir()
    (root / "bin" / "conda-unpack").write_text(
        f"_prefix_records = [('lib/python{PY}/_sysconfigdata_x.py', 'text')]\n")
    for src in sorted(lib.rglob("*.py")):
        py_compile.compile(str(src), invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                           doraise=True)
    return root


def test_plan_keeps_data_readers_landmark_and_rewritten_files(tmp_path: Path) -> None:
    root = stdlib(tmp_path)
    zipped, kept = plan(root, PY)
    assert [p.name for p in zipped] == ["email", "tp_mod.py", "tp_pure"]
    assert kept == ["tp_grammar"]


def test_a_package_reading_a_file_beside_its_file_is_never_zipped(tmp_path: Path) -> None:
    root = stdlib(tmp_path)
    report = zip_stdlib(root, PY)
    lib = root / "lib" / f"python{PY}"
    with zipfile.ZipFile(root / "lib" / zip_name(PY)) as zf:
        names = zf.namelist()
    assert not [n for n in names if n.startswith("tp_grammar")]
    assert (lib / "tp_grammar" / "Grammar.txt").is_file()
    assert report.kept == ("tp_grammar",)
    # what stays a file: the landmark, what conda-unpack rewrites, dynload, site-packages
    for rel in ("os.py", "_sysconfigdata_x.py", "lib-dynload/_tp.so", "site-packages/tp_site",
                "config-x/Makefile"):
        assert (lib / rel).exists(), rel
    for rel in ("tp_mod.py", "tp_pure", f"__pycache__/tp_mod.{TAG}.pyc"):
        assert not (lib / rel).exists(), rel
    # sources, bytecode at the legacy place beside them, directories, docs
    assert {"tp_mod.py", "tp_mod.pyc", "tp_pure/", "tp_pure/sub/deep.pyc",
            "email/architecture.rst"} <= set(names)
    assert not [n for n in names if "__pycache__" in n]


def test_zipped_modules_import_from_the_zip_bytecode(tmp_path: Path) -> None:
    """The interpreter's own zipimport, with the zip before the stdlib dir as CPython puts it."""
    root = stdlib(tmp_path)
    zip_stdlib(root, PY)
    lib = root / "lib" / f"python{PY}"
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
            "import tp_mod, tp_pure.sub.deep, tp_grammar; "
            "print(tp_mod.__file__, tp_pure.sub.deep.VALUE, tp_grammar.GRAMMAR, sep='|')")
    out = subprocess.run([sys.executable, "-I", "-B", "-c", code,
                          str(root / "lib" / zip_name(PY)), str(lib)],
                         capture_output=True, text=True, check=True).stdout.strip().split("|")
    assert out == [str(root / "lib" / zip_name(PY) / "tp_mod.pyc"), "deep",
                   "file_input: stmt* ENDMARKER"]


def test_the_zip_is_reproducible(tmp_path: Path) -> None:
    """Same files at the same path (a .pyc records its source's path; builds use a fixed
    one), other mtimes: the same bytes."""
    digests = []
    for age in (3600, 0):
        shutil.rmtree(tmp_path / "env", ignore_errors=True)
        root = stdlib(tmp_path)
        stamp = time.time() - age
        for path in root.rglob("*"):
            os.utime(path, (stamp, stamp))
        zip_stdlib(root, PY)
        digests.append(hashlib.sha256((root / "lib" / zip_name(PY)).read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    with zipfile.ZipFile(tmp_path / "env" / "lib" / zip_name(PY)) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}


def test_the_real_stdlib_keeps_its_data_readers_as_files(tmp_path: Path) -> None:
    """CPython 3.10 (the stub's Python up to 24.10): lib2to3 reads its grammar, venv its
    scripts and pydoc its css beside ``__file__``; json and email are pure Python."""
    real = find_python("3.10").prefix / "lib" / "python3.10"
    root = tmp_path / "env"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "python3.10").symlink_to(real)
    zipped, kept = plan(root, "3.10")
    names = {p.name for p in zipped}
    assert {"lib2to3", "venv", "pydoc_data"} <= set(kept)
    assert {"json", "email", "ctypes", "asyncio", "collections", "encodings", "abc.py"} <= names
    assert not names & {"os.py", "site-packages", "lib-dynload", "idlelib", "lib2to3"}
    assert all(d.split("/")[0] in names for d in DOCS  # distutils: once pruned (below)
               if (real / d).exists() and not d.startswith("distutils/"))


def test_distutils_goes_in_the_zip_once_its_tests_are_pruned(tmp_path: Path) -> None:
    """3.10 and 3.11's distutils holds two files no code reads (its README, the template of a
    command) beside its modules, and a test suite with data that pruning removes: it is
    zipped, one file instead of ~100 to extract."""
    from packer.pack.prune import prune

    real = find_python("3.10").prefix / "lib" / "python3.10" / "distutils"
    root = tmp_path / "env"
    lib = root / "lib" / "python3.10"
    shutil.copytree(real, lib / "distutils", ignore=shutil.ignore_patterns("__pycache__"))
    (lib / "os.py").write_text("")
    prune(root, "3.10")
    assert not (lib / "distutils" / "tests").exists()
    zipped, kept = plan(root, "3.10")
    assert "distutils" in {p.name for p in zipped} and "distutils" not in kept
