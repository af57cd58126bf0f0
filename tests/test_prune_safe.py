"""Pruning never breaks a package: stubs read at run time stay; a module that stops importing
after pruning gets its files back."""

from __future__ import annotations

import json
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from packer.pack.prune import prune, restore, stub_readers, unmatched

from .conftest import copy_model, run_cli
from .wheels import make_wheel

SITE = "lib/python3.10/site-packages"
LAZY_INIT = ("import lazy_loader as lazy\n\n"
             "__getattr__, __dir__, __all__ = lazy.attach_stub(__name__, __file__)\n")


def env_tree(root: Path) -> Path:
    site = root / SITE
    for rel, text in {
        "stubby/__init__.py": LAZY_INIT, "stubby/__init__.pyi": "from .core import answer\n",
        "stubby/core.py": "answer = 42\n", "stubby/core.pyi": "answer: int\n",
        "stubby-1.0.dist-info/METADATA": "Name: stubby\nRequires-Dist: lazy-loader>=0.3\n\nbody",
        "stubby-1.0.dist-info/top_level.txt": "stubby\n",
        "selfread/__init__.py": "import pathlib\n"
                                "STUB = pathlib.Path(__file__).with_suffix('.pyi').read_text()\n",
        "selfread/__init__.pyi": "X: int\n",
        "plain/__init__.py": "", "plain/__init__.pyi": "", "plain/tests/test_x.py": "",
        "plain-1.0.dist-info/METADATA": "Name: plain\nRequires-Dist: lazy_loader; extra == 'x'\n",
    }.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    return root


def test_stubs_of_lazy_loader_packages_and_of_stub_readers_are_kept(tmp_path: Path) -> None:
    root = env_tree(tmp_path / "env")
    assert stub_readers(root, "3.10") == (f"{SITE}/stubby",)
    report = prune(root, "3.10")
    site = root / SITE
    assert (site / "stubby/__init__.pyi").is_file() and (site / "stubby/core.pyi").is_file()
    assert (site / "selfread/__init__.pyi").is_file()
    assert not (site / "plain/__init__.pyi").exists()  # lazy_loader only as an extra
    assert report.removed["type stubs"][0] == 1


def test_torchs_cpp_tests_go_and_its_shared_memory_manager_stays(tmp_path: Path) -> None:
    """torch's wheels ship C++ test programs (torch/test, torch/bin/test_*) and protoc, which
    no code of torch runs; torch.multiprocessing runs bin/torch_shm_manager."""
    torch = tmp_path / "env" / SITE / "torch"
    for rel in ("test/c10_Device_test", "bin/test_api", "bin/FileStoreTest", "bin/protoc",
                "bin/protoc-3.13.0.0", "bin/script_module_v4.ptl", "bin/test_interpreter_async.pt",
                "bin/upgrader_models/test_v2.ptl", "bin/torch_shm_manager", "testing/__init__.py",
                "__init__.py"):
        (torch / rel).parent.mkdir(parents=True, exist_ok=True)
        (torch / rel).write_bytes(b"\x7fELF")
    report = prune(tmp_path / "env", "3.10")
    left = sorted(p.relative_to(torch).as_posix() for p in torch.rglob("*") if p.is_file())
    assert left == ["__init__.py", "bin/torch_shm_manager", "testing/__init__.py"]
    assert report.removed["torch's C++ tests and build tools"] == (8, 32)


def pip_env(root: Path, *, required_by: str = "") -> Path:
    for rel in (f"{SITE}/pip/__init__.py", f"{SITE}/pip-23.0.1.dist-info/METADATA", "bin/pip",
                "bin/pip3", "bin/pip3.10", "conda-meta/pip-23.0.1-0.json",
                "conda-meta/python-3.10.13-0.json", "bin/python3"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("Name: pip\n" if rel.endswith("METADATA") else "")
    if required_by:
        (root / SITE / "tool-1.0.dist-info").mkdir()
        (root / SITE / "tool-1.0.dist-info" / "METADATA").write_text(
            f"Name: tool\nRequires-Dist: {required_by}\n")
    return root


@pytest.mark.parametrize(("required_by", "imports", "locked", "pruned"), [
    ("", (), ("numpy",), True),  # no server runs pip
    ("pip>=21", (), (), False),  # a distribution needs it
    ("pip; extra == 'dev'", (), (), True),  # only behind an extra
    ("", ("pip",), (), False),  # the model imports it
    ("", (), ("numpy", "PIP"), False),  # the model's requirements ask for it
])
def test_pip_goes_unless_something_needs_it(tmp_path: Path, required_by: str,
                                            imports: tuple[str, ...], locked: tuple[str, ...],
                                            pruned: bool) -> None:
    root = pip_env(tmp_path / "env", required_by=required_by)
    report = prune(root, "3.10", imports=imports, locked=locked)
    left = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    if pruned:
        assert report.removed["pip"][0] == 6
        assert left == ["bin/python3", "conda-meta/python-3.10.13-0.json"] + (
            [f"{SITE}/tool-1.0.dist-info/METADATA"] if required_by else [])
    else:
        assert "pip" not in report.removed and f"{SITE}/pip/__init__.py" in left
    for n, pattern in enumerate(("pip*", "pip")):  # one part kept keeps every part
        kept = prune(pip_env(tmp_path / f"kept{n}"), "3.10", keep=(pattern,))
        assert "pip" not in kept.removed and (tmp_path / f"kept{n}" / "bin" / "pip").exists()
        assert (tmp_path / f"kept{n}" / SITE / "pip-23.0.1.dist-info").is_dir()
        assert unmatched((pattern, "pipx"), kept) == ("pipx",)


def test_held_files_go_back_on_restore(tmp_path: Path) -> None:
    root = env_tree(tmp_path / "env")
    holding = tmp_path / "held"
    report = prune(root, "3.10", holding=holding)
    assert not (root / SITE / "plain/tests").exists()
    report = restore(root, holding, report, (f"{SITE}/plain",), "plain got its files back")
    assert (root / SITE / "plain/tests/test_x.py").is_file()
    assert (root / SITE / "plain/__init__.pyi").is_file()
    assert report.notes == ("plain got its files back",)
    assert "type stubs" not in report.removed and report.held == ()


@pytest.mark.slow
def test_pack_keeps_what_packages_read_and_imports_them(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "stubby", {"stubby/__init__.py": LAZY_INIT,
                                  "stubby/__init__.pyi": "from .core import answer\n",
                                  "stubby/core.py": "answer = 42\n"}, requires=("lazy_loader",))
    make_wheel(wheels, "testy", {"testy/__init__.py": "from .tests import helper\n",
                                 "testy/tests/__init__.py": "", "testy/tests/helper.py": "X = 1\n"})
    model = copy_model("plain_numpy", tmp_path)
    (model / "1" / "model.py").write_text("import numpy\nimport stubby\nimport testy\n\n\n"
                                          "class TritonPythonModel:\n    pass\n")
    (model / "tritonpack.toml").write_text('[imports]\nstubby = "stubby"\ntesty = "testy"\n')
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--find-links", wheels, "--no-cache")
    assert res.exit_code == 0, res.stderr
    assert ("testy stopped importing after pruning (ModuleNotFoundError: No module named "
            "'testy.tests'): its package keeps its pruned files") in res.stderr
    env = tmp_path / "env"
    env.mkdir()
    with tarfile.open(model / "tritonpack-env.tar.gz") as tar:
        names = set(tar.getnames())
        tar.extractall(env, filter="data")
    assert f"{SITE}/stubby/__init__.pyi" in names  # lazy_loader reads it: stubby stays files
    # testy is pure: in the site zip (packer/pack/sitezip.py), with what came back, compiled
    # once before the import check, then again for what came back
    with zipfile.ZipFile(env / SITE / "tritonpack-site.zip") as zf:
        assert {"testy/tests/helper.py", "testy/tests/helper.pyc"} <= set(zf.namelist())
    assert not any(n.endswith("/tests") and "numpy" in n for n in names)  # others still pruned
    out = subprocess.run([env / "bin" / "python3", "-I", "-c",
                          "import json, stubby, testy; print(json.dumps(stubby.answer))"],
                         capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    assert json.loads(out.stdout) == 42


def test_conda_unpack_is_not_left_listing_pruned_files(tmp_path: Path) -> None:
    """conda-unpack stops at the first listed file that is missing: pruned ones leave its
    list; a link still there stays, and a line it cannot read is left as it is."""
    from packer.pack.staging import drop_gone_records

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "kept").write_text("#!/p/bin/python\n")
    (tmp_path / "bin" / "link").symlink_to("nowhere")
    script = tmp_path / "bin" / "conda-unpack"
    script.write_text("#!/usr/bin/env python\n_prefix_records = [\n"
                      "('bin/kept', '/p', 'text'),\n('lib/pruned.pyi', '/p', 'text'),\n"
                      "('bin/link', '/p', 'text'),\nnot a record,\n]\nmain()\n")
    script.chmod(0o755)
    drop_gone_records(tmp_path)
    assert script.read_text() == (
        "#!/usr/bin/env python\n_prefix_records = [\n('bin/kept', '/p', 'text'),\n"
        "('bin/link', '/p', 'text'),\nnot a record,\n]\nmain()\n")
    assert script.stat().st_mode & 0o777 == 0o755


def test_package_test_dirs_go_up_to_four_levels_down(tmp_path: Path) -> None:
    """A package's ``tests`` at any of its first four levels goes (scipy keeps test suites in
    ``sparse/linalg/_isolve/tests``); a ``tests`` deeper, or a file named ``tests``, stays."""
    site = tmp_path / "env" / SITE
    dirs = ["deep/tests", "deep/a/tests", "deep/a/b/tests", "deep/a/b/c/tests",
            "deep/a/b/c/d/tests"]
    for rel in dirs:
        (site / rel).mkdir(parents=True)
        (site / rel / "test_x.py").write_text("")
    (site / "deep/a/b/c/tests.py").write_text("X = 1\n")
    report = prune(tmp_path / "env", "3.10")
    assert [rel for rel in dirs if (site / rel).exists()] == ["deep/a/b/c/d/tests"]
    assert (site / "deep/a/b/c/tests.py").is_file()
    assert report.removed["package test dirs"] == (4, 0)
