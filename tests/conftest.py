"""Hermetic tests: no pip/uv/conda settings of this machine leak in; one cache per session."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from packer.cli import main
from packer.core.errors import ExitCode

from . import schemas

FIXTURES = Path(__file__).parent / "fixtures"
MODELS = FIXTURES / "models"
SRC = FIXTURES / "src"
_LEAKY = ("PIP_", "UV_", "CONDA_", "VIRTUAL_ENV", "PYTHONPATH")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One tritonpack cache for the whole run (local channels take ~10 s each to make),
    removed when the run ends, failed or not: it is the largest thing a run writes and no
    failure is read from it (``TRITONPACK_TEST_CACHE`` names one to keep between runs)."""
    shared = os.environ.get("TRITONPACK_TEST_CACHE")
    if shared:
        yield Path(shared)
        return
    cache = tmp_path_factory.mktemp("tritonpack-cache")
    yield cache
    shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, session_cache: Path) -> None:
    for key in list(os.environ):
        if key.startswith(_LEAKY):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TRITONPACK_CACHE", str(session_cache))
    monkeypatch.setenv("NO_COLOR", "1")


def copy_model(name: str, dest: Path, as_name: str | None = None) -> Path:
    """A writable copy of a fixture model (tests never write into tests/fixtures)."""
    target = dest / (as_name or name)
    shutil.copytree(MODELS / name, target, symlinks=True)
    return target


@pytest.fixture(scope="session")
def packed_once(tmp_path_factory: pytest.TempPathFactory,
                session_cache: Path) -> Callable[..., Path]:
    """A fixture model packed once per test session for each set of options (what its lock
    and environment depend on), for tests to which a packed model is only the starting point:
    each takes a copy (``packed_copy``), so no test sees another's changes."""
    built: dict[tuple[str, ...], Path] = {}

    def pack(name: str, *options: str) -> Path:
        key = (name, *options)
        if key not in built:
            os.environ["TRITONPACK_CACHE"] = str(session_cache)
            model = copy_model(name, tmp_path_factory.mktemp(f"packed-{name}"))
            res = run_cli(model, *options, "-q")
            assert res.exit_code == 0, res.stderr
            built[key] = model
        return built[key]

    return pack


@pytest.fixture
def packed_copy(packed_once: Callable[..., Path], tmp_path: Path) -> Callable[..., Path]:
    """A writable copy of ``packed_once(name, *options)`` in this test's tmp_path."""
    def copy(name: str, *options: str) -> Path:
        source = packed_once(name, *options)
        return Path(shutil.copytree(source, tmp_path / source.name, symlinks=True))

    return copy


@pytest.fixture
def model_copy(tmp_path: Path) -> Iterator[object]:
    yield lambda name, as_name=None: copy_model(name, tmp_path, as_name)


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


_INTERRUPT_EXPECTED = [False]


@contextlib.contextmanager
def interrupt_expected() -> Iterator[None]:
    """A test that interrupts the CLI itself: its exit 130 is its result, not a Ctrl-C."""
    _INTERRUPT_EXPECTED[0] = True
    try:
        yield
    finally:
        _INTERRUPT_EXPECTED[0] = False


def run_cli(*args: str | Path) -> Result:
    """Run the real CLI in-process; output and exit code as a user would see them. The CLI
    turns a Ctrl-C or a SIGTERM into exit 130 for its own run; here that would fail one test
    and let the suite go on, so an interrupt nobody expected stops the whole run."""
    runner = CliRunner()
    res = runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
    if res.exit_code == ExitCode.INTERRUPTED and not _INTERRUPT_EXPECTED[0]:
        pytest.exit(f"interrupted: {res.stderr.strip()}", returncode=ExitCode.INTERRUPTED)
    if "--json" in args:
        _check_schema(res.stdout)
    return Result(res.exit_code, res.stdout, res.stderr)


def _check_schema(stdout: str) -> None:
    """Every --json output a test produces matches its documented schema (docs/schema/): the
    slow and server tests' pack, lock and verify outputs included. A command with no schema
    yet is left to tests/test_json_schema.py, which names the file to write."""
    try:
        payload = json.loads(stdout)
    except ValueError:
        return  # --help, or a test about output that is not JSON: asserted there
    if isinstance(payload, dict) and schemas.has_schema(payload):
        schemas.validate(payload)


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes: to prove nothing changed."""
    return {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*")) if p.is_file() and not p.is_symlink()
    }


def scratch(request: pytest.FixtureRequest, factory: pytest.TempPathFactory, name: str) -> Path:
    """A directory for a module- or session-scoped fixture, removed when its scope ends unless a
    test failed meanwhile (as pytest keeps only failed tests' tmp_path): a run's disk stays small."""
    path = factory.mktemp(name)
    failed = request.session.testsfailed

    def remove() -> None:
        if request.session.testsfailed == failed:
            shutil.rmtree(path, ignore_errors=True)

    request.addfinalizer(remove)
    return path


def alive(pid: int) -> bool:
    """Whether a process this test started still runs (a zombie, not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def error_line(stderr: str) -> str:
    """The one error line a failed command prints."""
    return next(line for line in stderr.splitlines() if line.startswith("error:"))


@pytest.fixture(scope="session")
def standin_image() -> str:
    """The locally built stand-in Triton image (tests/docker/standin.py), on the engine of
    DOCKER_HOST; without an engine the test skips, saying why (.ci/run starts one)."""
    from packer.core.errors import RuntimeMissingError
    from packer.verify.docker import connect

    from .docker.standin import build_image

    try:
        connect().close()
    except RuntimeMissingError as exc:
        pytest.skip(f"{exc} (.ci/run starts one)")
    return build_image()
