"""Never half-written: a real run interrupted at each stage leaves the previous archive, lock
and config.pbtxt untouched and no temp dirs behind. Two runs on one model serialize."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.build.runlock import model_lock
from packer.core.errors import ExitCode
from packer.core.signals import signals_held

from .conftest import alive, error_line, run_cli, snapshot

pytestmark = pytest.mark.slow
Copy = Callable[..., Path]


def start(*args: str | Path, tmpdir: Path | None = None) -> subprocess.Popen[str]:
    env = os.environ.copy()
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)  # its build dir and temp files land here, and only its
    return subprocess.Popen([sys.executable, "-m", "packer", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for(process: subprocess.Popen[str], marker: str, timeout: float = 300) -> list[str]:
    """Read the run's progress lines until ``marker`` shows (the stage has begun)."""
    assert process.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError(f"never saw {marker!r}: {''.join(seen)}")


def leftovers(model: Path) -> list[str]:
    return [p.name for p in model.iterdir() if p.name.startswith(".")]


@pytest.fixture
def packed(packed_copy: Copy) -> Path:
    """A model packed (once a session, copied here), then changed so that the next run
    re-locks and rebuilds."""
    model = packed_copy("plain_numpy", "--triton", "24.10", "--python-from", "auto")
    (model / "tritonpack.toml").write_text('[requirements]\npypi = ["PyYAML"]\n')
    return model


@pytest.mark.parametrize(("marker", "sig"), [
    ("resolving", signal.SIGINT),
    ("installing", signal.SIGTERM),
    ("conda-pack", signal.SIGINT),
    ("importing the model's packages", signal.SIGINT),  # the check, writing bytecode
    ("writing tritonpack-env.tar.gz", signal.SIGTERM),
])
def test_interrupt_at_each_stage(packed: Path, marker: str, sig: signal.Signals,
                                 tmp_path: Path) -> None:
    interrupted(packed, marker, sig, tmp_path, "--no-cache")


@pytest.mark.parametrize(("marker", "sig"), [
    ("importing the model's packages", signal.SIGINT),
    ("writing tritonpack-env.tar.gz", signal.SIGTERM),
])
def test_interrupt_while_native_files_are_compressed_ahead(
        packed: Path, marker: str, sig: signal.Signals, tmp_path: Path, session_cache: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With a gzip store to fill (a fresh cache: ``--no-cache`` reads none, so compresses
    nothing ahead), the native files are compressed beside the import check and on through
    the write: a Ctrl-C or SIGTERM in either leaves what it leaves without them, and no
    half-written entry in the store."""
    from .freshcache import fresh_cache

    cache = fresh_cache(tmp_path / "cache", session_cache)
    monkeypatch.setenv("TRITONPACK_CACHE", str(cache))
    interrupted(packed, marker, sig, tmp_path)
    assert not list((cache / "gzip").rglob("*.tmp"))


def interrupted(packed: Path, marker: str, sig: signal.Signals, tmp_path: Path,
                *more: str) -> None:
    """A run stopped by ``sig`` once ``marker`` shows: exit 130, the model as it was, no
    temp file left."""
    before = snapshot(packed)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    run = start(packed, "--triton", "24.10", "--python-from", "auto", *more, tmpdir=tmpdir)
    wait_for(run, marker)
    run.send_signal(sig)
    _, err = run.communicate(timeout=120)
    assert run.returncode == ExitCode.INTERRUPTED, err
    assert "interrupted: nothing in the model directory was changed" in err
    assert "Traceback" not in err
    assert snapshot(packed) == before
    assert leftovers(packed) == []
    left = [p for p in tmpdir.rglob("*")
            if p.name != "tritonpack-build" and not p.name.startswith("uv-")  # uv's own locks
            and not (p.parent.name == "tritonpack-build" and p.suffix == ".lock")]  # the key's
    assert left == []  # the build dir and every temp file went with the run


def test_signals_wait_for_the_commit() -> None:
    delivered: list[str] = []
    with pytest.raises(KeyboardInterrupt), signals_held():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        delivered.append("commit finished first")
    assert delivered == ["commit finished first"]


def test_second_run_on_the_same_model_waits_or_fails(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    with model_lock(model):
        res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--no-wait")
        assert res.exit_code == ExitCode.BUSY == 14
        assert error_line(res.stderr) == (
            f"error: another tritonpack run (pid {os.getpid()}) is working on {model}")
        assert not (model / "tritonpack-env.tar.gz").exists()
        waiting = start(model, "--triton", "24.10", "--python-from", "auto")
        seen = wait_for(waiting, "waiting for another tritonpack run")
        assert any(str(model) in line for line in seen)
        time.sleep(0.5)
        assert waiting.poll() is None  # still queued behind the lock
    _, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err
    assert (model / "tritonpack-env.tar.gz").is_file()


def test_runs_on_different_models_do_not_wait(model_copy: Copy) -> None:
    one, two = model_copy("plain_numpy", "one"), model_copy("plain_numpy", "two")
    with model_lock(one):
        res = run_cli(two, "--triton", "24.10", "--python-from", "auto", "--no-wait", "-q")
        assert res.exit_code == 0, res.stderr


# --- what a killed run leaves: the next run removes it ---------------------------------------

def test_a_killed_runs_temp_archive_goes_with_the_next_run(packed: Path, tmp_path: Path) -> None:
    """SIGKILL runs no cleanup: the partial archive carries the dead run's pid, and the next
    run (not a later one, not a concurrent one) removes it."""
    run = start(packed, "--triton", "24.10", "--python-from", "auto", "--no-cache", tmpdir=tmp_path)
    wait_for(run, "writing tritonpack-env.tar.gz")
    time.sleep(0.5)
    run.kill()
    run.communicate()
    left = leftovers(packed)
    assert [n.startswith(f".tritonpack-env.tar.gz.{run.pid}.") for n in left] == [True], left
    live = packed / f".tritonpack-env.tar.gz.{os.getpid()}.x.tmp"  # a run still going: kept
    live.write_bytes(b"")
    res = run_cli(packed, "--triton", "24.10", "--python-from", "auto", "-q")
    assert res.exit_code == 0, res.stderr
    assert leftovers(packed) == [live.name]


def test_verify_interrupted_or_killed_leaves_no_server_and_no_temp_dir(
        model_copy: Copy, tmp_path: Path) -> None:
    model = model_copy("plain_numpy")
    assert run_cli(model, "--triton", "24.10", "--python-from", "auto", "-q").exit_code == 0
    for how in ("SIGTERM", "SIGKILL"):
        tmpdir = tmp_path / how
        tmpdir.mkdir()
        run = start("verify", model, tmpdir=tmpdir)
        wait_for(run, "loading")
        servers = _children(run.pid)
        assert servers, "no tritonserver started"
        run.send_signal(signal.SIGTERM) if how == "SIGTERM" else run.kill()
        _, err = run.communicate(timeout=60)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in servers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in servers if alive(p)], f"{how}: tritonserver outlived tritonpack"
        if how == "SIGTERM":
            assert run.returncode == ExitCode.INTERRUPTED, err
            assert list(tmpdir.iterdir()) == []
    killed = list((tmp_path / "SIGKILL").iterdir())
    assert [p.name.startswith("tritonpack-verify-") for p in killed] == [True]
    env = os.environ.copy()
    env["TMPDIR"] = str(tmp_path / "SIGKILL")
    done = subprocess.run([sys.executable, "-m", "packer", "verify", str(model), "-q"],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "SIGKILL").iterdir()) == []  # the next verify swept it


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True, check=False).stdout
    return [int(x) for x in out.split()]


def test_switching_format_leaves_one_environment(model_copy: Copy) -> None:
    """--format dir, then tar.gz: the directory tritonpack made goes; a stamped copy that
    config.pbtxt does not point at is flagged by check."""
    model = model_copy("plain_numpy")
    assert run_cli(model, "--triton", "24.10", "--python-from", "auto",
                   "--format", "dir", "-q").exit_code == 0
    assert (model / "tritonpack-env" / "tritonpack.json").is_file()
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "-q")
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in model.iterdir()) == [
        "1", "config.pbtxt", "tritonpack-env.tar.gz", "tritonpack-env.tar.gz.sha256",
        "tritonpack.lock"]
    assert run_cli("check", model).exit_code == 0
    shutil.copy2(model / "tritonpack-env.tar.gz", model / "old-env.tar.gz")
    res = run_cli("check", model)
    assert (res.exit_code, res.stdout.splitlines()[1:]) == (1, [
        "  plain_numpy: old-env.tar.gz is an environment tritonpack made that config.pbtxt does "
        "not point at: remove it (it ships with the model for nothing)"])
