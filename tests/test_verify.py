"""verify against the real tritonserver from the nvidia-pytriton wheel (release 24.10, CPU)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from packer.core.errors import ExitCode
from packer.verify import runtime
from packer.verify.local import LocalServer

from .conftest import FIXTURES, copy_model, error_line, run_cli, scratch
from .freshcache import own_cache

pytestmark = [pytest.mark.slow, pytest.mark.server]
VERIFY = FIXTURES / "verify"
Copy = Callable[..., Path]


@pytest.fixture(scope="session")
def env_310(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            session_cache: Path) -> Path:
    """One numpy environment for Python 3.10 (Triton 24.10), packed as a directory."""
    os.environ["TRITONPACK_CACHE"] = str(session_cache)
    model = copy_model("plain_numpy", scratch(request, tmp_path_factory, "env310"))
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--format", "dir", "-q")
    assert res.exit_code == 0, res.stderr
    return model / "tritonpack-env"


def with_env(name: str, env: Path, dest: Path, *, drop: tuple[str, ...] = ()) -> Path:
    """A verify fixture model with a (hard-linked) copy of ``env``, minus ``drop`` paths."""
    model = dest / name
    shutil.copytree(VERIFY / name, model)
    subprocess.run(["cp", "-al", env, model / "tritonpack-env"], check=True)
    for rel in drop:
        for path in (model / "tritonpack-env").glob(rel):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return model


@dataclass
class Started:
    """The servers this test started, and the env dirs and shm regions their logs named."""

    pids: list[int] = field(default_factory=list)
    named: set[Path] = field(default_factory=set)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Started:
    """Watch the real LocalServer.stop (it still runs): other jobs on this machine run their
    own tritonservers and make their own /tmp/python_env_* and /dev/shm regions, so a test
    asserts only about what it started."""
    seen = Started()
    stop = LocalServer.stop

    def watched(server: LocalServer) -> None:
        stop(server)
        log = server.log()
        seen.pids.append(server.process.pid)
        seen.named |= {Path(p) for p in runtime._ENV_DIRS.findall(log)}
        seen.named |= {runtime.SHM / n for n in runtime._SHM.findall(log)}

    monkeypatch.setattr(LocalServer, "stop", watched)
    return seen


def left_over(seen: Started) -> list[str]:
    """What this test's servers left: a process of their groups (the stubs) still there after
    a few seconds (a killed process is reaped by init in its own time), an env dir or shm
    region their logs named."""
    assert seen.pids, "the test started no server"
    deadline = time.monotonic() + 10
    alive = list(seen.pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _group_alive(pid)]
        if alive:
            time.sleep(0.2)
    left = [f"process group {pid}: {_members(pid)}" for pid in alive]
    return left + sorted(str(p) for p in seen.named if p.exists())


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _members(pgid: int) -> str:
    """The group's processes as /proc shows them: pid, state, command."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, _, rest = text.rpartition(")")
        fields = rest.split()
        if len(fields) > 2 and fields[2] == str(pgid):
            found.append(f"{stat.parent.name} {fields[0]} {name.partition('(')[2]}")
    return ", ".join(found) or "(none listed)"


def test_packed_model_loads_and_answers(env_310: Path, tmp_path: Path, started: Started) -> None:
    model = with_env("doubler", env_310, tmp_path)
    res = run_cli("verify", model, "--triton", "24.10", "--json",
                  "--inputs", VERIFY / "doubler.inputs.json",
                  "--expect", VERIFY / "doubler.expect.json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["passed"] and out["outputs"] == ["OUTPUT0"]
    assert out["checks"] == {"loaded": True, "modules_import": True, "answered": True,
                             "values_compared": True}
    assert Path(out["probe"]["prefix"]).resolve() == (model / "tritonpack-env").resolve()
    assert out["probe"]["imports"] == {"numpy": "ok"}
    assert out["python"].startswith("3.10.")
    assert started.named, "the server's log named no shm region or env dir"
    assert not left_over(started)


def test_expect_mismatch_is_an_inference_failure(env_310: Path, tmp_path: Path) -> None:
    model = with_env("doubler", env_310, tmp_path)
    res = run_cli("verify", model, "--triton", "24.10", "--inputs", VERIFY / "doubler.inputs.json",
                  "--expect", VERIFY / "doubler.wrong.json")
    assert res.exit_code == ExitCode.VERIFY_INFER == 12
    assert error_line(res.stderr) == (
        "error: doubler answered wrongly: output OUTPUT0: [2.0, 4.0, 6.0] differs from the "
        "expected [2.0, 4.0, 7.0]")


def test_failing_execute_on_made_up_inputs_says_the_environment_is_fine(env_310: Path,
                                                                        tmp_path: Path) -> None:
    model = with_env("failing_execute", env_310, tmp_path)
    res = run_cli("verify", model, "--triton", "24.10")
    assert res.exit_code == ExitCode.VERIFY_INPUTS == 17
    assert error_line(res.stderr) == (
        "error: failing_execute loaded; its execute() rejected tritonpack's made-up inputs "
        "(RuntimeError: execute() is broken on purpose): give real ones with --inputs FILE or a "
        "model_warmup")
    # with the user's own inputs it is the model's failure
    res = run_cli("verify", model, "--triton", "24.10", "--inputs", VERIFY / "doubler.inputs.json")
    assert res.exit_code == ExitCode.VERIFY_INFER == 12
    assert error_line(res.stderr) == (
        "error: failing_execute loaded but inference failed: Failed to process the request(s) "
        "for model 'failing_execute_0', message: RuntimeError: execute() is broken on purpose")


def test_wrong_output_dtype(env_310: Path, tmp_path: Path) -> None:
    model = with_env("wrong_output", env_310, tmp_path)
    res = run_cli("verify", model, "--triton", "24.10")
    assert res.exit_code == 12
    assert error_line(res.stderr) == (
        "error: wrong_output answered wrongly: output OUTPUT0: datatype INT32, config says FP32")


def test_module_missing_from_the_environment(env_310: Path, tmp_path: Path) -> None:
    model = with_env("hidden_import", env_310, tmp_path)
    res = run_cli("verify", model, "--triton", "24.10")
    assert res.exit_code == ExitCode.VERIFY_LOAD == 11
    assert error_line(res.stderr) == (
        "error: hidden_import did not load: module 'yaml' is missing from the environment")


def test_never_ready_is_bounded_and_leaves_nothing(env_310: Path, tmp_path: Path,
                                                   started: Started) -> None:
    model = with_env("never_ready", env_310, tmp_path)
    t0 = time.monotonic()
    res = run_cli("verify", model, "--triton", "24.10", "--timeout", "4")
    assert time.monotonic() - t0 < 45
    assert res.exit_code == 11
    assert error_line(res.stderr) == (
        "error: never_ready did not load within 4s: the model did not become ready in time "
        "(load timeout)")
    assert not left_over(started)


@pytest.mark.parametrize(("drop", "message"), [
    (("lib/python3.10/site-packages/numpy",), "numpy is missing: the Python backend stub imports it"),
    (("bin/activate",), "the environment has no bin/activate (Triton before 25.08 sources it)"),
])
def test_static_checks(env_310: Path, tmp_path: Path, drop: tuple[str, ...], message: str) -> None:
    model = with_env("doubler", env_310, tmp_path, drop=drop)
    res = run_cli("verify", model, "--triton", "24.10")
    assert res.exit_code == 11
    assert error_line(res.stderr) == f"error: tritonpack-env: {message}"


def test_python_version_mismatch_is_caught_before_the_stub_hangs(env_310: Path,
                                                                 tmp_path: Path) -> None:
    model = with_env("doubler", env_310, tmp_path)
    t0 = time.monotonic()
    res = run_cli("verify", model, "--triton", "24.12")
    assert time.monotonic() - t0 < 10
    assert res.exit_code == 11
    assert error_line(res.stderr) == (
        "error: tritonpack-env: Python version mismatch: the environment has Python 3.10, the "
        "Triton 24.12 stub is built for 3.12 (the stub would hang or fail to load)")


def test_pack_then_verify_archive(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--verify", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["verify"]["passed"]
    assert out["verify"]["probe"]["prefix"].startswith("/tmp/python_env_")


@pytest.mark.parametrize(("example", "extra"), [
    ("numpy_model", ()),
    ("image_model", ("--src", "shared_src")),
])
def test_examples_pack_and_verify(tmp_path: Path, example: str, extra: tuple[str, ...]) -> None:
    examples = Path(__file__).parents[1] / "examples"
    shutil.copytree(examples, tmp_path / "examples")
    args = [a if a != "shared_src" else str(tmp_path / "examples" / "shared_src") for a in extra]
    res = run_cli(tmp_path / "examples" / example, *args, "--triton", "24.10", "--python-from", "auto",
                  "--verify", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["verify"]["passed"]
    assert all(v == "ok" for v in out["verify"]["probe"]["imports"].values())


def test_numpy2_env_is_refused_by_the_24_10_runtime(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    assert run_cli(model, "--triton", "24.12", "--python-from", "auto", "-q").exit_code == 0
    res = run_cli("verify", model, "--triton", "24.12")
    assert res.exit_code == ExitCode.RUNTIME == 13
    assert error_line(res.stderr).startswith(
        "error: the local runtime is Triton 24.10, whose Python backend needs numpy<2; this "
        "environment has numpy 2.")


def test_model_warmup_inputs_are_sent_before_made_up_ones(env_310: Path, tmp_path: Path) -> None:
    model = with_env("b64_warmup", env_310, tmp_path)
    res = run_cli("verify", model, "--triton", "24.10", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["inputs"] == "model_warmup 'b64'"
    # the same model without its warmup entry: base64 (of a PNG), as execute() decodes it
    config = model / "config.pbtxt"
    text = config.read_text()
    start = text.index("model_warmup")
    config.write_text(text[:start] + text[text.index("} ]\n", start) + 4:])
    res = run_cli("verify", model, "--triton", "24.10", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["input_sources"] == {"TEXT": "synthesized from execute()'s use at model.py:14"}


def test_perf_analyzer_data_shipped_in_the_model_dir(env_310: Path, tmp_path: Path) -> None:
    model = with_env("perf_data", env_310, tmp_path)
    expect = tmp_path / "expect.json"
    expect.write_text(json.dumps({"LENGTH": [[12]]}))
    res = run_cli("verify", model, "--triton", "24.10", "--json", "--expect", expect)
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["inputs"] == "perf_analyzer data perf_input_data.json"
    # the same format given with --inputs
    (model / "perf_input_data.json").rename(tmp_path / "data.json")
    res = run_cli("verify", model, "--triton", "24.10", "--json", "--expect", expect,
                  "--inputs", tmp_path / "data.json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["inputs"] == "--inputs data.json"


@pytest.mark.parametrize(("name", "line"), [
    ("image", 12),  # height, width, _ = image.shape; if height < 32: raise
    ("uint8_image", 12),  # UINT8 [-1, -1, -1]: 1x1x1 is "Invalid input image shape"
    ("hwc_unpack", 10),  # h, w, c = pixels.shape in a helper method; c != 3: raise
    ("json_string", 15),  # json.loads(raw.decode()) then body["threshold"], body["labels"]
])
def test_inputs_shaped_as_execute_reads_them(env_310: Path, tmp_path: Path, name: str,
                                             line: int) -> None:
    model = with_env(name, env_310, tmp_path)
    res = run_cli("verify", model, "--triton", "24.10", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["passed"] and out["inputs"] == f"synthesized from execute()'s use at model.py:{line}"


# fitted_width: FEATURES [-1, -1] and weights fitted on 12 columns pickled beside model.py:
# one column is refused ("X has 1 features, but ... expecting 12"), 12 are what production
# sends. named_file: default_model_filename "handler.py" and no model.py: Triton's Python
# backend loads 1/handler.py; tritonpack read no model.py ("no model.py in 1/", exit 3) before.
@pytest.mark.parametrize(("name", "sources"), [
    ("fitted_width", {"FEATURES": "12 columns, as the estimator in weights.pkl was fitted"}),
    ("named_file", {"QUERY": "synthesized from execute()'s use at handler.py:15"}),
])
def test_inputs_production_sends(env_310: Path, tmp_path: Path, name: str,
                                 sources: dict[str, str]) -> None:
    """The request verify sends is shaped as production's: a table as wide as the pickled
    estimator, the code default_model_filename names read for its inputs."""
    model = with_env(name, env_310, tmp_path)
    res = run_cli("verify", model, "--triton", "24.10", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["passed"] and out["input_sources"] == sources


def test_image_bytes_model_gets_a_real_image(tmp_path: Path, session_cache: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Packed for real (pillow from PyPI), verified with --triton alone: PIL opens the PNG."""
    own_cache(tmp_path / "cache", session_cache, monkeypatch)  # a lock no other test packs
    model = tmp_path / "image_bytes"
    shutil.copytree(VERIFY / "image_bytes", model)
    res = run_cli(model, "--triton", "24.10", "--format", "dir", "--verify", "--json", "-q")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)["verify"]
    assert out["passed"] and out["input_sources"] == {
        "IMAGE_BYTES": "synthesized from execute()'s use at model.py:13"}


def test_a_stub_that_dies_in_execute_is_an_inference_failure(env_310: Path, tmp_path: Path,
                                                             started: Started) -> None:
    model = with_env("crash_execute", env_310, tmp_path)
    res = run_cli("verify", model, "--triton", "24.10", "--timeout", "30")
    assert res.exit_code == ExitCode.VERIFY_INFER
    assert error_line(res.stderr) == (
        "error: crash_execute loaded but inference failed: the Python backend stub "
        "crash_execute_0 died (the model's code exited or crashed: os._exit, a segfault, or out "
        "of memory)")
    assert not left_over(started)


def test_a_name_error_in_execute_is_a_bug_of_the_model(env_310: Path, tmp_path: Path) -> None:
    """Whatever the inputs (made up or the user's), a NameError is model.py's own bug: exit 18,
    not 17 ("rejected made-up inputs") nor 12."""
    model = with_env("name_error", env_310, tmp_path)
    for extra in ((), ("--inputs", VERIFY / "doubler.inputs.json")):
        res = run_cli("verify", model, "--triton", "24.10", *extra)
        assert res.exit_code == ExitCode.MODEL_BUG == 18
        assert error_line(res.stderr) == (
            "error: name_error/1/model.py:12 raises NameError: name 'Tuple' is not defined (a bug "
            "in the model, not in its inputs)")


def test_tobytes_of_a_bytes_array_is_a_bug_of_the_model(env_310: Path, tmp_path: Path) -> None:
    """payload[0].tobytes() of a [B, 1] BYTES tensor: the elements' addresses, so json.loads
    fails for every request (the JSON verify sends included): exit 18, not 17."""
    model = with_env("pointer_bytes", env_310, tmp_path)
    res = run_cli("verify", model, "--triton", "24.10")
    assert res.exit_code == ExitCode.MODEL_BUG
    assert error_line(res.stderr) == (
        "error: pointer_bytes/1/model.py:17 calls .tobytes() on an array of BYTES input PAYLOAD "
        "(rank 1): that is the addresses of its elements, not their bytes, whatever the request "
        "holds (a bug in the model, not in its inputs)")


def test_a_bytes_element_used_as_an_array_is_a_bug_of_the_model(env_310: Path,
                                                                tmp_path: Path) -> None:
    """An element of a BYTES tensor is a Python bytes whatever the request holds: its
    .tobytes() (a numpy method) fails for every input, so exit 18 with the line, not 17."""
    model = with_env("bytes_as_array", env_310, tmp_path)
    res = run_cli("verify", model, "--triton", "24.10")
    assert res.exit_code == ExitCode.MODEL_BUG == 18, res.stderr
    assert error_line(res.stderr) == (
        "error: bytes_as_array/1/model.py:13 raises AttributeError: 'bytes' object has no "
        "attribute 'tobytes' (a bug in the model, not in its inputs: a BYTES tensor's elements "
        "are bytes, whatever the request holds)")


def test_a_config_without_backend_is_served_by_the_python_backend(
        tmp_path: Path, session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own_cache(tmp_path / "cache", session_cache, monkeypatch)  # a lock no other test packs
    model = tmp_path / "no_backend"
    shutil.copytree(VERIFY / "no_backend", model)
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto",
                  "--format", "dir", "--verify", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    note = ('config.pbtxt sets no backend: Triton serves 1/model.py with the Python backend '
            '(backend: "python" would say so)')
    assert out["verify"]["passed"] and out["verify"]["notes"] == [note]
    lines = (model / "config.pbtxt").read_text().splitlines()
    assert not any(line.startswith("backend") for line in lines)  # left as the user wrote it
