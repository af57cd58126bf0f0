"""Hermetic tests: no pip/uv/conda settings of this machine leak in; one cache per session."""

from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from packer.cli import main
from packer.core.cachehome import TAG, TAG_SIGNATURE
from packer.core.errors import ExitCode

from . import schemas

FIXTURES = Path(__file__).parent / "fixtures"
MODELS = FIXTURES / "models"
SRC = FIXTURES / "src"
_LEAKY = ("PIP_", "UV_", "CONDA_", "VIRTUAL_ENV", "PYTHONPATH")


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """pyproject's addopts name xdist's options by their long names; where xdist is not loaded
    (``-p no:xdist``, or not installed) they are accepted and mean nothing: the run is serial."""
    if not pluginmanager.has_plugin("xdist"):
        parser.addoption("--numprocesses", default=None, help="(xdist is not loaded: ignored)")
        parser.addoption("--dist", default="no", help="(xdist is not loaded: ignored)")


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown where xdist is not loaded
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``--dist loadgroup`` with groups of whole test modules (``_groups``). xdist's own
    grouping (an ``@group`` suffix it writes into each node id) is lost with pytest 9.2's
    structured node ids (pytest-dev/pytest-xdist#1386); this one needs only the id's module
    part. Groups go first (xdist orders work by its number of tests), then single tests."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    groups = _groups(config.rootpath)

    class ModuleGroups(LoadGroupScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            scope: str = super()._split_scope(nodeid)
            return groups.get(nodeid.split("::", 1)[0], scope) if scope == nodeid else scope

    return ModuleGroups(config, log)


ENGINE_GROUP = "the Docker engine"


def _groups(root: Path) -> dict[str, str]:
    """Test modules (as node ids name them) whose tests run on one worker, read with ast (the
    controller collects nothing): those that use the stand-in image, in one group (their
    tests assert what the one Docker engine holds: no container, no image left behind);
    those that define a fixture wider than a test (a packed repository, a server, verify's
    environment), in one group each, so that the fixture is built once."""
    groups = {}
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        tree = ast.parse(path.read_bytes())
        module = path.relative_to(root).as_posix()
        if any(isinstance(n, ast.arg) and n.arg == "standin_image" for n in ast.walk(tree)):
            groups[module] = ENGINE_GROUP
        elif any(_wide_fixture(n) for n in ast.walk(tree)):
            groups[module] = module
    return groups


def _wide_fixture(node: ast.AST) -> bool:
    """``@pytest.fixture(scope=...)`` of a scope wider than a test."""
    return isinstance(node, ast.FunctionDef) and any(
        isinstance(dec, ast.Call) and any(
            kw.arg == "scope" and isinstance(kw.value, ast.Constant)
            and kw.value.value != "function" for kw in dec.keywords)
        for dec in node.decorator_list)


def _worker() -> bool:
    return "PYTEST_XDIST_WORKER" in os.environ


def shared_root(factory: pytest.TempPathFactory) -> Path:
    """The run's directory that every xdist worker sees: the controller's basetemp, of which
    each worker's is a child (serially, the run's own basetemp). Removed with the run."""
    base = factory.getbasetemp()
    return base.parent if _worker() else base


@contextlib.contextmanager
def exclusive(lock: Path, deadline: float = 1800.0) -> Iterator[None]:
    """Held by one process of the run at a time (xdist workers build what they share under
    it): flock on ``lock``, waited for up to ``deadline`` seconds (a build it waits on has
    deadlines of its own, so a wait this long means a worker is stuck)."""
    with lock.open("a") as fh:
        end = time.monotonic() + deadline
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > end:
                    raise TimeoutError(f"{lock} held for over {deadline:.0f} s") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_CACHE = "tritonpack-cache"


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One tritonpack cache for the whole run, shared by its xdist workers (local channels
    take ~10 s each to make; tritonpack's cache is safe for runs at once: its builds and
    stores take locks), removed when the run ends, failed or not: it is the largest thing a
    run writes and no failure is read from it (``TRITONPACK_TEST_CACHE`` names one to keep
    between runs). A worker leaves it to the controller (pytest_sessionfinish)."""
    shared = os.environ.get("TRITONPACK_TEST_CACHE")
    if shared:
        yield Path(shared)
        return
    cache = shared_root(tmp_path_factory) / _CACHE
    cache.mkdir(exist_ok=True)
    # tagged as tritonpack tags a cache it makes: a test that fills a section first without
    # tritonpack (freshcache's links) would leave it looking like someone else's to `cache prune`
    with contextlib.suppress(FileExistsError), (cache / TAG).open("xb") as tag:
        tag.write(TAG_SIGNATURE + b"\n")
    yield cache
    if not _worker():
        shutil.rmtree(cache, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The controller of an xdist run removes the workers' shared cache and packed models
    (the workers' own temp dirs follow pytest's retention policy)."""
    config = session.config
    if hasattr(config, "workerinput") or not config.pluginmanager.has_plugin("dsession"):
        return  # a worker, or a serial run (session_cache removes its own)
    base = config._tmp_path_factory.getbasetemp()  # made by xdist before the workers started
    for name in (_CACHE, _PACKED):
        shutil.rmtree(base / name, ignore_errors=True)


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, session_cache: Path) -> None:
    for key in list(os.environ):
        if key.startswith(_LEAKY):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TRITONPACK_CACHE", str(session_cache))
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture(autouse=True)
def _log_levels_as_found() -> Iterator[None]:
    """An in-process CLI run sets tritonpack's loggers' levels (``-v``: INFO, left set when it
    returns, as a process that ends leaves them): the next test finds them as it would in a
    fresh process (a test reading a module's log records saw the reuse counts' INFO lines
    after a ``-v`` run in the same worker, by test order)."""
    names = ("tritonpack", "packer", "")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def copy_model(name: str, dest: Path, as_name: str | None = None) -> Path:
    """A writable copy of a fixture model (tests never write into tests/fixtures)."""
    target = dest / (as_name or name)
    shutil.copytree(MODELS / name, target, symlinks=True)
    return target


_PACKED = "packed-once"


@pytest.fixture(scope="session")
def packed_once(tmp_path_factory: pytest.TempPathFactory,
                session_cache: Path) -> Callable[..., Path]:
    """A fixture model packed once per test run for each set of options (what its lock and
    environment depend on), for tests to which a packed model is only the starting point:
    each takes a copy (``packed_copy``), so no test sees another's changes. xdist workers
    share each build: the first to need it builds it under a lock, the others wait for its
    done-marker."""
    root = shared_root(tmp_path_factory) / _PACKED
    root.mkdir(exist_ok=True)
    built: dict[tuple[str, ...], Path] = {}

    def pack(name: str, *options: str) -> Path:
        key = (name, *options)
        if key not in built:
            home = root / f"{name}-{hashlib.sha256(repr(key).encode()).hexdigest()[:16]}"
            with exclusive(home.with_suffix(".lock")):
                if not (home / ".done").exists():
                    shutil.rmtree(home, ignore_errors=True)
                    home.mkdir()
                    os.environ["TRITONPACK_CACHE"] = str(session_cache)
                    model = copy_model(name, home)
                    res = run_cli(model, *options, "-q")
                    assert res.exit_code == 0, res.stderr
                    (home / ".done").touch()
            built[key] = home / name
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
def standin_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The locally built stand-in Triton image (tests/docker/standin.py), on the engine of
    DOCKER_HOST; without an engine the test skips, saying why (.ci/run starts one)."""
    from packer.core.errors import RuntimeMissingError
    from packer.verify.docker import connect

    from .docker.standin import build_image

    try:
        connect().close()
    except RuntimeMissingError as exc:
        pytest.skip(f"{exc} (.ci/run starts one)")
    with exclusive(shared_root(tmp_path_factory) / "standin.lock"):  # one build per run
        return build_image()
