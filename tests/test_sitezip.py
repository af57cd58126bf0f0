"""The pure-Python distributions in site-packages/tritonpack-site.zip: which go in (a static
look, per distribution), that they import from the zip with their bytecode and show their
source in tracebacks, that the zip is reproducible, and that the gate knows tritonpack's
.pth from a foreign one."""

from __future__ import annotations

import hashlib
import io
import os
import py_compile
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from packer.envcheck.inspect import SITE_PTH, SITE_PTH_TEXT, SITE_ZIP, inspect_env
from packer.pack.sitezip import plan, static_reads, unzip, zip_site
from packer.resolve.recipebook import load
from packer.resolve.target import resolve_target

PY = f"{sys.version_info.major}.{sys.version_info.minor}"
TAG = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
BOOM = "def boom():\n    raise ValueError('from the zip')  # the line a traceback shows\n"
READS = "import os\nDATA = open(os.path.join(os.path.dirname(__file__), 'x.txt')).read()\n"


def install(site: Path, dist: str, files: dict[str, str | bytes]) -> None:
    """A wheel-installed distribution: its files and a dist-info whose RECORD lists them."""
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    for rel, text in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    rows = [*files, f"{info.name}/METADATA", f"{info.name}/RECORD"]
    (info / "RECORD").write_text("".join(f"{r},,\n" for r in rows))


def env(tmp_path: Path, name: str = "env") -> Path:
    """A staged env's site-packages: pure distributions, and one of each kind kept as files;
    compiled like the pack step does (hash-checked, in __pycache__)."""
    root = tmp_path / name
    site = root / "lib" / f"python{PY}" / "site-packages"
    install(site, "tp_pure", {"tp_pure/__init__.py": "from .sub import deep\n",
                              "tp_pure/sub/__init__.py": "", "tp_pure/sub/deep.py": BOOM,
                              "tp_pure/__init__.pyi": "", "tp_pure/py.typed": ""})
    install(site, "tp_single", {"tp_single.py": "VALUE = 'single'\n"})
    install(site, "tp_reads", {"tp_reads/__init__.py": READS, "tp_reads/x.txt": "data\n"})
    install(site, "tp_file_only", {"tp_file_only/__init__.py": "HERE = __file__\n"})
    install(site, "tp_resources", {"tp_resources/__init__.py":
                                   "from importlib import resources\n"})
    install(site, "tp_native", {"tp_native/__init__.py": "", "tp_native/_c.so": b"\x7fELF"})
    install(site, "tp_toplevel_ext", {"tp_toplevel_ext/__init__.py": "",
                                      "_tp_toplevel_ext.cpython-310.so": b"\x7fELF"})
    install(site, "tp_hostile_record", {"tp_hostile_record.py": ""})
    with (site / "tp_hostile_record-1.0.dist-info" / "RECORD").open("a") as fh:
        fh.write("/etc/passwd,,\n../../x/y.py,,\nbad-name/__init__.py,,\n__pycache__/z.py,,\n")
    install(site, "tp_elf", {"tp_elf/__init__.py": "", "tp_elf/helper": b"\x7fELF\x02"})
    install(site, "tp_docs", {"tp_docs/__init__.py": "", "tp_docs/tp_docs.1": ".TH tp_docs\n"})
    install(site, "tp_ns", {"tp_ns/plugin/__init__.py": ""})
    install(site, "tp_shared_a", {"tp_shared/__init__.py": ""})
    install(site, "tp_shared_b", {"tp_shared/extra.py": ""})
    install(site, "tp_pth", {"tp_pth/__init__.py": "", "tp_pth.pth": "import tp_pth\n"})
    install(site, "tp_prefixed", {"tp_prefixed.py": "HOME = '/build/prefix/share'\n"})
    records = "".join(f"('lib/python{PY}/site-packages/{rel}', '/build/prefix', 'text'),\n"
                      for rel in ("tp_pure/__init__.py", "tp_single.py", "tp_prefixed.py"))
    (root / "bin").mkdir()  # conda-pack lists every text file a wheel installed
    (root / "bin" / "conda-unpack").write_text(f"_prefix_records = [\n{records}]\n")
    (site / "tp_bundled").mkdir()  # a --src module: no distribution, stays as it is
    (site / "tp_bundled" / "__init__.py").write_text("")
    for src in sorted(site.rglob("*.py")):
        py_compile.compile(str(src), invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                           doraise=True)
    return root


def test_the_plan_zips_pure_distributions_and_says_why_the_others_stay_files(
        tmp_path: Path) -> None:
    zipped, kept = plan(env(tmp_path), PY)
    assert [(d.name, d.tops) for d in zipped] == [
        ("tp_docs-1.0.dist-info", ("tp_docs",)),
        ("tp_hostile_record-1.0.dist-info", ("tp_hostile_record.py",)),  # names only
        ("tp_pure-1.0.dist-info", ("tp_pure",)), ("tp_single-1.0.dist-info", ("tp_single.py",))]
    assert dict(kept) == {
        "tp_file_only-1.0.dist-info": "tp_file_only/__init__.py finds its own files (__file__)",
        "tp_native-1.0.dist-info": "tp_native/_c.so is a native file",
        "tp_elf-1.0.dist-info": "tp_elf/helper is a native file",
        "tp_toplevel_ext-1.0.dist-info": "_tp_toplevel_ext.cpython-310.so is a native file",
        "tp_ns-1.0.dist-info": "tp_ns is a namespace package",
        "tp_pth-1.0.dist-info": "it installs tp_pth.pth",
        "tp_prefixed-1.0.dist-info": "tp_prefixed.py is rewritten by conda-unpack",
        "tp_reads-1.0.dist-info": "tp_reads/__init__.py finds its own files (__file__)",
        "tp_resources-1.0.dist-info":
            "tp_resources/__init__.py finds its own files (from importlib import)",
        "tp_shared_a-1.0.dist-info": "tp_shared is shared with another distribution",
        "tp_shared_b-1.0.dist-info": "tp_shared is shared with another distribution",
    }


@pytest.mark.parametrize("source", [
    "import os\nos.path.dirname(__file__)\n", "x = mod.__file__\n", "p = __path__[0]\n",
    "import importlib.resources\n", "import importlib\nimportlib.resources.files('x')\n",
    "from importlib import resources\n", "from importlib.resources import files\n",
    "import importlib_resources\n", "import pkgutil\n", "from pkg_resources import resource_string\n",
    "import inspect\ninspect.getfile(f)\n", "f.__code__.co_filename\n", "loader.get_data(p)\n",
    "def f(:\n    return pkgutil\n",
    # each shipped exit 0 in a real pack and failed at serve time, reading
    # site-packages/tritonpack-site.zip/PKG/x.txt: NotADirectoryError (or the files' old place)
    "import importlib.util\nimportlib.util.find_spec(__name__).origin\n",
    "spec.submodule_search_locations[0]\n",
    "from inspect import getfile\ngetfile(sys.modules[__name__])\n",
    "import sys\nvars(sys.modules[__name__])['__file__']\n",
    "from importlib.metadata import distribution\ndistribution('x').locate_file('x')\n",
    "import sysconfig\nsysconfig.get_paths()['purelib']\n",
    "import site\nsite.getsitepackages()\n",
])
def test_a_static_look_finds_code_that_finds_its_own_files(source: str) -> None:
    assert static_reads(source.encode())


@pytest.mark.parametrize("source", [
    "import os\nos.path.join('a', 'b')\n", "from urllib.parse import urlparse\nurlparse(u).path\n",
    "import importlib\nimportlib.import_module('x')\n", "files = [1]\n",
    "import logging\nlogging.getLogger(__name__)\n", "from inspect import signature\n",
    "def f(:\n",  # names none of the words: cannot find its files (nor run)
])
def test_ordinary_code_is_no_hit(source: str) -> None:
    assert static_reads(source.encode()) == ""


def test_zipped_modules_import_from_the_zip_through_the_pth_with_their_source(
        tmp_path: Path) -> None:
    """The interpreter's own site and zipimport: the .pth puts the zip after site-packages;
    the bytecode is read from beside the source; a traceback that the traceback module prints
    (logging, a model's own handler) shows the source line, read through the zip's loader."""
    root = env(tmp_path)
    report = zip_site(root, PY)
    site = root / "lib" / f"python{PY}" / "site-packages"
    assert report.tops == ("tp_docs", "tp_hostile_record.py", "tp_pure", "tp_single.py")
    assert (site / SITE_PTH).read_bytes() == SITE_PTH_TEXT
    for gone in ("tp_pure", "tp_single.py", f"__pycache__/tp_single.{TAG}.pyc"):
        assert not (site / gone).exists(), gone
    for stays in ("tp_reads/x.txt", "tp_native/_c.so", "tp_bundled/__init__.py",
                  "tp_pure-1.0.dist-info/RECORD"):
        assert (site / stays).exists(), stays
    with zipfile.ZipFile(site / SITE_ZIP) as zf:
        names = zf.namelist()
    assert {"tp_pure/", "tp_pure/__init__.py", "tp_pure/__init__.pyc", "tp_pure/sub/deep.pyc",
            "tp_pure/py.typed", "tp_single.py", "tp_single.pyc", "tp_docs/tp_docs.1"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.startswith("tp_reads")]
    code = ("import site, sys, traceback; site.addsitedir(sys.argv[1]); import tp_single, tp_pure\n"
            "print(tp_single.__file__, tp_pure.deep.__spec__.loader.__class__.__name__)\n"
            "try:\n    tp_pure.deep.boom()\nexcept ValueError:\n    traceback.print_exc()")
    res = subprocess.run([sys.executable, "-I", "-B", "-c", code, str(site)],
                         capture_output=True, text=True, check=False)
    assert res.stdout.split() == [str(site / SITE_ZIP / "tp_single.pyc"), "zipimporter"]
    assert "raise ValueError('from the zip')  # the line a traceback shows" in res.stderr


def test_unzip_puts_every_file_back(tmp_path: Path) -> None:
    root = env(tmp_path)
    site = root / "lib" / f"python{PY}" / "site-packages"
    before = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    report = zip_site(root, PY, tmp_path / "held")
    unzip(root, PY, report, tmp_path / "held")
    after = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert after == before
    assert not (site / SITE_PTH).exists()


def test_the_zip_is_reproducible(tmp_path: Path) -> None:
    """Same files at the same path, other mtimes and creation order: the same bytes."""
    digests = []
    for age in (3600, 0):
        shutil.rmtree(tmp_path / "env", ignore_errors=True)
        root = env(tmp_path)
        stamp = time.time() - age
        for path in root.rglob("*"):
            os.utime(path, (stamp, stamp))
        report = zip_site(root, PY)
        digests.append(hashlib.sha256((root / report.path).read_bytes()).hexdigest())
    assert digests[0] == digests[1]


TARGET = resolve_target(load(), "24.10")
SITE = "lib/python3.10/site-packages"


def _env_tar(path: Path, extra: dict[str, bytes]) -> Path:
    files = {"bin/python3": b"", "bin/activate": b"", "lib/libpython3.10.so.1.0": b"",
             f"{SITE}/numpy/__init__.py": b"", f"{SITE}/numpy-1.26.4.dist-info/METADATA": b"",
             **extra}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_the_gate_knows_tritonpacks_pth_and_still_refuses_a_foreign_one(tmp_path: Path) -> None:
    ours = inspect_env(_env_tar(tmp_path / "ours.tar.gz", {f"{SITE}/{SITE_PTH}": SITE_PTH_TEXT,
                                                           f"{SITE}/{SITE_ZIP}": b""}), TARGET)
    assert ours.ok, ours.findings
    for name, data in ((f"{SITE}/{SITE_PTH}", b"import os; os.system('id')\n"),
                       (f"{SITE}/{SITE_PTH}", SITE_PTH_TEXT + b"import os\n"),
                       (f"{SITE}/other.pth", SITE_PTH_TEXT)):
        report = inspect_env(_env_tar(tmp_path / "foreign.tar.gz", {name: data}), TARGET)
        assert report.errors() == [f"unsafe entry: {name} runs at every start of the "
                                   "environment's Python and no installed package owns it"]


# --- real packs ----------------------------------------------------------------------------

PURE = "ONE = 1\n\n\ndef boom():\n    raise ValueError('boom from the zip')  # shown\n"
MODEL_PY = '''import numpy as np
import tp_purepkg
import tp_selfread
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        # the packed layout, in the server: the pure package from the zip, the reader as files
        if ".zip" not in tp_purepkg.__file__ or ".zip" in tp_selfread.__file__:
            raise RuntimeError(f"{tp_purepkg.__file__} {tp_selfread.__file__}")

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            out = pb_utils.Tensor("OUTPUT0", (x + tp_purepkg.ONE).astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses
'''


def _model(tmp_path: Path, name: str) -> tuple[Path, tuple[str | Path, ...]]:
    """plain_numpy importing a pure package and one that reads a file beside __file__, both
    local wheels; the options a pack of it takes."""
    from .conftest import copy_model
    from .wheels import make_wheel

    wheels, recipes = tmp_path / "wheels", tmp_path / "recipes"
    if not wheels.exists():
        make_wheel(wheels, "tp_purepkg", {"tp_purepkg/__init__.py": PURE})
        make_wheel(wheels, "tp_selfread", {"tp_selfread/__init__.py": READS,
                                           "tp_selfread/x.txt": "data\n"})
        recipes.mkdir()
        (recipes / "imports.toml").write_text(
            '[imports]\ntp_purepkg = "tp_purepkg"\ntp_selfread = "tp_selfread"\n')
    model = copy_model("plain_numpy", tmp_path / name)
    (model / "1" / "model.py").write_text(MODEL_PY)
    return model, ("--triton", "24.10", "--python-from", "auto", "--find-links", wheels,
                   "--recipes", recipes, "--no-cache")


def _members(archive: Path) -> tuple[set[str], bytes]:
    """The archive's entry names, and the bytes of its site zip (b"" when none)."""
    with tarfile.open(archive, "r:gz") as tar:
        names = set(tar.getnames())
        member = tar.extractfile(f"{SITE}/{SITE_ZIP}") if f"{SITE}/{SITE_ZIP}" in names else None
        return names, member.read() if member is not None else b""


@pytest.mark.slow
@pytest.mark.server
def test_a_pure_package_ships_in_the_zip_and_loads_from_it_in_tritonserver(
        tmp_path: Path) -> None:
    from .conftest import run_cli

    model, options = _model(tmp_path, "one")
    res = run_cli(model, *options, "--verify", "--json")
    assert res.exit_code == 0, res.stderr
    import json

    assert json.loads(res.stdout)["verify"]["passed"]  # initialize() saw the zipped layout
    archive = model / "tritonpack-env.tar.gz"
    names, data = _members(archive)
    assert {f"{SITE}/{SITE_PTH}", f"{SITE}/tp_selfread/x.txt"} <= names
    assert not [n for n in names if n.startswith(f"{SITE}/tp_purepkg/")]
    assert f"{SITE}/tp_purepkg-1.0.dist-info/METADATA" in names  # importlib.metadata's
    assert {"tp_purepkg/__init__.py", "tp_purepkg/__init__.pyc"} <= set(
        zipfile.ZipFile(io.BytesIO(data)).namelist())
    # the packed env's own python, unpacked elsewhere: the same layout, the source line shown
    env = tmp_path / "elsewhere"
    env.mkdir()
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(env, filter="data")
    code = ("import traceback, tp_purepkg, importlib.metadata as md\n"
            "print(tp_purepkg.__file__, md.version('tp_purepkg'))\n"
            "try:\n    tp_purepkg.boom()\nexcept ValueError:\n    traceback.print_exc()")
    out = subprocess.run([env / "bin" / "python3", "-I", "-c", code], capture_output=True,
                         text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    assert out.stdout.split() == [str(env / SITE / SITE_ZIP / "tp_purepkg" / "__init__.pyc"),
                                  "1.0"]
    assert "raise ValueError('boom from the zip')  # shown" in out.stderr


@pytest.mark.slow
def test_the_zip_is_reproducible_and_no_zip_packages_keeps_files(tmp_path: Path) -> None:
    from .conftest import error_line, run_cli

    zips = []
    for name in ("a", "b"):
        model, options = _model(tmp_path, name)
        res = run_cli(model, *options)
        assert res.exit_code == 0, res.stderr
        zips.append(_members(model / "tritonpack-env.tar.gz")[1])
    assert zips[0] and zips[0] == zips[1]
    # the choice in tritonpack.toml: the lock no longer matches it, then remembers it
    (model / "tritonpack.toml").write_text("[options]\nzip-packages = false\n")
    stale = run_cli("check", model, "--recipes", options[-2])
    assert stale.exit_code != 0 and "pack_options" in stale.stdout + stale.stderr, (
        error_line(stale.stderr))
    res = run_cli(model, *options)
    assert res.exit_code == 0, res.stderr
    names, data = _members(model / "tritonpack-env.tar.gz")
    assert not data and f"{SITE}/{SITE_PTH}" not in names
    assert f"{SITE}/tp_purepkg/__init__.py" in names
    from packer.lock.lockfile import read_lock

    assert read_lock(model / "tritonpack.lock").inputs["pack_options"] == {"zip_packages": False}


SNEAKY = ("import sys\nHERE = vars(sys.modules[__name__])['__fi' + 'le__']\n"
          "DATA = open(HERE.rsplit('/', 1)[0] + '/x.txt').read()\n")


@pytest.mark.slow
def test_a_wrong_guess_puts_the_files_back_instead_of_shipping(tmp_path: Path) -> None:
    """A package that finds its file in a way no static look sees, and reads a data file
    beside it at import: the import from the zipped layout fails, every file goes back."""
    from .conftest import run_cli
    from .wheels import make_wheel

    model, options = _model(tmp_path, "sneaky")
    make_wheel(tmp_path / "wheels", "tp_sneaky", {"tp_sneaky/__init__.py": SNEAKY,
                                                  "tp_sneaky/x.txt": "data\n"})
    (tmp_path / "recipes" / "imports.toml").write_text(
        '[imports]\ntp_purepkg = "tp_purepkg"\ntp_selfread = "tp_selfread"\n'
        'tp_sneaky = "tp_sneaky"\n')
    (model / "1" / "model.py").write_text(MODEL_PY.replace("import tp_selfread",
                                                           "import tp_sneaky"))
    res = run_cli(model, *options)
    assert res.exit_code == 0, res.stderr
    assert ("note  tp_sneaky does not import with the pure-Python packages zipped "
            "(NotADirectoryError: [Errno 20] Not a directory: ") in res.stderr
    assert "tritonpack-site.zip/tp_sneaky/x.txt'): they ship as files" in res.stderr
    names, data = _members(model / "tritonpack-env.tar.gz")
    assert not data and f"{SITE}/{SITE_PTH}" not in names
    assert {f"{SITE}/tp_sneaky/x.txt", f"{SITE}/tp_purepkg/__init__.py"} <= names


@pytest.mark.parametrize("name", [SITE_ZIP, SITE_PTH])
def test_a_distributions_own_file_of_the_zips_name_is_never_overwritten(
        tmp_path: Path, name: str) -> None:
    root = env(tmp_path)
    site = root / "lib" / f"python{PY}" / "site-packages"
    install(site, "tp_squatter", {name: "a distribution's own bytes\n"})
    before = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    report = zip_site(root, PY)
    after = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert after == before  # nothing zipped, nothing moved, the file as it was
    assert (report.path, report.dists) == ("", ())
    assert dict(report.kept)["tp_pure-1.0.dist-info"] == (
        f"site-packages already holds {name} (not tritonpack's): nothing is zipped")
