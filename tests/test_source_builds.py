"""A source build runs code tritonpack does not control: a setup.py that never returns, or one
that forks a daemon holding the output pipe open, must neither hang tritonpack nor outlive it.

The sdists are made here, in tmp_path: their setup.py writes the pid of what it started to a
file beside them, so each test asserts about its own processes only.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from packer.core import deadlines, proc
from packer.core.errors import ExitCode, ProcessTimeout

from .conftest import MODELS, alive, error_line, run_cli, snapshot

PYPROJECT = ('[build-system]\nrequires = ["setuptools"]\n'
             'build-backend = "setuptools.build_meta"\n')

# the build step (not the metadata step) waits forever, its pid recorded
HANG = """import os, sys, time
from setuptools import setup
if "bdist_wheel" in sys.argv:
    open({pids!r}, "a").write(f"{{os.getpid()}}\\n")
    time.sleep(100000)
setup(name="{name}", version="1.0", packages=["{module}"])
"""

# reading its metadata (the resolver's run, not the build's) waits forever
HANG_METADATA = HANG.replace('if "bdist_wheel" in sys.argv:', 'if "bdist_wheel" not in sys.argv:')

# every setup.py run forks a daemon (double fork, setsid: out of the build's process group)
# that keeps stdout and stderr, the build's output pipe, open
DAEMON = """import os, sys, time
from setuptools import setup
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        open({pids!r}, "a").write(f"{{os.getpid()}}\\n")
        time.sleep(100000)
    os._exit(0)
os.wait()
setup(name="{name}", version="1.0", packages=["{module}"])
"""


def _sdist(links: Path, name: str, setup_py: str) -> None:
    module = name.replace("-", "_")
    root = f"{module}-1.0"
    files = {f"{root}/pyproject.toml": PYPROJECT, f"{root}/setup.py": setup_py,
             f"{root}/{module}/__init__.py": "",
             f"{root}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"}
    with tarfile.open(links / f"{root}.tar.gz", "w:gz") as tar:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))


def _model(tmp_path: Path, name: str, setup_py: str) -> tuple[Path, Path]:
    model = shutil.copytree(MODELS / "sdist_native", tmp_path / "m")
    pids = tmp_path / "pids"
    links = model / "links"
    for old in links.iterdir():
        old.unlink()
    module = name.replace("-", "_")
    _sdist(links, name, setup_py.format(pids=str(pids), name=name, module=module))
    (model / "requirements.txt").write_text(f"--find-links links\n{name}==1.0\n")
    (model / "1" / "model.py").write_text(f"import {module}\n\n\nclass TritonPythonModel:\n"
                                          "    pass\n")
    return model, pids


def _gone(pids: list[int], within: float = 10.0) -> bool:
    """Every one of ``pids`` dead (a SIGKILLed process takes a moment on a loaded machine)."""
    deadline = time.monotonic() + within
    while [p for p in pids if alive(p)]:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _started(pids: Path) -> list[int]:
    return [int(x) for x in pids.read_text().split()] if pids.exists() else []


@pytest.mark.slow
def test_a_setup_py_that_never_returns_is_stopped_at_its_deadline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the hang starts ~2 s into the build at load 7: the deadline is what the test waits out
    monkeypatch.setattr(deadlines, "BUILD_SDIST", 10.0)
    model, pids = _model(tmp_path, "tritonpack-hang-probe", HANG)
    before = snapshot(model)
    t0 = time.monotonic()
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto")
    assert time.monotonic() - t0 < 120
    assert res.exit_code == ExitCode.BUILD == 8, res.stderr
    assert error_line(res.stderr) == (
        "error: building tritonpack-hang-probe==1.0 from its sdist did not finish within 10 s: "
        "stopped, with every process its build started")
    assert _started(pids), "setup.py never ran: the deadline ended before it (a loaded machine?)"
    assert _gone(_started(pids))
    assert snapshot(model) == before


@pytest.mark.slow
def test_a_setup_py_that_hangs_the_resolver_is_stopped_at_its_deadline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deadlines, "RESOLVE_UV", 10.0)  # the hang starts ~3 s in at load 7
    model, pids = _model(tmp_path, "tritonpack-hang-probe", HANG_METADATA)
    before = snapshot(model)
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == ExitCode.RESOLVE == 5, res.stderr
    assert error_line(res.stderr) == (
        "error: resolving the requirements did not finish within 10 s (it ran the setup.py of "
        "tritonpack-hang-probe, published only as source, to read its metadata): stopped, "
        "with every process it started")
    assert _started(pids), "setup.py never ran: the deadline ended before it (a loaded machine?)"
    assert _gone(_started(pids))
    assert snapshot(model) == before


@pytest.mark.slow
def test_a_build_whose_daemon_holds_the_pipe_neither_hangs_nor_outlives_tritonpack(
        tmp_path: Path) -> None:
    """The daemon left the process group with setsid: found by the mark in its
    environment. The build itself succeeds, and the lock is written."""
    model, pids = _model(tmp_path, "tritonpack-daemon-probe", DAEMON)
    t0 = time.monotonic()
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto", "-q")
    assert time.monotonic() - t0 < 300
    assert res.exit_code == 0, res.stderr
    assert (model / "tritonpack.lock").is_file()
    assert _started(pids) and _gone(_started(pids))


def test_a_command_past_its_deadline_is_stopped_with_what_it_started(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = (f"import os, subprocess, time\n"
              f"p = subprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
              f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{p.pid}}')\n"
              "time.sleep(1000)\n")
    with pytest.raises(ProcessTimeout) as stopped:
        proc.run(["python3", "-c", script], timeout=3)
    assert stopped.value.message == "python3 did not finish within 3 s"
    assert len(_started(pids)) == 2 and _gone(_started(pids))


def test_a_command_that_exits_leaves_no_process_behind(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = (f"import os, subprocess\n"
              f"p = subprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
              f"open({str(pids)!r}, 'w').write(str(p.pid))\nprint('done')\n")
    t0 = time.monotonic()
    assert proc.run(["python3", "-c", script], timeout=60).strip() == "done"
    assert time.monotonic() - t0 < 30
    assert _started(pids) and _gone(_started(pids))


SETUP_REQUIRES = """from setuptools import setup
setup(name="{name}", version="1.0", packages=["{module}"],
      setup_requires=["tritonpack-no-such-dist>=1"])
"""


@pytest.mark.slow
def test_a_setup_requires_without_a_solution_is_the_sdists_not_the_users(
        tmp_path: Path) -> None:
    """The user's tritonpack.toml pins nothing of it: no "relax the pin in tritonpack.toml"."""
    model, _ = _model(tmp_path, "tritonpack-sr-probe", SETUP_REQUIRES)
    before = snapshot(model)
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == ExitCode.BUILD == 8, res.stderr
    assert error_line(res.stderr) == (
        "error: tritonpack-sr-probe==1.0 is published only as source and its build needs "
        "setuptools, tritonpack-no-such-dist>=1 (its build-system requires and setup_requires), "
        "which have no solution for Python 3.10: Because tritonpack-no-such-dist was not found "
        "in the package registry and you require tritonpack-no-such-dist>=1, we can conclude "
        "that your requirements are unsatisfiable")
    assert "tritonpack.toml" not in res.stderr
    assert snapshot(model) == before


@pytest.mark.slow
def test_a_sigkilled_tritonpack_leaves_no_build_running(tmp_path: Path) -> None:
    """SIGKILL runs no cleanup: the watchdog (waiting on a pipe only tritonpack holds) kills
    the setup.py it was waiting for."""
    model, pids = _model(tmp_path, "tritonpack-hang-probe", HANG)
    run = subprocess.Popen([sys.executable, "-m", "packer", "lock", str(model), "--triton",
                            "24.10", "--python-from", "auto"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"})
    deadline = time.monotonic() + 300
    while not _started(pids):
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    run.kill()
    run.wait()
    deadline = time.monotonic() + 15
    while [p for p in _started(pids) if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in _started(pids) if alive(p)]


def test_a_command_that_floods_its_output_keeps_only_its_end() -> None:
    script = "import sys\nsys.stdout.write('x' * (40 << 20))\nsys.stdout.write('THE END')\n"
    out = proc.run(["python3", "-c", script], timeout=120)
    assert len(out) == proc.RUN_TAIL and out.endswith("THE END")
