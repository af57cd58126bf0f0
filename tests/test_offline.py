"""``--offline`` never touches the network: an index that would answer is never asked, a
remote cache is refused, a conda package not downloaded is named, and nothing changes."""

from __future__ import annotations

import http.server
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from packer.build import condainstall
from packer.core import network
from packer.core.errors import BuildError, ExitCode
from packer.lock.conda import CondaPackage

from .conftest import FIXTURES, error_line
from .loopback import serving
from .test_bad_inputs import run_unchanged


@pytest.fixture
def index() -> Iterator[tuple[str, list[str]]]:
    """A loopback index that records every request it gets (and answers none usefully)."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield f"{url}/simple", asked


@pytest.mark.slow
def test_offline_lock_names_what_is_missing(tmp_path: Path,
                                            index: tuple[str, list[str]]) -> None:
    """numpy is not in the cache for this index: named, exit 5, the index never asked."""
    url, asked = index
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    res = run_unchanged(model, "lock", model, "--triton", "24.10", "--offline",
                        "--index-url", url)
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.RESOLVE, "error: --offline: cannot resolve without the network: numpy is not "
        "in tritonpack's package cache")
    assert "run once without --offline" in res.stderr
    assert asked == []


def test_offline_refuses_a_remote_cache(tmp_path: Path) -> None:
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    res = run_unchanged(model, model, "--triton", "24.10", "--offline",
                        "--cache-from", "oci://127.0.0.1:9/envs")
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.USAGE, "error: --offline cannot use a remote cache (--cache-from/--cache-to, "
        "TRITONPACK_CACHE_FROM/TO): a registry is reached over the network")


def test_offline_pip_tools_refused(tmp_path: Path) -> None:
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    res = run_unchanged(model, "lock", model, "--triton", "24.10", "--offline",
                        "--resolver", "pip-tools")
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.RESOLVE, "error: --resolver pip-tools cannot resolve --offline: pip asks the "
        "package index for every requirement")


def test_offline_conda_download_refused(tmp_path: Path) -> None:
    """A locked conda package that would be downloaded is named before any download."""
    pkg = CondaPackage(name="zlib", version="1.3.1", build="hb9d3cd8_2", build_number=2,
                       subdir="linux-64", channel="https://conda.anaconda.org/conda-forge",
                       url="https://conda.anaconda.org/conda-forge/linux-64/"
                           "zlib-1.3.1-hb9d3cd8_2.conda",
                       sha256="0" * 64, file_name="zlib-1.3.1-hb9d3cd8_2.conda")
    network.set_offline(True)
    try:
        with pytest.raises(BuildError) as err:
            condainstall.install([pkg], tmp_path / "env")
    finally:
        network.set_offline(False)
    assert str(err.value) == ("--offline: cannot install the locked conda packages without the "
                              "network: zlib-1.3.1-hb9d3cd8_2.conda is not in tritonpack's "
                              "package cache")
    assert err.value.exit_code == ExitCode.BUILD
    assert not (tmp_path / "env").exists()
