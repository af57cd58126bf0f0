"""The generated import table (recipes/import_table.tsv, tools/gen_import_table.py) and how an
import picks its distribution from it: declared > hand-kept recipes > the table > a guess;
among several providers, a declared one, then the attributes the code uses, else the most
downloaded with a note."""

from __future__ import annotations

import json
import random
import re
import shutil
import sys
import zipfile
from importlib.resources import files
from pathlib import Path

import pytest

from packer.resolve.recipebook import load
from packer.resolve.requirements import map_import
from packer.resolve.table import parse

from .conftest import MODELS, run_cli

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import gen_import_table as gen  # noqa: E402  (a script, not a package)

# the table as installed (the wheel in .ci/run, recipes/ in an editable install)
TABLE = Path(str(files("packer.recipes").joinpath("import_table.tsv")))


def _scan(model: Path, *args: str) -> dict[str, object]:
    res = run_cli("scan", model, "--json", *args)
    assert res.exit_code == 0, res.stderr
    data: dict[str, object] = json.loads(res.stdout)
    return data


def _rows(data: dict[str, object]) -> dict[str, tuple[str, str]]:
    rows = data["imports"]
    assert isinstance(rows, list)
    return {r["import"]: (r["distribution"], r["source"]) for r in rows}


# --- the committed table -----------------------------------------------------------------

def test_the_table_says_when_and_how_it_was_made() -> None:
    head = TABLE.read_text(encoding="utf-8").splitlines()[:8]
    assert "#     python tools/gen_import_table.py" in head
    made = next(line for line in head if line.startswith("# made: "))
    found = re.match(r"# made: (\d{4}-\d{2}-\d{2}), from the ([\d,]+) projects", made)
    assert found is not None and int(found.group(2).replace(",", "")) >= 5000
    table = load().table
    assert table.made == found.group(1)
    assert len(table.providers) > 5000


def test_the_known_cases() -> None:
    table = load().table
    assert table.providers["bson"][:2] == ("pymongo", "bson")  # pymongo is the most downloaded
    assert "loads" in table.attrs[("bson", "bson")]
    assert "encode" in table.attrs[("bson", "pymongo")]
    assert {"fastdeploy", "fastdeploy-python"} <= set(table.providers["fastdeploy"])
    assert "RuntimeOption" in table.attrs[("fastdeploy", "fastdeploy-python")]
    assert table.providers["yaml"][0] == "pyyaml"  # PyPI's normalized names
    assert table.providers["google.protobuf"] == ("protobuf",)  # a namespace's sub-package
    assert "tests" not in table.providers and "utils" not in table.providers
    # a package several projects share: the submodule imported decides
    assert table.choose("databricks", used={"sdk"}).distribution == "databricks-sdk"
    assert table.choose("databricks", used={"sql"}).distribution == "databricks-sql-connector"


@pytest.mark.parametrize(("module", "want"), [
    ("llama_cpp", ("llama_cpp", "llama-cpp-python", "recipe")),  # hand-kept: sdist-only project
    ("cv2", ("cv2", "opencv-python-headless", "recipe")),  # hand-kept: the serving choice
    ("bs4.element", ("bs4", "beautifulsoup4", "table")),
    ("google.protobuf.json_format", ("google.protobuf", "protobuf", "table")),
    ("yaml.loader", ("yaml", "pyyaml", "table")),
    ("tritonpack_no_such_module_xyz", ("tritonpack_no_such_module_xyz",
                                       "tritonpack_no_such_module_xyz", "guess")),
])
def test_map_import_with_the_table(module: str, want: tuple[str, str, str]) -> None:
    book = load()
    assert map_import(module, {}, book.imports, book.namespaces, book.table) == want


def test_hand_kept_recipes_are_only_special_cases() -> None:
    """A hand-kept row that the table already answers the same way is not kept by hand."""
    book = load()
    same = [k for k, v in book.imports.items()
            if book.table.providers.get(k, ())[:1] == (v,) and len(book.table.providers[k]) == 1]
    assert same == []


# --- choosing among several providers -------------------------------------------------------

def test_an_ambiguous_module_decided_by_the_attribute_the_code_uses() -> None:
    data = _scan(MODELS / "ambiguous_bson")
    assert _rows(data)["bson"] == ("bson", "table")
    assert data["warnings"] == [
        "import 'bson' (ambiguous_bson/1/model.py:3): the code uses bson.dumps, which only "
        "'bson' defines ('pymongo' also provides a module 'bson'): locking 'bson'"]


def test_pymongos_attributes_pick_pymongo(tmp_path: Path) -> None:
    copy = shutil.copytree(MODELS / "ambiguous_bson", tmp_path / "ambiguous_bson")
    code = copy / "1" / "model.py"
    code.write_text(code.read_text().replace("bson.loads(raw)", "bson.decode(raw)")
                    .replace("bson.dumps(doc)", "bson.encode(doc)"))
    data = _scan(copy)
    assert _rows(data)["bson"] == ("pymongo", "table")


def test_a_declared_provider_wins(tmp_path: Path) -> None:
    copy = shutil.copytree(MODELS / "ambiguous_bson", tmp_path / "ambiguous_bson")
    (copy / "requirements.txt").write_text("pymongo>=4\n")
    data = _scan(copy)
    assert _rows(data)["bson"] == ("pymongo", "declared")
    assert not any("bson" in str(w) for w in data["warnings"])  # type: ignore[union-attr]


def test_no_attribute_to_decide_by_takes_the_most_downloaded_with_a_note(tmp_path: Path) -> None:
    copy = shutil.copytree(MODELS / "ambiguous_bson", tmp_path / "ambiguous_bson")
    code = copy / "1" / "model.py"
    code.write_text(code.read_text().replace("bson.loads(raw)", "raw")
                    .replace("bson.dumps(doc)", "doc"))
    data = _scan(copy)
    assert _rows(data)["bson"] == ("pymongo", "table")
    assert data["warnings"] == [
        "import 'bson' (ambiguous_bson/1/model.py:3): 'pymongo' and 'bson' all provide a module "
        "'bson': locking 'pymongo', the most downloaded (declare another in tritonpack.toml: "
        '[imports] bson = "NAME")']


def test_imports_whose_own_names_are_the_wrong_distribution() -> None:
    data = _scan(MODELS / "wrong_guess")
    rows = _rows(data)
    assert rows["fastdeploy"] == ("fastdeploy-python", "table")
    assert rows["llama_cpp"] == ("llama-cpp-python", "recipe")
    assert data["warnings"][0].startswith(  # type: ignore[index]
        "import 'fastdeploy' (wrong_guess/1/model.py:4): the code uses fastdeploy.Runtime, "
        "which only 'fastdeploy-python' defines")


def test_a_users_table_adds_rows(tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "import_table.tsv").write_text("# made: 2026-01-01, from the 1 projects\n"
                                              "tritonpack_no_such_distribution_xyz\tsome-dist\n")
    model = MODELS / "unknown_import"
    data = _scan(model, "--recipes", str(recipes))
    assert _rows(data)["tritonpack_no_such_distribution_xyz"] == ("some-dist", "table")
    assert data["warnings"] == []


# --- the generator's readers, on real archives made here -----------------------------------

class _LocalFile:
    """Answers the generator's range requests from a file on disk."""

    def __init__(self, path: Path) -> None:
        self.data = path.read_bytes()
        self.count = 0

    def get(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        self.count += 1
        first, _, last = (headers or {})["Range"].removeprefix("bytes=").partition("-")
        return 206, self.data[int(first): int(last) + 1]


def _wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_a_wheels_file_list_is_read_from_its_end(tmp_path: Path) -> None:
    big = random.Random(7).randbytes(300_000)  # stored after the members read: never fetched
    wheel = _wheel(tmp_path / "demo-1.0-py3-none-any.whl", {
        "demolib/__init__.py": b"from .core import loads\n\ndef dumps(x):\n    return x\n",
        "demolib/core.py": b"", "demolib/blob.bin": big,
        "google/cloud/demo/__init__.py": b"", "_demo_c.cpython-312-x86_64-linux-gnu.so": b"",
        "tests/test_x.py": b"", "demo-1.0.data/purelib/extra_mod.py": b"",
        "demo-1.0.data/scripts/tool": b"", "demo-1.0.dist-info/RECORD": b""})
    fetch = _LocalFile(wheel)
    entries = gen.wheel_entries(fetch, "https://x/demo.whl", wheel.stat().st_size)  # type: ignore[arg-type]
    modules = gen.modules_of([e.name for e in entries])
    assert modules == {"demolib": "demolib/__init__.py", "google.cloud.demo":
                       "google/cloud/demo/__init__.py", "_demo_c": "", "extra_mod": "extra_mod.py"}
    init = next(e for e in entries if e.name == "demolib/__init__.py")
    source = gen.read_member(fetch, "https://x/demo.whl", init).decode()  # type: ignore[arg-type]
    assert gen.public_names(source) == {"loads", "dumps"}
    assert fetch.count == 2 and len(fetch.data) > 300_000


def test_an_sdist_names_its_packages(tmp_path: Path) -> None:
    names = ["PKG-INFO", "setup.py", "src/mylib/__init__.py", "src/mylib/x.py", "tests/t.py",
             "docs/conf.py"]
    assert gen.sdist_modules(names, [], "mylib") == {"mylib": "src/mylib/__init__.py"}
    assert gen.sdist_modules(["mod.py", "setup.py"], [], "mod") == {"mod": "mod.py"}
    assert gen.sdist_modules(["a/__init__.py"], ["b"], "x") == {"b": ""}  # top_level.txt says


def test_a_shared_packages_submodules_mark_their_provider() -> None:
    """`databricks` is a package of several projects: `import databricks.sdk` reads `sdk`,
    which only databricks-sdk ships."""
    paths = ["databricks/__init__.py", "databricks/sdk/__init__.py", "databricks/sdk/x.py",
             "databricks/sql.py", "databricks/_private/a.py", "other.py"]
    assert gen.children_of(paths, {"databricks": "databricks/__init__.py", "other": "other.py"}
                           ) == {"databricks": ["sdk", "sql"]}


def test_the_table_text_round_trips() -> None:
    text = gen.render([gen.Project("p1", modules={"m": "m/__init__.py"}),
                       gen.Project("p2", modules={"m": "m.py", "n": ""}, kind="wheel")],
                      {"m": {"p2": ["only_p2"]}}, "2026-12-04", 2)
    table = parse(text)
    assert table.made == "2026-12-04"
    assert table.providers == {"m": ("p1", "p2"), "n": ("p2",)}
    assert table.choose("m", used={"only_p2"}).distribution == "p2"
    assert table.choose("m").distribution == "p1"


# --- a sample of rows, against the real wheels on PyPI ---------------------------------------

@pytest.mark.slow
def test_a_sample_of_rows_matches_real_wheels(tmp_path: Path) -> None:
    """Each sampled module is provided by its first distribution's newest wheel, read again
    from PyPI now (a few range requests each)."""
    table = load().table
    keys = sorted(table.providers)
    sample = ["bson", "yaml", "google.protobuf", *random.Random(len(keys)).sample(keys, 9)]
    fetch = gen.Fetcher(rate=5)
    wrong = []
    for module in sample:
        dist = table.providers[module][0]
        project = gen.read_project(fetch, dist, tmp_path)
        if project.kind == "wheel" and module not in project.modules:
            wrong.append((module, dist, sorted(project.modules)[:10]))
    assert wrong == []


def test_a_lock_that_spelt_a_distribution_otherwise_is_still_fresh() -> None:
    """PyYAML and pyyaml are one distribution (PEP 503): a lock made when the recipes spelt
    it PyYAML is not stale because the table spells it pyyaml."""
    from packer.lock.stage import _one_spelling

    old = {"imports": ["yaml=PyYAML", "numpy=numpy"], "requirements": ["PyYAML", "numpy<2"]}
    new = {"imports": ["numpy=numpy", "yaml=pyyaml"], "requirements": ["numpy<2", "pyyaml"]}
    assert _one_spelling(old) == _one_spelling(new)
    assert _one_spelling(old) != _one_spelling({**new, "requirements": ["numpy<2", "pyyaml>5"]})
