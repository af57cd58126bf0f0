"""Requirements declared where users keep them: requirements.txt, environment.yml, pyproject.toml."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from packer.core.errors import ExitCode, ModelError
from packer.lock.lockfile import read_lock
from packer.scan.reqfiles import parse_environment

from .conftest import MODELS, run_cli
from .wheels import make_sdist


def scan_json(model: Path, *args: str) -> dict[str, object]:
    res = run_cli("scan", model, "--json", "--triton", "24.10", *args)
    assert res.exit_code == 0, res.stderr
    data: dict[str, object] = json.loads(res.stdout)
    return data


def test_requirements_txt_with_includes_hashes_markers_and_extras() -> None:
    data = scan_json(MODELS / "reqs_txt")
    assert data["requirements"] == [
        "numpy<2", "orjson==3.10.7", 'requests[socks]>=2.31; python_version >= "3.8"',
        "scipy<2,>=1.10"]  # the optional orjson is installed because it is declared
    assert {d["requirement"]: d["source"] for d in data["declared"]} == {  # type: ignore[union-attr]
        "numpy<2": "reqs_txt/base-requirements.txt",
        "scipy<2,>=1.10": "reqs_txt/base-requirements.txt",
        "orjson==3.10.7": "reqs_txt/requirements.txt",
        'requests[socks]>=2.31; python_version >= "3.8"': "reqs_txt/requirements.txt"}
    assert data["declared_files"] == ["reqs_txt/requirements.txt", "reqs_txt/base-requirements.txt"]


def test_scan_table_names_the_file_of_each_requirement() -> None:
    res = run_cli("scan", MODELS / "reqs_txt", "--triton", "24.10")
    assert "orjson==3.10.7                                  reqs_txt/requirements.txt" in res.stdout


def test_environment_yml_conda_specs_and_pip_section() -> None:
    data = scan_json(MODELS / "env_yml")
    assert data["requirements"] == ["numpy<2", "numpy==1.26.*", "PyYAML==6.0.2", "scipy>=1.10"]
    rows = {r["import"]: r["source"] for r in data["imports"]}  # type: ignore[union-attr]
    assert rows["yaml"] == "declared" and rows["scipy"] == "declared"


def test_environment_yml_the_shapes_conda_and_people_write() -> None:
    """Items at the key's own indent (hand-written files) and one-line [lists] are read."""
    text = ("name: x\nchannels: [conda-forge]\ndependencies:\n- numpy=1.26.*  # pinned\n"
            "- pip:\n  - PyYAML==6.0.2\n- scipy\n")
    assert parse_environment(text, "e.yml") == {
        "name": "x", "channels": ["conda-forge"],
        "dependencies": ["numpy=1.26.*", {"pip": ["PyYAML==6.0.2"]}, "scipy"]}


@pytest.mark.parametrize(("text", "message"), [
    ("dependencies:\n  - *numpy\n", "e.yml:2: '*numpy': YAML anchors, aliases, tags"),
    ("dependencies:\n  - pip:\n    - !!python/object x\n", "e.yml:3: '!!python/object': YAML"),
    ("dependencies: {numpy: 1}\n", "e.yml:1: '{numpy:': YAML anchors"),
    ("dependencies: [numpy, [scipy]]\n", "e.yml:1: a list nested in a list"),
    ("dependencies: [numpy,\n", "e.yml:1: a [ list must close on its own line"),
    ("dependencies:\n  - - numpy\n", "e.yml:2: a list nested in a list"),
])
def test_environment_yml_refuses_yaml_conda_never_writes(text: str, message: str) -> None:
    with pytest.raises(ModelError) as info:
        parse_environment(text, "e.yml")
    assert info.value.message.startswith(message)


def test_environment_yml_python_must_be_the_stubs() -> None:
    res = run_cli("scan", MODELS / "env_yml", "--triton", "24.12", "-q")
    assert res.exit_code == ExitCode.RESOLVE
    assert res.stderr.startswith("error: python==3.10.* (env_yml/environment.yml) conflicts with "
                                 "Python 3.12, the Python of Triton 24.12's stub")


def test_pyproject_dependencies_of_a_model_dir_that_is_a_project(tmp_path: Path) -> None:
    model = shutil.copytree(MODELS / "plain_numpy", tmp_path / "plain_numpy")
    (model / "pyproject.toml").write_text(
        '[project]\nname = "m"\nversion = "1"\ndependencies = ["scipy>=1.11", "pillow"]\n')
    data = scan_json(model)
    assert data["declared"] == [{"requirement": "pillow", "source": "plain_numpy/pyproject.toml"},
                                {"requirement": "scipy>=1.11",
                                 "source": "plain_numpy/pyproject.toml"}]


@pytest.mark.slow
def test_index_lines_reach_the_resolver(tmp_path: Path) -> None:
    model = shutil.copytree(MODELS / "plain_numpy", tmp_path / "plain_numpy")
    (model / "wheels").mkdir()
    (model / "requirements.txt").write_text(
        "--index-url http://127.0.0.1:9/simple\n--find-links ./wheels\nnumpy\n")
    res = run_cli("lock", model, "--python-from", "auto")
    assert res.exit_code == ExitCode.RESOLVE
    assert "error: the package index http://127.0.0.1:9/simple is unreachable" in res.stderr


@pytest.mark.slow
def test_lock_records_where_each_requirement_came_from(tmp_path: Path) -> None:
    model = shutil.copytree(MODELS / "reqs_txt", tmp_path / "reqs_txt")
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto", "-q")
    assert res.exit_code == 0, res.stderr
    lock = read_lock(model / "tritonpack.lock")
    assert "orjson==3.10.7 (reqs_txt/requirements.txt)" in lock.inputs["declared_from"]
    assert {p.name: p.version for p in lock.pypi}["orjson"] == "3.10.7"
    assert run_cli("lock", "--check", model).exit_code == 0


def test_environment_channels_are_the_solves_unless_given(tmp_path: Path) -> None:
    from packer.context import prepare
    from packer.lock.stage import declared_channels, lock_inputs
    from packer.settings import Options

    model = shutil.copytree(MODELS / "env_yml", tmp_path / "env_yml")
    text = (model / "environment.yml").read_text().replace("  - conda-forge\n",
                                                           "  - pytorch\n  - defaults\n")
    (model / "environment.yml").write_text(text)
    ctx = prepare(model, Options(triton="24.10"))
    assert declared_channels(ctx.declared) == ("pytorch",)
    assert lock_inputs(ctx, ctx.options)["declared_channels"] == ["pytorch"]
    assert ("env_yml/environment.yml: channel 'defaults' left out (Anaconda's own repository, "
            "under its own terms): conda packages come from the other channels or conda-forge"
            ) in ctx.warnings


@pytest.mark.slow
def test_a_pure_python_sdist_in_find_links_is_built_and_locked(tmp_path: Path) -> None:

    links = tmp_path / "links"
    links.mkdir()
    name = "tritonpack_sdist_only_probe"
    make_sdist(links, name)
    model = shutil.copytree(MODELS / "plain_numpy", tmp_path / "plain_numpy")
    (model / "requirements.txt").write_text(f"--find-links {links}\n{name}\n")
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == 0, res.stderr
    sdist = links / f"{name}-1.0.tar.gz"
    assert (f"note  tritonpack-sdist-only-probe==1.0 has no wheel: built from source "
            f"({sdist.as_uri()})") in res.stderr
    pin = next(p for p in read_lock(model / "tritonpack.lock").pypi
               if p.name == "tritonpack-sdist-only-probe")
    assert pin.sdist == sdist.as_uri()
    assert pin.hashes == ("sha256:" + hashlib.sha256(sdist.read_bytes()).hexdigest(),)


@pytest.mark.slow
def test_environment_yml_only_model_locks(tmp_path: Path) -> None:
    model = shutil.copytree(MODELS / "env_yml", tmp_path / "env_yml")
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto", "-q")
    assert res.exit_code == 0, res.stderr
    lock = read_lock(model / "tritonpack.lock")
    versions = {p.name: p.version for p in lock.pypi}
    assert versions["pyyaml"] == "6.0.2" and versions["numpy"].startswith("1.26.")
    assert "scipy" in versions
    assert "PyYAML==6.0.2 (env_yml/environment.yml)" in lock.inputs["declared_from"]
