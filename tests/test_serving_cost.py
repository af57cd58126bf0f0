"""tritonpack bench: what a packed model costs to serve, measured in verify's real tritonserver
(release 24.10, CPU). The server tests share one packed archive environment."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from packer.cost import procs, startup
from packer.cost.advice import advice, totals
from packer.cost.levels import BenchOptions, Level, Load
from packer.cost.measure import MIB, Memory, ModelCost, Region, measure
from packer.settings import from_command_line

from .conftest import FIXTURES, copy_model, run_cli, scratch
from .schemas import validate

VERIFY = FIXTURES / "verify"
PNG = b"\x89PNG\r\n\x1a\n"


# ---- no server: the start-up split from a real log, the advice lines, the usage errors ----

def test_startup_split_from_a_real_log() -> None:
    """The load lines of a real run: the archive's extraction (during the probe's load), two
    instances of the model, the stub-start model."""
    log = (FIXTURES / "logs" / "bench_startup.log").read_text(encoding="utf-8")
    split = startup.split(log, "doubler", Path("/tmp/bench-scratch/d2/doubler/tritonpack-env.tar.gz"))
    assert split is not None
    assert split.format == "archive"
    assert split.unpack == pytest.approx(28.243020 - 26.228023)
    assert split.stub_start == pytest.approx(30.121911 - 29.779118)
    assert split.initialize == pytest.approx((29.370818 - 28.736886) - split.stub_start)
    assert split.ready == pytest.approx((29.371329 - 28.734785) + split.unpack)
    assert split.env_root == "/tmp/python_env_KAWVfY/0"
    assert startup.split(log, "other_model", Path("/x.tar.gz")) is None


def test_startup_parts_add_up_when_the_stub_start_probe_is_the_slower() -> None:
    """The do-nothing model, loaded after the model, measures a stub's start; on a busy
    machine it took longer than the model's whole load (READY 0.53 s said 'unpack 0.41 s,
    stub start 0.41 s, initialize() 0.00 s'). The model's own stubs started within their
    load: the stub start is at most that, and unpack + stub start + initialize() is READY."""
    log = (FIXTURES / "logs" / "bench_startup.log").read_text(encoding="utf-8")
    slow = log.replace("I1204 17:27:30.121911", "I1204 17:27:31.121911")  # null: 1.34 s
    split = startup.split(slow, "doubler", Path("/tmp/bench-scratch/d2/doubler/tritonpack-env.tar.gz"))
    assert split is not None
    own = 29.370818 - 28.736886
    assert split.stub_start == pytest.approx(own) and split.initialize == 0
    assert split.unpack + split.stub_start + split.initialize == pytest.approx(split.ready, abs=0.01)


def test_unpack_ends_at_a_stub_on_the_extracted_environment() -> None:
    """In a repository, another model's stub on its own environment may start while this
    model's archive is still being extracted: the unpack ends at the first stub on what the
    extraction made (it ended at the other model's, 0.77 s instead of 2.0 s)."""
    lines = (FIXTURES / "logs" / "bench_startup.log").read_text(encoding="utf-8").splitlines()
    other = lines[2].replace("17:27:28.243020", "17:27:27.000000").replace(
        "python_env_KAWVfY", "python_env_OTHERx")
    log = "\n".join([*lines[:2], other, *lines[2:]]) + "\n"
    split = startup.split(log, "doubler", Path("/tmp/bench-scratch/d2/doubler/tritonpack-env.tar.gz"))
    assert split is not None
    assert split.unpack == pytest.approx(28.243020 - 26.228023)


def _cost(name: str, instances: int, stub: int, shm_peak: int, unpack: float,
          ready: float) -> ModelCost:
    return ModelCost(
        model=name, kind="stateless", inputs="made up from the config", instances=instances,
        load=Load("perf_analyzer", (Level(1, 100, 1.0, 2.0, 3.0, 500.0),)),
        server=Memory(10, 1, "", "tritonserver", 50 * MIB, 60 * MIB),
        stubs=tuple(Memory(11 + i, 10, f"{name}_0_{i}", "stub", stub, stub)
                    for i in range(instances)),
        regions=tuple(Region(f"triton_python_backend_shm_region_{i}", f"{name}_0_{i}", MIB,
                             shm_peak // instances) for i in range(instances)),
        startup=startup.Startup("archive", unpack, 0.2, 0.1, ready, "/tmp/python_env_x/0"),
        env_bytes=100 * MIB)


def test_advice_says_each_change_in_one_line() -> None:
    heavy = _cost("heavy", 2, 410_000_000, 72 * MIB, unpack=1.8, ready=2.1)
    assert advice([heavy]) == [
        "set --shm-size >= 90m for 2 instances (Docker's default is 64m; the measured peak "
        "plus 25%)",
        "heavy: `--format dir` would start in 0.3 s instead of 2.1 s",
        "heavy: this model's stub holds 410 MB: 2 instances need 820 MB",
    ]
    light = _cost("light", 1, 40_000_000, MIB, unpack=0.1, ready=0.6)
    assert advice([light]) == []
    # READY 1.81 s of which unpack 1.55 s, but the stub alone started in 0.52 s: the promise
    # is never below the parts measured beside it
    loaded = _cost("loaded", 1, 40_000_000, MIB, unpack=1.55, ready=1.81)
    loaded = dataclasses.replace(loaded, startup=dataclasses.replace(
        loaded.startup, stub_start=0.52, initialize=0.0))
    assert advice([loaded]) == ["loaded: `--format dir` would start in 0.5 s instead of 1.8 s"]
    both = totals([heavy, light])
    assert both.instances == 3 and both.startup == pytest.approx(2.7)
    assert both.memory == 60 * MIB + 2 * 410_000_000 + 40_000_000
    assert both.shm_needed == 92 * MIB  # (72 + 1) MiB + 25%, in whole MiB


def test_perf_analyzer_is_told_each_kind_and_gets_verify_s_request(tmp_path: Path) -> None:
    """--streaming for a decoupled model, sequences of verify's three requests, the batch
    dimension as -b; raw tensors as b64 (BF16 as its upper 16 bits), strings as content."""
    import base64

    import numpy as np

    from packer.cost import perf
    from packer.verify.kinds import plan

    def argv(config: dict[str, Any]) -> list[str]:
        return perf._argv(plan(config), "127.0.0.1:1", tmp_path / "in.json", 1, 2, 0.9)

    base = {"name": "m", "input": [{"name": "X", "data_type": "TYPE_FP32", "dims": [2]}]}
    decoupled = argv({**base, "model_transaction_policy": {"decoupled": True}})
    sequence = argv({**base, "sequence_batching": {}})
    assert "--streaming" in decoupled and "--sequence-length" not in decoupled
    assert sequence[sequence.index("--sequence-length") + 1] == "3"
    assert "--streaming" not in sequence
    assert decoupled[decoupled.index("--measurement-interval") + 1] == "300"  # 3 windows
    batched = plan({**base, "max_batch_size": 4,
                    "input": [{"name": "X", "data_type": "TYPE_BF16", "dims": [2]},
                              {"name": "S", "data_type": "TYPE_STRING", "dims": [1]}]})
    data, batch = perf.input_data(batched, {"X": np.array([[1.0, -2.0]], dtype=np.float32),
                                            "S": np.array([[b"hi"]], dtype=np.object_)})
    assert batch == 1
    assert data["data"][0]["S"] == {"content": ["hi"], "shape": [1]}
    bf16 = base64.b64decode(data["data"][0]["X"]["b64"])
    assert bf16 == bytes.fromhex("803f00c0") and data["data"][0]["X"]["shape"] == [2]
    with pytest.raises(perf.Unusable, match="a BYTES input is not text"):
        perf.input_data(batched, {"S": np.array([[b"\xff"]], dtype=np.object_)})


def test_bench_on_verify_refuses_the_docker_runtime(tmp_path: Path) -> None:
    res = run_cli("verify", tmp_path, "--bench", "--runtime", "docker")
    assert res.exit_code == 2
    assert res.stderr.splitlines()[-1] == ("Error: --bench measures the local runtime's "
                                           "processes: drop --runtime docker")


def test_concurrency_must_be_positive_whole_numbers(tmp_path: Path) -> None:
    res = run_cli("bench", tmp_path, "--concurrency", "0,2")
    assert res.exit_code == 2
    assert "'0,2' is not a list of positive whole numbers, like 1,2,4" in res.stderr


# ---- a real server ----

def _has_libb64() -> bool:
    """Whether the system library perf_analyzer links is installed (the linker's cache)."""
    out = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True, check=False)
    return "libb64.so.0d" in out.stdout


@pytest.fixture(scope="module")
def archive_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                session_cache: Path) -> Path:
    """One numpy environment for Python 3.10 (Triton 24.10), packed as an archive."""
    os.environ["TRITONPACK_CACHE"] = str(session_cache)
    model = copy_model("plain_numpy", scratch(request, tmp_path_factory, "bench-env"))
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "-q")
    assert res.exit_code == 0, res.stderr
    return model / "tritonpack-env.tar.gz"


def doubler(dest: Path, env: Path, instances: int, name: str = "doubler") -> Path:
    """The doubler fixture, as ``name``, with ``instances`` instances on (a hard link of)
    ``env``."""
    model = dest / name
    shutil.copytree(VERIFY / "doubler", model)
    os.link(env, model / env.name)
    config = model / "config.pbtxt"
    text = config.read_text(encoding="utf-8").replace('"$$TRITON_MODEL_DIRECTORY/tritonpack-env"',
                                                     f'"$$TRITON_MODEL_DIRECTORY/{env.name}"')
    text = text.replace('name: "doubler"', f'name: "{name}"')
    config.write_text(text + f"instance_group [ {{ kind: KIND_CPU, count: {instances} }} ]\n",
                      encoding="utf-8")
    return model


@pytest.mark.slow
@pytest.mark.server
def test_figures_are_real(archive_env: Path, tmp_path: Path) -> None:
    """perf_analyzer's latencies and throughput, each stub's own RSS (read again from its own
    PID while the server still runs), the shm regions that existed, the start-up split."""
    from packer.verify.stage import verify

    model = doubler(tmp_path, archive_env, instances=2)
    seen: dict[str, Any] = {}

    def hook(session: Any) -> ModelCost:
        cost = measure(session, BenchOptions(concurrency=(1, 2), seconds=0.6))
        server = session.server.process.pid
        seen["children"] = {s.pid: s for s in procs.stubs_of(server)}
        seen["rss"] = {s.pid: procs.rss(s.pid) for s in cost.stubs}
        seen["exe"] = {s.pid: os.readlink(f"/proc/{s.pid}/exe") for s in cost.stubs}
        seen["regions"] = {r.name: (Path("/dev/shm") / r.name).stat().st_size
                           for r in cost.regions}
        seen["server"] = server
        return cost

    report = verify(model, from_command_line({"triton": "24.10", "offline": True}),
                    measure=hook)
    cost = report.measured
    assert isinstance(cost, ModelCost)
    if _has_libb64():  # .ci/run installs it (and the bench extra): perf_analyzer measures
        assert cost.load.tool == "perf_analyzer", cost.load.why
    else:  # a fresh machine without Debian's libb64-0d: the loop, saying why
        assert (cost.load.tool, cost.load.why) == (
            "client loop", "perf_analyzer needs libb64.so.0d (Debian's libb64-0d)")
    assert [lv.concurrency for lv in cost.load.levels] == [1, 2]
    for lv in cost.load.levels:
        assert lv.requests > 0 and lv.throughput > 0
        assert 0 < lv.p50_ms <= lv.p90_ms <= lv.p99_ms
    assert cost.server.pid == seen["server"] and cost.instances == 2
    assert sorted(s.instance for s in cost.stubs) == ["doubler_0_0", "doubler_0_1"]
    for stub in cost.stubs:
        assert stub.ppid == cost.server.pid != stub.pid
        assert stub.pid in seen["children"] and seen["children"][stub.pid].model == "doubler"
        assert Path(seen["exe"][stub.pid]).name == "triton_python_backend_stub"
        assert 10 * MIB < stub.idle <= stub.load
        assert abs(seen["rss"][stub.pid] - stub.load) < 0.5 * stub.load  # its own, not another's
    assert cost.server.load >= cost.server.idle > 10 * MIB
    assert len({s.region for s in seen["children"].values()}) == len(seen["children"])
    assert {r.name for r in cost.regions} == set(seen["regions"])  # they existed, in /dev/shm
    assert all(r.peak >= MIB and r.idle >= MIB for r in cost.regions)  # the default 1 MiB
    assert cost.shm_needed >= cost.shm_peak * 1.25
    split = cost.startup
    assert split is not None and split.format == "archive"
    assert split.unpack > 0 and split.stub_start > 0 and split.ready >= split.unpack
    assert split.env_root.startswith("/tmp/python_env_")
    assert cost.env_bytes > 50 * MIB  # numpy and a CPython, unpacked
    # what this run's server made is gone (other servers on the machine are not ours to judge)
    assert not any((Path("/dev/shm") / r.name).exists() for r in cost.regions)
    assert not Path(split.env_root).exists()


@pytest.mark.slow
@pytest.mark.server
def test_repository_json_validates_and_the_chart_is_a_png(archive_env: Path,
                                                            tmp_path: Path) -> None:
    """A repository: one row per model and the totals; the client loop when asked; --json
    against docs/schema/bench.json; --chart a PNG."""
    repo = tmp_path / "repo"
    repo.mkdir()
    doubler(repo, archive_env, instances=2)
    doubler(repo, archive_env, instances=1, name="single")
    chart = tmp_path / "cost.png"
    res = run_cli("bench", repo, "--triton", "24.10", "--json", "--load-tool", "loop",
                  "--concurrency", "1,2", "--duration", "0.5", "--chart", chart)
    assert res.exit_code == 0, res.stdout[:200] + json.dumps(json.loads(res.stdout)["failed"])
    out = json.loads(res.stdout)
    validate(out)  # docs/schema/bench.json (run_cli checks it too; here on purpose)
    assert out["repository"] and out["failed"] == []
    rows = {m["model"]: m for m in out["models"]}
    assert set(rows) == {"doubler", "single"}
    assert [rows[n]["instances"] for n in ("doubler", "single")] == [2, 1]
    for row in rows.values():
        assert row["tool"] == "client loop" and row["fallback_reason"] == "--load-tool loop"
        assert all(0 < lv["p50_ms"] <= lv["p99_ms"] for lv in row["levels"])
        assert len(row["memory"]["stubs"]) == len(row["shm"]["regions"]) == row["instances"]
    stubs = sum(s["load_bytes"] for m in out["models"] for s in m["memory"]["stubs"])
    servers = max(m["memory"]["server"]["load_bytes"] for m in out["models"])
    assert out["totals"]["memory_bytes"] == stubs + servers
    assert out["totals"]["instances"] == 3
    assert out["chart"] == str(chart)
    data = chart.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000


@pytest.mark.slow
@pytest.mark.server
def test_verify_bench_carries_the_cost_in_its_report(archive_env: Path, tmp_path: Path) -> None:
    """verify --bench: verify's report (docs/schema/verify.json) with the model's cost under
    "bench", measured by perf_analyzer (--load-tool perf_analyzer: no fallback)."""
    model = doubler(tmp_path, archive_env, instances=1)
    args = ("verify", model, "--triton", "24.10", "--bench", "--load-tool", "perf_analyzer",
            "--concurrency", "2", "--duration", "1")  # windows of 0.33 s: 0.13 s ones were
    res = run_cli(*args, "--json")  # never stable with the suite's other workers running
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    validate(out)
    assert out["passed"] and out["bench"]["tool"] == "perf_analyzer"
    assert [lv["concurrency"] for lv in out["bench"]["levels"]] == [2]
    assert [s["instance"] for s in out["bench"]["memory"]["stubs"]] == ["doubler_0_0"]
