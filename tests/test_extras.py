"""The core runs without the verify and docker extras; a command that needs one says which, with
the pip command, before it packs or starts anything. Each case runs in a fresh interpreter where
the extra's package cannot be imported (``sys.modules[name] = None``, what Python does for a
package that is not there)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from packer.core.errors import ExitCode

from .conftest import FIXTURES, snapshot

ROOT = Path(__file__).parent.parent

RUN = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from packer.cli import main
main(sys.argv[2:], prog_name="tritonpack")
"""


def _run(blocked: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", RUN, blocked, *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)


VERIFY = ("error: verify needs tritonclient's gRPC client, which is not installed\n"
          "hint: install the verify extra from tritonpack's repository (in a checkout: pip "
          "install '.[verify]'); tritonpack is not on PyPI\n")
DOCKER_CLIENT = ("error: verify needs tritonclient's gRPC client, which is not installed\n"
                 "hint: install the docker extra from tritonpack's repository (in a checkout: "
                 "pip install '.[docker]'); tritonpack is not on PyPI\n")
DOCKER = ("error: the docker runtime needs the docker SDK, which is not installed\n"
          "hint: install the docker extra from tritonpack's repository (in a checkout: pip "
          "install '.[docker]'); tritonpack is not on PyPI\n")
PYTRITON = ("error: the local runtime needs the nvidia-pytriton wheel\n"
            "hint: install the verify extra from tritonpack's repository (in a checkout: pip "
            "install '.[verify]'); tritonpack is not on PyPI\n")


@pytest.mark.parametrize(("blocked", "args", "stderr"), [
    ("tritonclient", ("verify", "{model}"), VERIFY),
    ("grpc", ("verify", "{model}"), VERIFY),  # tritonclient without its grpc extra
    ("tritonclient", ("{model}", "--verify"), VERIFY),
    ("pytriton", ("{model}", "--verify"), PYTRITON),
    ("tritonclient", ("verify", "{model}", "--runtime", "docker"), DOCKER_CLIENT),
    ("docker", ("verify", "{model}", "--runtime", "docker"), DOCKER),
    ("docker", ("{model}", "--verify", "--runtime", "docker"), DOCKER),
    ("docker", ("{repo}", "--verify", "--runtime", "docker"), DOCKER),
])
def test_missing_extra_is_named(tmp_path: Path, blocked: str, args: tuple[str, ...],
                                stderr: str) -> None:
    """Refused before anything is packed: the model dir is left as it was."""
    repo = tmp_path / "repo"
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", repo / "plain_numpy")
    before = snapshot(repo)
    res = _run(blocked, *(a.format(model=model, repo=repo) for a in args))
    assert (res.returncode, res.stderr) == (ExitCode.RUNTIME, stderr)
    assert snapshot(repo) == before


@pytest.mark.parametrize("args", [("verify", "{model}"), ("{model}", "--verify")])
def test_a_bad_request_file_is_refused_before_the_missing_extra(tmp_path: Path,
                                                                args: tuple[str, ...]) -> None:
    """The user's input is checked first: a bad --inputs is exit 2, named, with no extra
    installed (it was exit 13, "install the verify extra", which hid the user's mistake)."""
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "plain_numpy")
    bad = FIXTURES / "bad_requests" / "not_json.json"
    res = _run("tritonclient,grpc,pytriton,docker",
               *(a.format(model=model) for a in args), "--inputs", str(bad))
    assert (res.returncode, res.stderr.splitlines()[0]) == (
        ExitCode.USAGE, f"error: --inputs {bad}:1:1: not JSON: Expecting value")


def test_pip_tools_is_an_extra(tmp_path: Path) -> None:
    """--resolver pip-tools without pip-tools installed is refused before any resolve, naming
    the extra; the default resolver (uv, a core dependency) needs nothing more."""
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "plain_numpy")
    res = _run("piptools", "lock", model, "--triton", "24.10", "--python-from", "auto",
               "--resolver", "pip-tools", "-q")
    assert (res.returncode, res.stderr) == (
        ExitCode.RESOLVE, "error: --resolver pip-tools needs pip-tools, which is not installed\n"
        "hint: install the pip-tools extra from tritonpack's repository (in a checkout: pip "
        "install '.[pip-tools]'); tritonpack is not on PyPI (or use the default --resolver uv)\n")
    assert not (model / "tritonpack.lock").exists()


def test_core_commands_run_without_the_extras() -> None:
    """scan reads config.pbtxt and the model with tritonclient, grpc, numpy and docker gone."""
    res = _run("tritonclient,grpc,numpy,docker,pytriton", "scan", "examples/numpy_model")
    assert res.returncode == 0, res.stderr
    assert "numpy_model/1/model.py" in res.stdout


def test_every_module_imports_without_the_extras() -> None:
    """No module of the package imports an extra's package at load time (verify's import them
    where they are used)."""
    import packer  # the package under test: the checkout's, or the wheel's (.ci/run)

    package = Path(packer.__file__).parent
    modules = sorted(".".join(p.relative_to(package.parent).with_suffix("").parts)
                     .removesuffix(".__init__")
                     for p in package.rglob("*.py") if p.name != "__main__.py")
    code = ("import importlib, sys\n"
            "for name in ('tritonclient', 'grpc', 'numpy', 'docker', 'pytriton'):\n"
            "    sys.modules[name] = None\n"
            f"for module in {modules!r}:\n"
            "    importlib.import_module(module)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    assert len(modules) > 50
