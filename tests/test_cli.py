"""The command line as a user meets it: help that teaches, JSON that is versioned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from packer.core.errors import ExitCode

from .conftest import FIXTURES, MODELS, SRC, copy_model, error_line, run_cli


def test_help_teaches_by_example() -> None:
    res = run_cli("--help")
    assert res.exit_code == 0
    assert "tritonpack models/my_model/" in res.stdout
    for cmd in ("scan", "lock", "pack", "export", "targets"):
        assert cmd in res.stdout
    assert "--frozen" in run_cli("pack", "--help").stdout


def test_python_dash_m_works() -> None:
    out = subprocess.run([sys.executable, "-m", "packer", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("tritonpack, version ")


def test_console_script_passes_exit_codes_and_output_through(tmp_path: Path) -> None:
    """``python -m packer`` leaves through os._exit: nothing written may be lost, no code changed."""
    env = {**os.environ, "TRITONPACK_CACHE": str(tmp_path / "cache")}
    bad = subprocess.run([sys.executable, "-m", "packer", "scan", FIXTURES / "bad" / "no_config"],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == ExitCode.MODEL
    assert bad.stderr.startswith(f"error: {FIXTURES / 'bad' / 'no_config'}: no config.pbtxt\n")
    good = subprocess.run([sys.executable, "-m", "packer", "scan", MODELS / "vision", "--json",
                           "--triton", "24.10"], capture_output=True, text=True, env=env)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["command"] == "scan"  # the whole object, flushed
    usage = subprocess.run([sys.executable, "-m", "packer", "scan", "--no-such-flag"],
                           capture_output=True, text=True, env=env)
    assert usage.returncode == ExitCode.USAGE and "No such option" in usage.stderr


def test_scan_table() -> None:
    res = run_cli("scan", MODELS / "vision", "--triton", "24.10", "-q")
    assert res.exit_code == 0
    rows = {line.split()[0]: line.split()[1:3] for line in res.stdout.splitlines()[3:12]}
    assert rows["cv2"] == ["third-party", "opencv-python-headless"]
    assert rows["PIL"] == ["third-party", "pillow"]
    assert rows["yaml"] == ["third-party", "pyyaml"]  # the import table's normalized name
    assert rows["sklearn"] == ["third-party", "scikit-learn"]
    assert rows["os"] == ["stdlib", "-"]
    assert "requirements: numpy<2, opencv-python-headless, pillow, pyyaml, scikit-image, " \
        "scikit-learn" in res.stdout


def test_scan_json_is_versioned() -> None:
    res = run_cli("scan", MODELS / "with_src", "--src", SRC, "--json")
    data = json.loads(res.stdout)
    assert data["schema"] == "tritonpack/v1" and data["command"] == "scan"
    by_import = {row["import"]: row for row in data["imports"]}
    assert by_import["featurize"]["kind"] == "local"
    assert by_import["yaml"]["distribution"] == "pyyaml"
    assert {m["name"] for m in data["local_modules"] if m["bundled"]} == {
        "featurize", "featurize.constants", "featurize.scale"}
    assert data["requirements"] == ["numpy", "pyyaml"]


def test_unknown_release_and_bad_python() -> None:
    res = run_cli("scan", MODELS / "plain_numpy", "--triton", "19.01")
    assert res.exit_code == ExitCode.TARGET == 7
    assert res.stderr.splitlines()[0] == "error: Triton release 19.01 is not in the release table"
    res = run_cli("scan", MODELS / "plain_numpy", "--python", "2.7")
    assert (res.exit_code, res.stderr.splitlines()[0]) == (7, "error: Python 2.7 is not supported")


def test_targets_lists_python_per_release() -> None:
    res = run_cli("targets", "--json")
    rows = {r["release"]: r for r in json.loads(res.stdout)["targets"]}
    assert rows["24.10"]["python"] == "3.10" and rows["24.10"]["numpy"] == "<2"
    assert rows["24.11"]["python"] == "3.12" and rows["24.11"]["numpy"] == ""
    assert rows["23.05"]["python"] == "3.10"


def test_optional_import_installed_only_when_declared() -> None:
    data = json.loads(run_cli("scan", MODELS / "optional", "--json").stdout)
    assert data["requirements"] == ["numpy", "ujson"]  # orjson: optional, undeclared
    rows = {r["import"]: r for r in data["imports"]}
    assert rows["orjson"]["optional"] and rows["ujson"]["source"] == "declared"


def test_unknown_import_is_a_guess_with_a_warning() -> None:
    res = run_cli("scan", MODELS / "unknown_import")
    assert "note  import 'tritonpack_no_such_distribution_xyz' (unknown_import/1/model.py:2): " \
        "no recipe or declaration names its distribution" in res.stderr


def test_torch_locks_from_the_index_matching_the_release_cuda() -> None:
    from packer.resolve.recipebook import load
    from packer.resolve.target import resolve_target, torch_index

    book = load()
    for release, want in (("24.10", "cu126"), ("25.06", "cu129"), ("26.10", "cu130"),
                          ("23.05", "cu121")):
        target = resolve_target(book, release)
        assert torch_index(book, target, ("torch>=2", "numpy")) == (
            f"https://download.pytorch.org/whl/{want}")
        assert torch_index(book, target, ("numpy",)) is None  # no torch: no extra index
    cpu = resolve_target(book, "24.10", torch="cpu")
    assert torch_index(book, cpu, ("torchvision",)) == "https://download.pytorch.org/whl/cpu"
    none = resolve_target(book, "24.10", torch="none")
    assert torch_index(book, none, ("torch",)) is None


def test_inputs_are_synthesised_for_every_datatype() -> None:
    """Every input, optional ones too, from the config as the server reports it (JSON)."""
    from packer.verify.infer import synthesise
    from packer.verify.kinds import DATATYPES, plan

    types = sorted(DATATYPES)
    config = {
        "name": "m", "max_batch_size": 4,
        "input": [{"name": f"I{i}", "data_type": t, "dims": [-1, 2]} for i, t in enumerate(types)]
        + [{"name": "OPT", "data_type": "TYPE_FP32", "dims": [1], "optional": True}],
    }
    request = synthesise(plan(config))
    assert request["OPT"].shape == (1, 1)  # optional inputs are sent too
    assert set(request) == {f"I{i}" for i in range(len(types))} | {"OPT"}
    for i in range(len(types)):
        assert request[f"I{i}"].shape == (1, 1, 2)  # a batch of one, -1 as 1
    assert request[f"I{types.index('TYPE_STRING')}"].tolist() == [[[b"tritonpack"] * 2]]
    assert request[f"I{types.index('TYPE_BOOL')}"].tolist() == [[[True, True]]]
    # the installed client's own numpy form of BF16: ml_dtypes' bfloat16 (tritonclient >= 2.52),
    # float32 (<= 2.51, which the bench extra installs for its perf_analyzer)
    from tritonclient.utils import triton_to_np_dtype

    bf16 = request[f"I{types.index('TYPE_BF16')}"].dtype
    assert bf16 == triton_to_np_dtype("BF16") and str(bf16) in ("bfloat16", "float32")


def test_sequence_control_inputs_are_left_to_triton() -> None:
    from packer.verify.kinds import plan

    config = {
        "name": "s", "max_batch_size": 0,
        "input": [{"name": "INPUT", "data_type": "TYPE_INT32", "dims": [1]}],
        "sequence_batching": {"control_input": [
            {"name": "START", "control": [{"kind": "CONTROL_SEQUENCE_START"}]},
            {"name": "CORRID", "control": [{"kind": "CONTROL_SEQUENCE_CORRID",
                                            "data_type": "TYPE_STRING"}]}]},
        "model_transaction_policy": {"decoupled": True},
    }
    p = plan(config)
    assert [t.name for t in p.inputs] == ["INPUT"]
    assert (p.sequence, p.string_id, p.decoupled, p.kind()) == (True, True, True,
                                                                 "decoupled sequence")


def test_a_config_name_other_than_the_directory_is_a_warning(tmp_path: Path) -> None:
    """Triton refuses it ("directory name must equal model name"), but the model may be
    deployed under its own name: warn, on every command that reads the model."""
    import shutil

    model = shutil.copytree(MODELS / "plain_numpy", tmp_path / "renamed")
    warning = ("config.pbtxt names the model 'plain_numpy' but its directory is 'renamed': "
               "Triton loads it only from a directory named 'plain_numpy' (directory name must "
               "equal model name)")
    res = run_cli("scan", model, "--json")
    assert res.exit_code == 0
    assert json.loads(res.stdout)["warnings"] == [warning]
    assert f"note  {warning}" in run_cli("scan", model).stderr
    same = run_cli("scan", MODELS / "plain_numpy", "--json")
    assert json.loads(same.stdout)["warnings"] == []


def test_verify_refuses_a_model_its_directory_misnames_before_any_server(tmp_path: Path) -> None:
    """Triton loads a model only from a directory of its config's name: said in one sentence
    (exit 3), not as a load that failed (exit 11) or a URL the name broke (exit 70)."""
    model = copy_model("plain_numpy", tmp_path / "my models", as_name="numpy model")
    res = run_cli("verify", model, "--triton", "24.10")
    assert (res.exit_code, error_line(res.stderr)) == (ExitCode.MODEL, (
        "error: config.pbtxt names the model 'plain_numpy' but its directory is 'numpy model': "
        "Triton loads it only from a directory named 'plain_numpy' (directory name must equal "
        "model name)"))
