"""Import -> distribution mapping depends on the model, its declared files and the recipes only:
never on what is installed beside tritonpack."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from packer.resolve.recipebook import load
from packer.resolve.requirements import map_import

from .conftest import MODELS, run_cli


def test_namespace_packages_map_by_longest_dotted_prefix() -> None:
    data = json.loads(run_cli("scan", MODELS / "namespaces", "--json").stdout)
    rows = {r["import"]: (r["distribution"], r["source"]) for r in data["imports"]}
    assert rows["google.protobuf"] == ("protobuf", "table")
    assert rows["google.cloud.pubsub_v1"] == ("google-cloud-pubsub", "table")  # from google.cloud import …
    assert rows["azure.storage.blob"] == ("azure-storage-blob", "table")
    assert data["warnings"] == []


@pytest.mark.parametrize(("module", "want"), [
    ("google.cloud.pubsub", ("google.cloud.pubsub", "google-cloud-pubsub", "table")),
    ("google.cloud.storage.blob", ("google.cloud.storage", "google-cloud-storage", "table")),
    ("opentelemetry.sdk.trace", ("opentelemetry.sdk", "opentelemetry-sdk", "recipe")),
    ("opentelemetry.trace", ("opentelemetry", "opentelemetry-api", "recipe")),
    ("azure.keyvault.secrets", ("azure.keyvault.secrets", "azure-keyvault-secrets", "table")),
    # the table knows the real name; the namespace guess would be google-cloud-tasks-v2
    ("google.cloud.tasks_v2", ("google.cloud.tasks_v2", "google-cloud-tasks", "table")),
    ("azure.mgmt.compute.models", ("azure.mgmt.compute", "azure-mgmt-compute", "table")),
    ("jaxlib.xla_client", ("jaxlib", "jaxlib", "table")),
    ("pytest", ("pytest", "pytest", "table")),  # installed here; from the table, not from that
])
def test_map_import(module: str, want: tuple[str, str, str]) -> None:
    book = load()
    assert map_import(module, {}, book.imports, book.namespaces, book.table) == want


@pytest.mark.parametrize(("module", "want"), [
    ("google.cloud.tasks_v2", ("google.cloud.tasks_v2", "google-cloud-tasks-v2", "guess")),
    ("azure.mgmt.compute.models", ("azure.mgmt.compute", "azure-mgmt-compute", "guess")),
])
def test_namespace_guess_without_the_table(module: str, want: tuple[str, str, str]) -> None:
    book = load()
    assert map_import(module, {}, book.imports, book.namespaces) == want


def test_a_guess_names_the_distribution_and_how_to_declare() -> None:
    res = run_cli("scan", MODELS / "unknown_import")
    assert ("note  import 'tritonpack_no_such_distribution_xyz' (unknown_import/1/model.py:2): no "
            "recipe or declaration names its distribution; guessed "
            "'tritonpack_no_such_distribution_xyz' by its name (not checked against the index "
            "until `tritonpack lock`; declare it in tritonpack.toml: [imports] "
            'tritonpack_no_such_distribution_xyz = "NAME")') in res.stderr


def _venv(path: Path, *extra: str) -> Path:
    """A venv with tritonpack (and ``extra`` distributions) installed by uv."""
    root = Path(__file__).resolve().parent.parent
    uv = [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "venv", "-q", path], check=True)
    python = path / "bin" / "python"
    wheel = os.environ.get("TRITONPACK_TEST_WHEEL")  # .ci/run tests the wheel, with no source tree
    spec = [f"tritonpack @ {Path(wheel).as_uri()}"] if wheel else ["-e", str(root)]
    subprocess.run([*uv, "pip", "install", "-q", "--python", python, *spec, *extra], check=True)
    return python


@pytest.mark.slow
def test_lock_is_byte_identical_from_a_bare_venv_and_a_crowded_one(tmp_path: Path) -> None:
    bare = _venv(tmp_path / "bare")
    crowded = _venv(tmp_path / "crowded", "google-api-core", "azure-core", "pytest")
    locks = []
    for python in (bare, crowded):
        model = shutil.copytree(MODELS / "namespaces", tmp_path / python.parent.parent.name
                                / "namespaces")
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        res = subprocess.run([python, "-m", "packer", "lock", model, "--triton", "24.10",
                              "--python-from", "auto", "-q"], capture_output=True, text=True, env=env)
        assert res.returncode == 0, res.stderr
        locks.append((model / "tritonpack.lock").read_bytes())
    assert locks[0] == locks[1]
    assert b'"google.cloud.pubsub_v1=google-cloud-pubsub"' in locks[0]


def _extras_model(tmp_path: Path, declared: str | None) -> Path:
    model = shutil.copytree(MODELS / "plain_numpy", tmp_path / "client")
    (model / "1" / "model.py").write_text(
        "import numpy\nimport tritonclient.http as httpclient\n"
        "from tritonclient.grpc import InferenceServerClient\n\n\n"
        "class TritonPythonModel:\n    pass\n")
    if declared is not None:
        (model / "tritonpack.toml").write_text(f'[requirements]\npypi = ["{declared}"]\n')
    return model


def test_an_imported_subpackage_brings_the_extras_it_needs(tmp_path: Path) -> None:
    data = json.loads(run_cli("scan", _extras_model(tmp_path, None), "--json").stdout)
    assert data["requirements"] == ["numpy", "tritonclient[grpc,http]"]
    rows = {r["import"]: r for r in data["imports"]}
    assert (rows["tritonclient.http"]["distribution"], rows["tritonclient.http"]["extras"]) == (
        "tritonclient", ["http"])


def test_declared_extras_are_kept_and_completed(tmp_path: Path) -> None:
    data = json.loads(run_cli("scan", _extras_model(tmp_path, "tritonclient[grpc]>=2.40"),
                              "--json").stdout)
    assert data["requirements"] == ["numpy", "tritonclient[grpc]>=2.40", "tritonclient[http]"]
