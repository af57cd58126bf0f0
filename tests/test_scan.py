"""The AST scanner: what it finds, how it classifies, and how it fails. Never runs user code."""

from __future__ import annotations

from pathlib import Path

import pytest

from packer.core.errors import ScanError
from packer.resolve.recipebook import load
from packer.scan.imports import ImportReport, Kind, scan

from .conftest import MODELS, SRC

STDLIB = load().stdlib


def scan_model(model: Path, python: str = "3.12", src: tuple[Path, ...] = ()) -> ImportReport:
    return scan(model, model / "1", model / "1" / "model.py", python=python,
                stdlib=STDLIB[python], src=src)


def kinds(report: ImportReport) -> dict[str, set[Kind]]:
    out: dict[str, set[Kind]] = {}
    for use in report.uses:
        out.setdefault(use.module, set()).add(use.kind)
    return out


MODEL_CLASS = "\n\nclass TritonPythonModel:\n    pass\n"  # appended: line numbers stay


def write_model(tmp_path: Path, source: str, files: dict[str, str] | None = None) -> Path:
    model = tmp_path / "m"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.py").write_text(source + MODEL_CLASS)
    for name, text in (files or {}).items():
        path = model / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return model


def test_vision_model_classifies_every_import() -> None:
    report = scan_model(MODELS / "vision", "3.10")
    found = kinds(report)
    assert found["triton_python_backend_utils"] == {Kind.BACKEND}
    assert found["os"] == found["sys"] == {Kind.STDLIB}
    third = {u.module for u in report.of_kind(Kind.THIRD_PARTY)}
    assert third == {"cv2", "numpy", "yaml", "PIL", "sklearn.linear_model", "skimage"}
    lazy = [u for u in report.uses if u.module == "skimage"]
    assert lazy[0].lazy and not lazy[0].optional
    assert lazy[0].where == "vision/1/model.py:18"


def test_optional_and_type_checking_imports() -> None:
    report = scan_model(MODELS / "optional")
    by_module = {u.module: u for u in report.uses}
    assert by_module["ujson"].optional
    assert by_module["orjson"].optional
    # the fallback in the except clause is what runs when ujson is missing: required
    assert not by_module["json"].optional and by_module["json"].kind is Kind.STDLIB
    assert not by_module["numpy"].optional
    assert "pandas" not in by_module  # under `if TYPE_CHECKING:`: ignored


def test_dynamic_literal_imports() -> None:
    report = scan_model(MODELS / "dynamic")
    dynamic = {u.module for u in report.uses if u.dynamic}
    assert dynamic == {"yaml", "tqdm", "google.protobuf.json_format"}
    assert "not_a_literal" not in {u.module for u in report.uses}


def test_src_root_modules_are_followed_and_marked_for_bundling() -> None:
    report = scan_model(MODELS / "with_src", src=(SRC,))
    names = {m.name: m for m in report.local}
    assert set(names) == {"helpers", "featurize", "featurize.scale", "featurize.constants"}
    assert names["helpers"].in_model_dir
    assert not names["featurize"].in_model_dir
    assert {m.name for m in report.bundled()} == {"featurize", "featurize.scale",
                                                  "featurize.constants"}
    # yaml is imported only inside the user package: found by following it
    yaml = [u for u in report.uses if u.module == "yaml"]
    assert yaml and yaml[0].file.endswith("featurize/scale.py")


def test_without_src_the_user_package_looks_third_party() -> None:
    report = scan_model(MODELS / "with_src")
    assert {u.module for u in report.of_kind(Kind.THIRD_PARTY)} == {"numpy", "featurize"}


def test_stdlib_is_the_target_pythons(tmp_path: Path) -> None:
    model = write_model(tmp_path, "import distutils\nimport tomllib\n")
    old = kinds(scan_model(model, "3.10"))
    new = kinds(scan_model(model, "3.12"))
    assert old["distutils"] == {Kind.STDLIB} and old["tomllib"] == {Kind.THIRD_PARTY}
    assert new["distutils"] == {Kind.THIRD_PARTY} and new["tomllib"] == {Kind.STDLIB}


def test_relative_star_and_submodule_imports(tmp_path: Path) -> None:
    model = write_model(
        tmp_path,
        "from pkg import sub\nfrom pkg2 import *\nfrom . import sibling\n",
        {
            "1/pkg/__init__.py": "",
            "1/pkg/sub.py": "import requests\n",
            "1/pkg2/__init__.py": "__all__ = ['inner']\n",
            "1/pkg2/inner.py": "from ..pkg import sub\nimport attrs\n",
            "1/sibling.py": "import rich\n",
        },
    )
    report = scan_model(model)
    assert {m.name for m in report.local} == {"pkg", "pkg.sub", "pkg2", "pkg2.inner", "sibling"}
    assert {u.module for u in report.of_kind(Kind.THIRD_PARTY)} == {"requests", "attrs", "rich"}


def test_model_dir_level_modules_are_local(tmp_path: Path) -> None:
    model = write_model(tmp_path, "import common\n", {"common.py": "import numpy\n"})
    report = scan_model(model)
    assert [m.name for m in report.local] == ["common"]
    assert report.local[0].in_model_dir


def test_syntax_error_names_file_and_line() -> None:
    with pytest.raises(ScanError) as err:
        scan_model(MODELS / "syntax_error")
    assert err.value.message == "syntax_error/1/model.py:5: syntax error: expected ':'"


def test_syntax_error_in_a_local_module(tmp_path: Path) -> None:
    model = write_model(tmp_path, "import helper\n", {"1/helper.py": "def f(:\n"})
    with pytest.raises(ScanError, match=r"^m/1/helper.py:1: syntax error"):
        scan_model(model)


def test_non_utf8_source(tmp_path: Path) -> None:
    model = write_model(tmp_path, "")
    (model / "1" / "model.py").write_bytes(b"x = '\xff\xfe'\n")
    with pytest.raises(ScanError, match="not valid UTF-8 source"):
        scan_model(model)


def test_declared_encoding_is_honoured(tmp_path: Path) -> None:
    model = write_model(tmp_path, "")
    (model / "1" / "model.py").write_bytes(b"# -*- coding: latin-1 -*-\nimport numpy\nx = '\xe9'\n"
                                          + MODEL_CLASS.encode())
    assert [u.module for u in scan_model(model).uses] == ["numpy"]


@pytest.mark.parametrize("source", [
    "class TritonPythonModel:\n    pass\n",
    "from impl import TritonPythonModel\n",
    "from impl import Model as TritonPythonModel\n",
    "from impl import *\n",
    "import impl\nTritonPythonModel = impl.Model\n",
    "try:\n    from fast import TritonPythonModel\nexcept ImportError:\n"
    "    from slow import TritonPythonModel\n",
])
def test_model_py_binds_the_class_triton_loads(tmp_path: Path, source: str) -> None:
    model = tmp_path / "m"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.py").write_text(source)
    scan_model(model)  # no error


@pytest.mark.parametrize("source", [
    "import numpy\n",
    "class Model:\n    pass\n",
    "def make():\n    class TritonPythonModel:\n        pass\n",  # not at module level
])
def test_model_py_without_the_class_is_refused(tmp_path: Path, source: str) -> None:
    model = tmp_path / "m"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.py").write_text(source)
    with pytest.raises(ScanError, match=r"^m/1/model.py: defines no TritonPythonModel class"):
        scan_model(model)


def test_a_helper_module_needs_no_model_class(tmp_path: Path) -> None:
    model = write_model(tmp_path, "import helper\n", {"1/helper.py": "X = 1\n"})
    assert "helper" in {u.module for u in scan_model(model).uses}


@pytest.mark.parametrize(("python", "ok"), [("3.10", False), ("3.11", True), ("3.12", True)])
def test_source_must_parse_under_the_target_python(tmp_path: Path, python: str, ok: bool) -> None:
    model = write_model(tmp_path, "try:\n    pass\nexcept* ValueError:\n    pass\n")
    if ok:
        scan_model(model, python)
    else:
        with pytest.raises(ScanError, match=r"syntax error under Python 3.10, the target's: "
                                            r"Exception groups are only supported in Python 3.11"):
            scan_model(model, python)


def test_scanning_never_runs_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    model = write_model(
        tmp_path, f"open({str(marker)!r}, 'w').write('x')\nimport helper\n",
        {"1/helper.py": f"open({str(marker)!r}, 'w').write('x')\n"},
    )
    scan_model(model)
    assert not marker.exists()


# --- property test: generated sources -----------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

idents = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: s not in {"if", "in", "is", "as", "or", "and", "not", "def", "del", "for", "try",
                        "class", "from", "with", "else", "elif", "pass", "while", "lambda",
                        "import", "return", "yield", "raise", "async", "await", "global",
                        "assert", "break", "except", "finally", "continue", "nonlocal"})
FORMS = [
    "import {m}", "import {m}.sub as alias", "from {m} import thing", "from {m}.x import *",
    "def f():\n    import {m}", "try:\n    import {m}\nexcept ImportError:\n    pass",
    "class C:\n    def m(self):\n        from {m} import y",
    "x = __import__('{m}')", "importlib.import_module('{m}')",
    "with open('f') as fh:\n    import {m}", "if True:\n    import {m}\nelse:\n    pass",
]
FILLER = ["x = 1", "def g(a, *b, **c):\n    return a", "y = [i for i in range(3)]",
          "async def h():\n    await z", "@decorator\ndef k():\n    pass", "# comment", "pass"]


@given(st.lists(st.tuples(idents, st.sampled_from(FORMS)), min_size=1, max_size=12),
       st.lists(st.sampled_from(FILLER), max_size=6))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_scanner_finds_every_planted_import(tmp_path: Path, planted: list[tuple[str, str]],
                                            filler: list[str]) -> None:
    blocks = [form.format(m=f"pk_{name}") for name, form in planted] + filler
    import random as _random

    _random.Random(len(blocks)).shuffle(blocks)
    model = tmp_path / "fuzz"
    (model / "1").mkdir(parents=True, exist_ok=True)
    (model / "1" / "model.py").write_text("\n".join(blocks) + "\n" + MODEL_CLASS)
    report = scan_model(model)
    found = {u.top for u in report.uses}
    assert {f"pk_{name}" for name, _ in planted} <= found


def test_what_the_import_check_imports_includes_from_import_submodules(tmp_path: Path) -> None:
    """`from PIL import Image` loads PIL.Image at start: the check imports it too (for what
    it loads; a name that is not a submodule just fails there, ignored)."""
    from packer.scan.imports import ImportUse

    uses = (ImportUse("PIL", Kind.THIRD_PARTY, "m/1/model.py", 1, names=("Image",)),
            ImportUse("numpy", Kind.THIRD_PARTY, "m/1/model.py", 2),
            ImportUse("cupy", Kind.THIRD_PARTY, "m/1/model.py", 3, optional=True),
            ImportUse("json", Kind.STDLIB, "m/1/model.py", 4),
            ImportUse("os", Kind.STDLIB, "m/1/model.py", 5, names=("path", "*")))
    got = ImportReport(tmp_path, "3.10", uses, ()).to_import()
    assert got == {"imports": ("PIL", "cupy", "numpy"), "modules": ("PIL", "numpy"),
                   "also": ("PIL.Image", "json", "os", "os.path")}
