"""Messages that used to mislead: each says what is wrong, in words a user can act on."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from packer.core.errors import ExitCode, ResolveError
from packer.lock.conda import check_specs
from packer.lock.pypi import NoSolutionError, _first_cause, required_names

from .conftest import FIXTURES, error_line, run_cli

UV_INCOMPATIBLE = """error: No solution found when resolving dependencies
  cause: you require numpy<1.0 and numpy>1.5, which are incompatible
"""
UV_WRAPPED = """  × No solution found when resolving dependencies:
  ╰─▶ Because there is no version of numpy==99.0 and you require numpy==99.0, we can conclude
      that your requirements are unsatisfiable.
"""


@pytest.mark.parametrize(("output", "cause", "named"), [
    (UV_INCOMPATIBLE, "you require numpy<1.0 and numpy>1.5, which are incompatible",
     "numpy<1.0 and numpy>1.5"),
    (UV_WRAPPED, "Because there is no version of numpy==99.0 and you require numpy==99.0, we "
                 "can conclude that your requirements are unsatisfiable", "numpy==99.0"),
])
def test_no_solution_names_the_requirement_and_uvs_whole_reason(output: str, cause: str,
                                                                named: str) -> None:
    assert (_first_cause(output), required_names(_first_cause(output))) == (cause, named)
    err = NoSolutionError((), cause=_first_cause(output), python="3.10")
    assert err.message == f"the PyPI resolver found no solution for {named} under Python 3.10: " \
                          f"{cause}"


def test_no_solution_from_a_one_line_uv_error_says_it() -> None:
    """uv's one-line error (a direct URL's bad wheel name) is the reason, not 'run with
    --verbose' (which then repeated the same sentence)."""
    output = "error: The wheel filename `x.whl` is invalid: Must have a version\n"
    err = NoSolutionError((), cause=_first_cause(output), python="3.10")
    assert err.message == ("the PyPI resolver found no solution for Python 3.10: The wheel "
                           "filename `x.whl` is invalid: Must have a version")


def test_no_solution_without_a_reason_says_where_to_look() -> None:
    assert NoSolutionError((), python="3.10").message == (
        "the PyPI resolver found no solution for Python 3.10 (run with --verbose for the "
        "resolver's output)")


@pytest.mark.parametrize(("spec", "why"), [
    ("numpy>>1", "unable to parse version spec: >>1"),
    ("foo[bar", "invalid package name 'foo[bar': 'foo[bar' is not a valid package name. Package "
                "names can only contain 0-9, a-z, A-Z, -, _, or ."),
])
def test_a_bad_conda_spec_is_the_specs_fault(spec: str, why: str) -> None:
    with pytest.raises(ResolveError) as caught:
        check_specs(["libgomp", spec])
    assert caught.value.message == f"conda requirement {spec!r} is not a valid conda spec: {why}"


def test_an_underscore_module_beside_model_py_is_local(tmp_path: Path) -> None:
    model = tmp_path / "m"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text('name: "m"\nbackend: "python"\n')
    (model / "1" / "model.py").write_text("import _helpers\nclass TritonPythonModel:\n    pass\n")
    (model / "1" / "_helpers.py").write_text("X = 1\n")
    res = run_cli("scan", model, "--json")
    assert res.exit_code == 0, res.stderr
    imports = {i["import"]: i["kind"] for i in json.loads(res.stdout)["imports"]}
    assert imports["_helpers"] == "local"


def stamped(path: Path, stamp: dict[str, object] | None) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        entries = [("tritonpack.json", json.dumps(stamp).encode())] if stamp else []
        entries += [(n, b"abc") for n in ("bin/python3", "bin/activate", "lib/libpython3.10.so.1.0",
                                          "lib/python3.10/site-packages/numpy/__init__.py",
                                          "lib/python3.10/site-packages/numpy-1.26.4.dist-info/"
                                          "METADATA")]
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buf.getvalue()))
    return path


def test_inspect_uses_the_target_recorded_in_the_archive(tmp_path: Path) -> None:
    env = stamped(tmp_path / "env.tar.gz", {"lock": "x", "format": 1, "target": {
        "release": "24.10", "python": "3.10", "platform": "linux-64"}})
    res = run_cli("inspect", env)
    assert res.exit_code == 0, res.stdout
    assert res.stdout.splitlines()[0] == (
        f"{env}: ok for Triton 24.10 (Python 3.10, GLIBC 2.35; the target recorded in the "
        "environment)")


def test_inspect_says_which_target_it_assumed(tmp_path: Path) -> None:
    env = stamped(tmp_path / "env.tar.gz", None)
    res = run_cli("inspect", env, "--json")
    out = json.loads(res.stdout)
    newest = out["target"]["release"]
    assert out["target_source"] == (
        f"no target recorded: assumed the newest release, {newest} (--triton)")


def test_config_json_says_null_for_unset() -> None:
    res = run_cli("config", FIXTURES / "models" / "plain_numpy", "--json")
    settings = json.loads(res.stdout)["settings"]
    assert settings["python-from"] == {"value": None, "source": "default"}
    text = run_cli("config", FIXTURES / "models" / "plain_numpy").stdout
    assert next(line for line in text.splitlines() if line.startswith("python-from")).split() == [
        "python-from", "-", "default"]


def test_progress_counts_in_words() -> None:
    res = run_cli("scan", FIXTURES / "models" / "plain_numpy", "--triton", "24.10")
    assert res.exit_code == 0
    assert "scan  1 file, 1 requirement" in res.stderr


def test_an_unquoted_release_says_quote_it(tmp_path: Path) -> None:
    res = run_cli("scan", FIXTURES / "bad" / "toml_triton_unquoted")
    assert res.exit_code == ExitCode.MODEL
    assert error_line(res.stderr).endswith('quote it (triton = "24.10")')
