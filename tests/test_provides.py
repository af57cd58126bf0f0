"""Every scanned import is provided by the built environment: checked from RECORD files."""

from __future__ import annotations

from pathlib import Path

import pytest

from packer.build.dists import installed
from packer.build.provides import check, provided
from packer.core.errors import BuildError, ExitCode
from packer.resolve.requirements import Resolution
from packer.scan.imports import Kind

from .conftest import error_line, run_cli


def dist(site: Path, name: str, *files: str, top_level: str | None = None) -> None:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "RECORD").write_text("".join(f"{f},sha256=x,1\n" for f in files)
                                 + f"{info.name}/RECORD,,\n")
    if top_level is not None:
        (info / "top_level.txt").write_text(top_level)


def row(key: str, distribution: str, optional: bool = False, source: str = "recipe") -> Resolution:
    return Resolution(key, Kind.THIRD_PARTY, distribution, source, optional, ("m/1/model.py:3",))


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site-packages"
    dist(site, "protobuf", "google/protobuf/__init__.py", "google/_upb/_message.abi3.so")
    dist(site, "PyYAML", "yaml/__init__.py", "_yaml/__init__.py")
    dist(site, "six", "six.py", "../../../bin/six-tool")
    dist(site, "cffi", "_cffi_backend.cpython-310-x86_64-linux-gnu.so", "cffi/__init__.py")
    return site


def test_record_says_what_each_distribution_provides(site: Path) -> None:
    mods = provided(site)
    assert mods["google.protobuf"] == {"protobuf"} and mods["google"] == {"protobuf"}
    assert mods["six"] == {"six"} and mods["_cffi_backend"] == {"cffi"}
    assert "bin" not in mods and ".." not in mods


def test_provided_imports_pass(site: Path) -> None:
    check(site, [row("google.protobuf", "protobuf"), row("yaml", "PyYAML"), row("six", "six"),
                 row("_cffi_backend", "cffi")], ["protobuf", "pyyaml", "six", "cffi"])


def test_a_namespace_import_that_nothing_provides(site: Path) -> None:
    with pytest.raises(BuildError) as err:
        check(site, [row("google.cloud.pubsub_v1", "google-cloud-pubsub")], ["protobuf"])
    assert err.value.message == (
        "import 'google.cloud.pubsub_v1' (m/1/model.py:3) is not provided by the built "
        "environment: 'google-cloud-pubsub', expected to provide it, was not installed")


def test_a_distribution_that_provides_another_name(site: Path) -> None:
    with pytest.raises(BuildError) as err:
        check(site, [row("yaml_extras", "six", source="declared")], ["six"])
    assert err.value.message == (
        "import 'yaml_extras' (m/1/model.py:3) is not provided by the built environment: 'six' "
        "was installed but provides no module 'yaml_extras'")


def test_optional_imports_not_installed_are_fine(site: Path) -> None:
    check(site, [row("orjson", "orjson", optional=True)], ["six"])


def test_conda_laid_out_modules_count(site: Path) -> None:
    (site / "condapkg").mkdir()
    check(site, [row("condapkg", "condapkg")], [])


@pytest.mark.slow
def test_pack_fails_naming_the_import_its_line_and_distribution(tmp_path: Path) -> None:
    from .conftest import copy_model

    model = copy_model("plain_numpy", tmp_path)
    (model / "tritonpack.toml").write_text('[imports]\nyaml = "six"\n')
    (model / "1" / "model.py").write_text("import numpy\nimport yaml\n\n\n"
                                          "class TritonPythonModel:\n    pass\n")
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == ExitCode.BUILD
    assert error_line(res.stderr) == (
        "error: import 'yaml' (plain_numpy/1/model.py:2) is not provided by the built "
        "environment: 'six' was installed but provides no module 'yaml'")
    assert not (model / "tritonpack-env.tar.gz").exists()


@pytest.mark.parametrize(("headers", "license"), [
    (b"License-Expression: Apache-2.0\nLicense: BSD\n", "Apache-2.0"),  # the SPDX one wins
    (b"License: MIT\nClassifier: License :: OSI Approved :: BSD License\n", "MIT"),
    (b"License: " + b"x" * 90 + b"\nClassifier: License :: OSI Approved :: BSD License\n",
     "BSD License"),  # a pasted license text is not a name: the classifiers say it
    (b"", ""),
])
def test_one_reader_for_metadata(tmp_path: Path, headers: bytes, license: str) -> None:
    """Name, license, Requires-Dist and files come from one reader; a METADATA with bytes
    that are not UTF-8 (a hostile or careless wheel) is read, not a crash of the build."""
    site = tmp_path / "site-packages"
    dist(site, "Foo_Bar", "foo/__init__.py")
    (site / "Foo_Bar-1.0.dist-info" / "METADATA").write_bytes(
        b"Metadata-Version: 2.1\nName: Foo_Bar\n" + headers
        + b"Requires-Dist: lazy_loader>=0.3\n\nbody \xff\xfe")
    (found,) = installed(site)
    assert (found.name, found.key, found.license, found.requires) == (
        "Foo_Bar", "foo-bar", license, ("lazy_loader>=0.3",))
    assert found.files == ("foo/__init__.py", "Foo_Bar-1.0.dist-info/RECORD")
    assert provided(site)["foo"] == {"foo-bar"}
