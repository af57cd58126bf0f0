"""Dependencies the import lines do not show: a module a package imports at run time without
declaring it, a chosen distribution that does not provide its import, a soft dependency
(transformers' torch), the version a pickle records, an sdist's setup_requires."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from packer.core.errors import ExitCode
from packer.lock.lockfile import read_lock
from packer.lock.sdist import LEGACY_BUILD_REQUIRES, declared_build_requires
from packer.verify.diagnose import diagnose

from .conftest import MODELS, copy_model, error_line, run_cli
from .wheels import make_wheel

MODEL_PY = "import numpy\nimport {module}\n\n\nclass TritonPythonModel:\n    pass\n"


def _model(tmp_path: Path, module: str) -> Path:
    model = copy_model("plain_numpy", tmp_path)
    (model / "1" / "model.py").write_text(MODEL_PY.format(module=module))
    return model


def _recipes(tmp_path: Path, **files: str) -> Path:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for name, text in files.items():
        (recipes / name.replace("_tsv", ".tsv").replace("_toml", ".toml")).write_text(text)
    return recipes


def _pack(model: Path, wheels: Path, recipes: Path, *more: str,
          cache: bool = False) -> tuple[int, str]:
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--find-links", wheels,
                  "--recipes", recipes, *([] if cache else ["--no-cache"]), *more)
    return res.exit_code, res.stderr


# --- a module a package imports at run time, undeclared ------------------------------------

def _undeclared(tmp_path: Path, helper: bool = True) -> tuple[Path, Path, Path]:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "tpneedsmod", {"tpneedsmod/__init__.py": "import tp_runtime_helper\n"})
    if helper:
        make_wheel(wheels, "tp_helper_dist", {"tp_runtime_helper/__init__.py": "X = 1\n"})
    recipes = _recipes(tmp_path, import_table_tsv="tp_runtime_helper\ttp-helper-dist\n",
                       imports_toml='[imports]\ntpneedsmod = "tpneedsmod"\n')
    return _model(tmp_path, "tpneedsmod"), wheels, recipes


@pytest.mark.slow
def test_a_module_missing_at_import_is_added_to_the_lock_and_built_again(tmp_path: Path) -> None:
    model, wheels, recipes = _undeclared(tmp_path)
    code, err = _pack(model, wheels, recipes)
    assert code == 0, err
    assert ("note  'tpneedsmod' imports 'tp_runtime_helper' at run time ('tpneedsmod' failed: "
            "No module named 'tp_runtime_helper') without declaring it: adding "
            "'tp-helper-dist' to the lock (from the import table), needed by 'tpneedsmod', and "
            "building again") in err
    lock = read_lock(model / "tritonpack.lock")
    assert lock.inputs["learned"] == {"added": [{
        "distribution": "tp-helper-dist", "module": "tp_runtime_helper",
        "needed_by": "tpneedsmod"}]}
    assert "tp-helper-dist" in {p.name for p in lock.pypi}
    with tarfile.open(model / "tritonpack-env.tar.gz") as tar:  # pure: in the site zip
        site = tar.extractfile("lib/python3.10/site-packages/tritonpack-site.zip")
        assert site is not None
        assert "tp_runtime_helper/__init__.py" in zipfile.ZipFile(io.BytesIO(site.read())).namelist()
    check = run_cli("lock", "--check", model, "--recipes", recipes)  # what it learned: fresh
    assert check.exit_code == 0, check.stderr


@pytest.mark.slow
@pytest.mark.parametrize("cache", ["--no-cache", "fresh"])
def test_a_module_missing_at_import_that_nothing_provides_is_refused(
        tmp_path: Path, cache: str, session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same refusal whether the import check ran alone (``--no-cache``) or beside the
    compression of the native files into a fresh gzip store (``archive.ahead``), which stops
    with it: no thread left compressing, no half-written entry, no archive."""
    import threading

    from .freshcache import fresh_cache

    model, wheels, recipes = _undeclared(tmp_path, helper=False)
    store = fresh_cache(tmp_path / "cache", session_cache) / "gzip"
    monkeypatch.setenv("TRITONPACK_CACHE", str(store.parent))
    code, err = _pack(model, wheels, recipes, cache=cache == "fresh")
    assert (code, error_line(err)) == (ExitCode.RESOLVE, (
        "error: import 'tp_runtime_helper' (imported by tpneedsmod) needs distribution "
        "'tp-helper-dist', which the package index does not have"))
    assert not (model / "tritonpack-env.tar.gz").exists()  # never shipped
    assert not [t for t in threading.enumerate() if t.name == "gzip-ahead"]
    assert not list(store.rglob("*.tmp"))


# --- a chosen distribution that does not provide its import ----------------------------------

def _misprovided(tmp_path: Path, second: str) -> tuple[Path, Path, Path]:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "tp_first", {"tpother/__init__.py": ""})
    make_wheel(wheels, "tp_second", {f"{second}/__init__.py": ""})
    recipes = _recipes(tmp_path, import_table_tsv="tpmodx\ttp-first tp-second\n")
    return _model(tmp_path, "tpmodx"), wheels, recipes


@pytest.mark.slow
def test_a_distribution_that_does_not_provide_the_import_gives_way_to_the_next(
        tmp_path: Path) -> None:
    model, wheels, recipes = _misprovided(tmp_path, "tpmodx")
    code, err = _pack(model, wheels, recipes)
    assert code == 0, err
    assert ("note  import 'tpmodx' (plain_numpy/1/model.py:2): 'tp-first' was installed but "
            "provides no module 'tpmodx'; locking 'tp-second', which does (the import table), "
            "and building again") in err
    lock = read_lock(model / "tritonpack.lock")
    assert lock.inputs["learned"] == {"imports": {"tpmodx": "tp-second"}}
    assert "tp-first" not in {p.name for p in lock.pypi}
    scan = json.loads(run_cli("scan", model, "--json", "--recipes", recipes).stdout)
    assert {r["import"]: (r["distribution"], r["source"]) for r in scan["imports"]}[
        "tpmodx"] == ("tp-second", "checked")


@pytest.mark.slow
def test_when_no_provider_provides_the_import_the_refusal_names_them(tmp_path: Path) -> None:
    model, wheels, recipes = _misprovided(tmp_path, "tpother2")
    code, err = _pack(model, wheels, recipes)
    assert (code, error_line(err)) == (ExitCode.BUILD, (
        "error: import 'tpmodx' (plain_numpy/1/model.py:2) is provided by none of 'tp-first', "
        "'tp-second': each was installed and holds no module 'tpmodx'"))
    assert not (model / "tritonpack-env.tar.gz").exists()


# --- soft dependencies --------------------------------------------------------------------

def _scan(model: Path, *args: str | Path) -> dict[str, object]:
    res = run_cli("scan", model, "--json", *args)
    assert res.exit_code == 0, res.stderr
    data: dict[str, object] = json.loads(res.stdout)
    return data


def test_transformers_pipeline_adds_torch_with_a_note() -> None:
    data = _scan(MODELS / "soft_torch")
    rows = {r["import"]: (r["distribution"], r["source"]) for r in data["imports"]}  # type: ignore[union-attr]
    assert rows["torch"] == ("torch", "soft")
    assert "torch" in data["requirements"]  # type: ignore[operator]
    assert ("transformers.pipeline (soft_torch/1/model.py:5) needs 'torch', which transformers "
            "imports only when used and does not install: adding 'torch' (recipes/soft.toml; "
            "declare it in tritonpack.toml to choose its version)") in data["warnings"]  # type: ignore[operator]


@pytest.mark.parametrize("declares", [
    '[requirements]\npypi = ["torch==2.13.0"]\n',  # the user's own choice stands
    '[requirements]\npypi = ["tensorflow"]\n',  # another backend of transformers
])
def test_no_soft_dependency_when_the_model_chooses(tmp_path: Path, declares: str) -> None:
    model = shutil.copytree(MODELS / "soft_torch", tmp_path / "soft_torch")
    (model / "tritonpack.toml").write_text(declares)
    data = _scan(model)
    assert not any("soft.toml" in w for w in data["warnings"])  # type: ignore[union-attr]


def test_a_tokenizer_alone_needs_no_torch(tmp_path: Path) -> None:
    model = shutil.copytree(MODELS / "soft_torch", tmp_path / "soft_torch")
    code = model / "1" / "model.py"
    code.write_text(code.read_text().replace("from transformers import pipeline",
                                             "from transformers import AutoTokenizer"))
    assert "torch" not in _scan(model)["requirements"]  # type: ignore[operator]


@pytest.mark.slow
def test_a_soft_dependency_is_locked_and_installed(tmp_path: Path) -> None:
    """A library of the same shape as transformers, built here, with torch a tiny wheel (no
    test resolves PyPI's torch): the recipe adds it, the lock pins it from --find-links."""
    wheels = tmp_path / "wheels"
    torch = "2.13.0+tritonpacktest"
    make_wheel(wheels, "tpsoftlib", {"tpsoftlib/__init__.py": "def pipeline():\n    import torch\n"})
    make_wheel(wheels, "torch", {"torch/__init__.py": ""}, version=torch)
    recipes = _recipes(tmp_path, soft_toml=f'[tpsoftlib]\nneeds = "torch=={torch}"\n'
                                            'names = ["pipeline"]\n',
                       imports_toml='[imports]\ntpsoftlib = "tpsoftlib"\n')
    model = copy_model("plain_numpy", tmp_path)
    (model / "1" / "model.py").write_text("import numpy\nfrom tpsoftlib import pipeline\n\n\n"
                                          "class TritonPythonModel:\n    pass\n")
    code, err = _pack(model, wheels, recipes, "--torch", "none")
    assert code == 0, err
    assert "note  tpsoftlib.pipeline (plain_numpy/1/model.py:2) needs 'torch'" in err
    assert {p.name: p.version for p in read_lock(model / "tritonpack.lock").pypi}["torch"] == torch


def test_a_soft_dependency_announced_at_run_time_gets_the_exact_fix() -> None:
    log = ('E1126 02:20:04.839707 16559 backend_model.cc:692] "ERROR: Failed to create '
           "instance: ImportError: \\nAutoModelForSequenceClassification requires the PyTorch "
           "library but it was not found in your environment. Checkout the instructions on the"
           "\\ninstallation page: https://pytorch.org/get-started/locally/ and follow the ones "
           'that match your environment.\\n\\nAt:\\n  /tmp/r/soft/1/model.py(9): initialize\\n"')
    assert diagnose(log) == (
        "AutoModelForSequenceClassification needs the PyTorch library ('torch'), which the "
        "environment lacks: the library using it imports it only when that feature runs; add "
        'it in tritonpack.toml: [requirements] pypi = ["torch"] (its build follows --torch: the '
        "PyTorch index of the target's CUDA by default, --torch cpu for a CPU build)")
    assert diagnose("ImportError: \nT5Tokenizer requires the SentencePiece library but it was "
                    "not found in your environment.").endswith(
        '[requirements] pypi = ["sentencepiece"]')


# --- versions recorded in pickles -----------------------------------------------------------

def test_the_version_a_pickle_records_is_locked() -> None:
    data = _scan(MODELS / "sklearn_pickle_old")
    assert "scikit-learn==1.5.2" in data["requirements"]  # type: ignore[operator]
    assert ("sklearn_pickle_old/1/model.joblib was pickled with scikit-learn 1.5.2: locking "
            "that version") in data["warnings"]  # type: ignore[operator]


def test_a_declared_version_wins_over_the_pickled_one(tmp_path: Path) -> None:
    model = shutil.copytree(MODELS / "sklearn_pickle_old", tmp_path / "sklearn_pickle_old")
    (model / "requirements.txt").write_text("scikit-learn>=1.6\n")
    data = _scan(model)
    assert "scikit-learn>=1.6" in data["requirements"]  # type: ignore[operator]
    assert ("sklearn_pickle_old/1/model.joblib was pickled with scikit-learn 1.5.2, outside the "
            "declared scikit-learn>=1.6 (sklearn_pickle_old/requirements.txt): it may warn when "
            "loaded, or fail") in data["warnings"]  # type: ignore[operator]


@pytest.mark.slow
def test_a_pickled_version_without_a_wheel_for_the_target_is_said(tmp_path: Path) -> None:
    """scikit-learn 0.20.3 has no wheel for Python 3.10: the newest is locked, in one sentence,
    and the lock remembers it (a second lock --check is fresh)."""
    model = shutil.copytree(MODELS / "sklearn_pickle_old", tmp_path / "sklearn_pickle_old")
    joblib = model / "1" / "model.joblib"
    joblib.write_bytes(joblib.read_bytes().replace(b"\x8c\x051.5.2", b"\x8c\x060.20.3"))
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == 0, res.stderr
    assert ("note  sklearn_pickle_old/1/model.joblib was pickled with scikit-learn 0.20.3, which "
            "has no wheel for Python 3.10 on linux-64: locking a newer scikit-learn (it may warn "
            "when the pickle is loaded, or fail)") in res.stderr
    lock = read_lock(model / "tritonpack.lock")
    assert lock.inputs["learned"] == {"unavailable": ["scikit-learn==0.20.3"]}
    assert {p.name: p.version for p in lock.pypi}["scikit-learn"] != "0.20.3"
    assert run_cli("lock", "--check", model).exit_code == 0


@pytest.mark.slow
def test_a_pickled_version_that_installs_is_locked(tmp_path: Path) -> None:
    model = shutil.copytree(MODELS / "sklearn_pickle_old", tmp_path / "sklearn_pickle_old")
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == 0, res.stderr
    assert {p.name: p.version for p in read_lock(model / "tritonpack.lock").pypi}[
        "scikit-learn"] == "1.5.2"


# --- setup_requires of a source-only dependency ---------------------------------------------

def _sdist(dest: Path, name: str, files: dict[str, str]) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{name}-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, text in {"PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
                             **files}.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-1.0/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


SETUP_PY = ('from setuptools import setup\n\nRUNNER = ["pytest-runner"]\n\n'
            'setup(name="{name}", version="1.0", packages=["{name}"], setup_requires=RUNNER)\n')


@pytest.mark.parametrize(("files", "extra"), [
    ({"setup.py": SETUP_PY}, ("pytest-runner",)),
    ({"setup.py": "from setuptools import setup\nsetup()\n",
      "setup.cfg": "[options]\nsetup_requires =\n    pytest-runner>=5\n    wheel\n"},
     ("pytest-runner>=5", "wheel")),
    ({"setup.py": SETUP_PY, "pyproject.toml": '[build-system]\nrequires = ["flit_core"]\n'},
     ()),  # another backend never reads setup_requires
])
def test_setup_requires_is_read_statically(tmp_path: Path, files: dict[str, str],
                                           extra: tuple[str, ...]) -> None:
    sdist = _sdist(tmp_path, "tpsetupreq", {k: v.format(name="tpsetupreq") for k, v in
                                            files.items()})
    base = ("flit_core",) if "pyproject.toml" in files else LEGACY_BUILD_REQUIRES
    assert declared_build_requires(sdist, "tpsetupreq", "1.0") == (*base, *extra)


@pytest.mark.slow
def test_an_sdist_with_setup_requires_is_locked_with_it_pinned(tmp_path: Path) -> None:
    links = tmp_path / "links"
    _sdist(links, "tpsetupreq", {"setup.py": SETUP_PY.format(name="tpsetupreq"),
                                 "tpsetupreq/__init__.py": "X = 1\n"})
    model = _model(tmp_path, "tpsetupreq")
    (model / "requirements.txt").write_text(f"--find-links {links}\ntpsetupreq==1.0\n")
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == 0, res.stderr
    pin = next(p for p in read_lock(model / "tritonpack.lock").pypi if p.name == "tpsetupreq")
    names = {line.split("==")[0] for line in pin.build_requires}
    assert {"setuptools", "pytest-runner"} <= names
    assert all("--hash=sha256:" in line for line in pin.build_requires)


@pytest.mark.slow
@pytest.mark.server
def test_a_soft_dependency_announced_in_the_server_is_named_with_its_fix(tmp_path: Path) -> None:
    """A library built here raises transformers' message shape when its feature runs (no
    recipe knows it): the failed load names the distribution and the exact fix."""
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "tpsoftlib2", {"tpsoftlib2/__init__.py": (
        "def pipeline():\n    raise ImportError('\\nPipeline requires the PyTorch library but "
        "it was not found in your environment. Checkout the instructions on the\\n"
        "installation page: https://pytorch.org/get-started/locally/')\n")})
    model = copy_model("plain_numpy", tmp_path)
    (model / "tritonpack.toml").write_text('[imports]\ntpsoftlib2 = "tpsoftlib2"\n')
    code = model / "1" / "model.py"
    code.write_text(code.read_text().replace(
        "class TritonPythonModel:\n",
        "import tpsoftlib2\n\n\nclass TritonPythonModel:\n"
        "    def initialize(self, args):\n        tpsoftlib2.pipeline()\n\n"))
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--find-links", wheels, "--verify")
    assert res.exit_code == ExitCode.VERIFY_LOAD, res.stderr
    assert error_line(res.stderr).endswith(
        "Pipeline needs the PyTorch library ('torch'), which the environment lacks: the library "
        "using it imports it only when that feature runs; add it in tritonpack.toml: "
        '[requirements] pypi = ["torch"] (its build follows --torch: the PyTorch index of the '
        "target's CUDA by default, --torch cpu for a CPU build)")
