"""The bad-input corpus (tests/fixtures/bad/): for each, the exact message, the exit code,
no traceback, and nothing in the model directory changed."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from packer.errors import ExitCode

from .conftest import FIXTURES, Result, error_line, run_cli, snapshot

BAD = FIXTURES / "bad"


def bad_copy(name: str, dest: Path) -> Path:
    target = dest / name
    shutil.copytree(BAD / name, target, symlinks=True)
    return target


def run_unchanged(model: Path, *args: str | Path) -> Result:
    before = snapshot(model)
    res = run_cli(*args)
    assert "Traceback" not in res.stderr
    assert snapshot(model) == before
    return res


SCAN_CASES = [
    ("no_model_py", ExitCode.MODEL, "error: {model}: no model.py in 1/"),
    ("no_config", ExitCode.MODEL, "error: {model}: no config.pbtxt"),
    ("no_version_dir", ExitCode.MODEL, "error: {model}: no numeric version dir"),
    ("config_syntax", ExitCode.MODEL,
     "error: {model}/config.pbtxt:5:1: 'output [ { name: \"OUTPUT0\" data_type: TYPE_FP32 dims: "
     "[ 4 ] } ]': Expected \",\"."),
    ("config_unknown_field", ExitCode.MODEL,
     "error: {model}/config.pbtxt:6:1: Message type \"inference.ModelConfig\" has no field named "
     "\"max_batch_sise\"."),
    ("backend_not_python", ExitCode.MODEL,
     "error: {model}/config.pbtxt: backend is 'pytorch': tritonpack packs Python-backend models only"),
    ("empty_config", ExitCode.MODEL,
     "error: {model}/config.pbtxt: backend is not set: tritonpack packs Python-backend models only"),
    ("model_syntax_error", ExitCode.SCAN,
     "error: model_syntax_error/1/model.py:3: syntax error: invalid syntax"),
    ("model_non_utf8", ExitCode.SCAN, "error: model_non_utf8/1/model.py: not valid UTF-8 source"),
    ("model_null_bytes", ExitCode.SCAN,
     "error: model_null_bytes/1/model.py: not Python source: source code string cannot contain "
     "null bytes"),
    ("symlink_loop", ExitCode.SCAN, "error: symlink_loop/1/loopy.py: symlink loop"),
    ("conflicting_pins", ExitCode.RESOLVE,
     "error: {model}/tritonpack.toml: conflicting pins for numpy: 1.25.2, 1.26.4"),
    ("invalid_requirement", ExitCode.RESOLVE,
     "error: {model}/tritonpack.toml: invalid requirement 'numpy>>1': Expected semicolon (after "
     "name with no version specifier) or end"),
    ("declared_bad_toml", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: Unclosed array (at end of document)"),
    ("declared_unknown_table", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: unknown table [dependencies]"),
    ("empty_version_dir", ExitCode.MODEL, "error: {model}: no model.py in 1/"),
    ("model_py_is_dir", ExitCode.MODEL, "error: {model}/1/model.py: not a file"),
    ("config_is_dir", ExitCode.MODEL, "error: {model}/config.pbtxt: not a file"),
    ("platform_not_python", ExitCode.MODEL,
     "error: {model}/config.pbtxt: platform is 'onnxruntime_onnx': tritonpack packs "
     "Python-backend models only"),
    ("no_model_class", ExitCode.SCAN,
     "error: no_model_class/1/model.py: defines no TritonPythonModel class: Triton's Python "
     "backend loads that class from model.py"),
    ("newer_syntax", ExitCode.SCAN,  # tritonpack.toml targets 24.10: its stub runs Python 3.10
     "error: newer_syntax/1/model.py:9: syntax error under Python 3.10, the target's: "
     "Exception groups are only supported in Python 3.11 and greater"),
    ("local_module_syntax_error", ExitCode.SCAN,
     "error: local_module_syntax_error/1/helpers.py:1: syntax error: '(' was never closed"),
    ("options_unknown_key", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: unknown option 'tritn' in [options]"),
    ("options_unknown_release", ExitCode.TARGET,
     "error: Triton release 99.01 is not in the release table (set in {model}/tritonpack.toml)"),
]


@pytest.mark.parametrize(("name", "code", "message"), SCAN_CASES, ids=[c[0] for c in SCAN_CASES])
@pytest.mark.parametrize("command", ["scan", "lock", "pack"])
def test_broken_model(tmp_path: Path, name: str, code: int, message: str, command: str) -> None:
    model = bad_copy(name, tmp_path)
    res = run_unchanged(model, command, model, "--offline" if command != "scan" else "-q")
    assert res.exit_code == code
    assert error_line(res.stderr) == message.replace("{model}", str(model))


LOCK_CASES = [
    ("lock_corrupted", "error: {model}/tritonpack.lock: corrupted: "),
    ("lock_future", "error: {model}/tritonpack.lock: lock format 99 is newer than this "
                    "tritonpack understands (1)"),
    ("lock_hand_edited", "error: {model}/tritonpack.lock: content hash mismatch: the lock was "
                         "edited by hand"),
]


@pytest.mark.parametrize(("name", "message"), LOCK_CASES, ids=[c[0] for c in LOCK_CASES])
@pytest.mark.parametrize("command", [("lock", "--check"), ("pack", "--frozen"), ("export",)])
def test_broken_lock(tmp_path: Path, name: str, message: str, command: tuple[str, ...]) -> None:
    model = bad_copy(name, tmp_path)
    args = [command[0], model, *command[1:]]
    if command[0] == "pack":
        args += ["--triton", "24.10", "--offline"]
    res = run_unchanged(model, *args)
    assert res.exit_code == ExitCode.LOCK
    assert error_line(res.stderr).startswith(message.replace("{model}", str(model)))


def test_frozen_without_a_lock(tmp_path: Path) -> None:
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    res = run_unchanged(model, model, "--frozen", "--offline")
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.LOCK, f"error: {model}/tritonpack.lock: no lock file")


@pytest.mark.parametrize(("args", "code", "message"), [
    (("--triton", "19.01"), ExitCode.TARGET,
     "error: Triton release 19.01 is not in the release table"),
    (("--python", "3.9"), ExitCode.TARGET, "error: Python 3.9 is not supported"),
    (("--python", "three"), ExitCode.TARGET,
     "error: --python three: expected MAJOR.MINOR, e.g. 3.12"),
    (("--model-version", "7"), ExitCode.MODEL, "error: {model}: no version dir 7"),
    (("--src", "/nonexistent/src"), ExitCode.SCAN,
     "error: --src /nonexistent/src: no such directory"),
    (("--python-from", "/nonexistent/python"), ExitCode.TARGET,
     "error: --python-from /nonexistent/python: not a shared-library CPython install"),
    (("--output", "../elsewhere.tar.gz"), ExitCode.PACK,
     "error: --output ../elsewhere.tar.gz: must be a path inside the model directory {model}"),
    (("--output", "env.zip"), ExitCode.PACK,
     "error: --output env.zip: an archive name must end in .tar.gz"),
])
def test_bad_options(tmp_path: Path, args: tuple[str, ...], code: int, message: str) -> None:
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    res = run_unchanged(model, model, "--offline", *args)
    assert res.exit_code == code
    assert error_line(res.stderr) == message.replace("{model}", str(model))


def test_bad_output_is_refused_before_any_network(tmp_path: Path) -> None:
    """The destination is checked first: no resolve against an index that is not there."""
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    res = run_unchanged(model, model, "--offline", "--output", "env.zip",
                        "--index-url", "http://127.0.0.1:9/simple")
    assert res.exit_code == ExitCode.PACK
    assert error_line(res.stderr) == "error: --output env.zip: an archive name must end in .tar.gz"
    assert "resolve" not in res.stderr


def test_a_setting_given_on_the_command_line_wins_over_the_file(tmp_path: Path) -> None:
    model = bad_copy("options_unknown_release", tmp_path)
    res = run_unchanged(model, "scan", model, "--triton", "24.10", "--json")
    assert res.exit_code == 0, res.stderr


def test_no_python_to_be_had(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--python that neither a channel nor an interpreter on this machine provides."""
    empty = tmp_path / "home"
    empty.mkdir()
    monkeypatch.setenv("PYENV_ROOT", str(empty / "pyenv"))
    monkeypatch.setenv("HOME", str(empty))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    res = run_unchanged(model, "lock", model, "--offline", "--python", "3.13", "--index-url",
                        "http://127.0.0.1:9/simple")
    assert res.exit_code == ExitCode.TARGET
    assert error_line(res.stderr) == (
        "error: no conda channel is reachable and no shared-library Python 3.13 was found")


def test_huge_model_dir_is_not_walked(tmp_path: Path) -> None:
    """Only what the scan needs is read: a FIFO would block any reader forever."""
    model = bad_copy("huge", tmp_path)
    with (model / "1" / "weights.bin").open("wb") as fh:
        fh.truncate(50 << 30)  # a sparse 50 GiB file
    os.mkfifo(model / "1" / "stream.fifo")
    os.mkfifo(model / "1" / "data" / "more.fifo")
    res = run_cli("scan", model, "--json")
    assert res.exit_code == 0, res.stderr
    assert '"files": [\n    "huge/1/model.py"\n  ]' in res.stdout


# --- resolution against a real index -------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize(("name", "args", "message"), [
    ("unknown_import", (),
     "error: import 'tritonpack_no_such_module_xyz' (unknown_import/1/model.py:2) needs "
     "distribution 'tritonpack-no-such-module-xyz', which the package index does not have"),
    ("declared_missing", (),
     "error: declared requirement 'tritonpack-no-such-distribution-abc' (tritonpack.toml) is not "
     "on the package index"),
    ("needs_newer_python", ("--triton", "24.10"),
     "error: the PyPI resolver found no solution for pandas>=3.0 under Python 3.10: Because "
     "pandas>=3.0.0 has no usable wheels and you require pandas>=3.0, we can conclude that your requirements are "
     "unsatisfiable"),
])
def test_resolution_failures(tmp_path: Path, name: str, args: tuple[str, ...], message: str) -> None:
    model = bad_copy(name, tmp_path)
    res = run_unchanged(model, "lock", model, "--offline", *args)
    assert (res.exit_code, error_line(res.stderr)) == (ExitCode.RESOLVE, message)


@pytest.mark.slow
def test_index_unreachable(tmp_path: Path) -> None:
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    res = run_unchanged(model, "lock", model, "--offline", "--index-url", "http://127.0.0.1:9/simple")
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.RESOLVE, "error: the package index http://127.0.0.1:9/simple is unreachable")


@pytest.mark.slow
def test_channel_unreachable(tmp_path: Path) -> None:
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    res = run_unchanged(model, "lock", model, "--channel", "http://127.0.0.1:9/conda")
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.RESOLVE, "error: conda channel unreachable or unreadable: http://127.0.0.1:9/conda")


# --- the file system says no ---------------------------------------------------------------

NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def cli_without_root_powers(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The real CLI as root without the power to ignore file permissions."""
    if os.geteuid() != 0:
        argv = [sys.executable, "-m", "packer", *map(str, args)]
    else:
        argv = [*NO_DAC, sys.executable, "-m", "packer", *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def test_unreadable_source(tmp_path: Path) -> None:
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    (model / "1" / "model.py").chmod(0)
    before = snapshot_meta(model)
    res = cli_without_root_powers("scan", model)
    assert res.returncode == ExitCode.SCAN
    assert error_line(res.stderr) == "error: m/1/model.py: permission denied"
    assert "Traceback" not in res.stderr and snapshot_meta(model) == before


def snapshot_meta(path: Path) -> list[tuple[str, int, int]]:
    return [(str(p), p.lstat().st_size, p.lstat().st_mode) for p in sorted(path.rglob("*"))]


@pytest.mark.slow
def test_output_not_writable(tmp_path: Path) -> None:
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    os.environ.get("TRITONPACK_CACHE")
    model.chmod(0o555)
    try:
        before = snapshot_meta(model)
        res = cli_without_root_powers(model, "--triton", "24.10", "--offline")
        assert res.returncode == ExitCode.PACK, res.stderr
        assert error_line(res.stderr) == f"error: cannot write to {model}: permission denied"
        assert snapshot_meta(model) == before
    finally:
        model.chmod(0o755)


@contextlib.contextmanager
def small_tmpfs(size: str) -> Iterator[Path]:
    mnt = Path(tempfile.mkdtemp(prefix="tritonpack-tmpfs-"))
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt], check=True,
                       capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        mnt.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {exc}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", mnt], check=False)
        mnt.rmdir()


@pytest.mark.slow
def test_disk_full_while_packing(tmp_path: Path) -> None:
    with small_tmpfs("8m") as mnt:
        model = shutil.copytree(FIXTURES / "models" / "plain_numpy", mnt / "m")
        res = run_unchanged(model, model, "--triton", "24.10", "--offline", "--no-cache")
        assert res.exit_code == ExitCode.PACK
        assert error_line(res.stderr) == f"error: cannot write to {model}: no space left on device"
        assert sorted(p.name for p in model.iterdir()) == ["1", "config.pbtxt"]


@pytest.mark.slow
def test_model_dir_on_read_only_file_system(tmp_path: Path) -> None:
    with small_tmpfs("8m") as mnt:
        model = shutil.copytree(FIXTURES / "models" / "plain_numpy", mnt / "m")
        subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
        res = run_unchanged(model, model, "--triton", "24.10", "--offline")
        assert res.exit_code == ExitCode.PACK
        assert error_line(res.stderr) == f"error: cannot write to {model}: read-only file system"
