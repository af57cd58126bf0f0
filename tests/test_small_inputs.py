"""Small local inputs that used to end in exit 70 (a bug in tritonpack): each is now one
sentence and a named exit code, and nothing in the model directory changes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from packer.core.errors import ExitCode

from .conftest import error_line, run_cli, snapshot

Copy = Callable[..., Path]


def test_a_requirements_chain_400_files_deep_is_refused(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    for i in range(400):
        (model / f"req{i}.txt").write_text(f"-r req{i + 1}.txt\n")
    (model / "req400.txt").write_text("numpy<2\n")
    (model / "requirements.txt").write_text("-r req0.txt\n")
    before = snapshot(model)
    res = run_cli("scan", model, "--triton", "24.10")
    assert res.exit_code == ExitCode.MODEL == 3, res.stderr
    assert error_line(res.stderr) == (
        "error: plain_numpy/req30.txt:1: -r req31.txt: -r includes nested deeper than 32 files "
        "or more than 256 in all: refused")
    assert snapshot(model) == before


def test_a_diamond_of_includes_is_refused_not_read_two_to_the_thirty_times(
        model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    for i in range(30):
        (model / f"req{i}.txt").write_text(f"-r req{i + 1}.txt\n-r req{i + 1}.txt\n")
    (model / "req30.txt").write_text("numpy<2\n")
    (model / "requirements.txt").write_text("-r req0.txt\n")
    res = run_cli("scan", model, "--triton", "24.10")
    assert res.exit_code == ExitCode.MODEL, res.stderr
    assert error_line(res.stderr).endswith(
        "-r includes nested deeper than 32 files or more than 256 in all: refused")


def test_a_pickle_naming_a_path_as_its_module_is_a_note_not_a_crash(model_copy: Copy) -> None:
    """Protocol 0's GLOBAL opcode: module '../../etc', name 'passwd'. No module is looked for
    (no path is made of it), and the scan says what the pickle holds."""
    model = model_copy("plain_numpy")
    (model / "1" / "model.pkl").write_bytes(b"c../../etc\npasswd\n)R.")
    before = snapshot(model)
    res = run_cli("scan", model, "--triton", "24.10", "--json")
    assert res.exit_code == 0, res.stderr
    scanned = json.loads(res.stdout)
    assert ("plain_numpy/1/model.pkl: names '../../etc', which is not a Python module name (no "
            "unpickler could import it)") in scanned["warnings"]
    assert [i["import"] for i in scanned["imports"]] == ["triton_python_backend_utils", "numpy"]
    assert snapshot(model) == before


def test_a_deeply_nested_journal_is_refused_and_nothing_touched(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    (model / ".tritonpack-journal.json").write_text("[" * 100_000 + "]" * 100_000)
    before = snapshot(model)
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == ExitCode.PACK == 9, res.stderr
    assert error_line(res.stderr) == (
        f"error: {model}/.tritonpack-journal.json: unreadable commit journal of an interrupted "
        "run: refused, nothing was touched")
    assert snapshot(model) == before


def test_a_json_request_of_a_million_empty_lists_is_refused_before_it_is_parsed(
        model_copy: Copy, tmp_path: Path) -> None:
    """3 MB of ``[]`` would be ~60 MB of Python lists; 64 MiB of them, 1.8 GB."""
    model = model_copy("plain_numpy")
    inputs = tmp_path / "lists.json"
    inputs.write_text('{"INPUT0": [' + ",".join(["[]"] * 1_000_001) + "]}")
    before = snapshot(model)
    res = run_cli("verify", model, "--inputs", inputs)
    assert res.exit_code == ExitCode.USAGE == 2, res.stderr
    assert error_line(res.stderr) == (
        f"error: --inputs {inputs}: more than 1000000 JSON lists and objects: no request of "
        "tensors needs that many")
    assert snapshot(model) == before


def test_a_module_name_too_long_for_a_file_is_looked_for_nowhere(model_copy: Copy) -> None:
    """A pickle naming a 5000-character module: no path is made of it (was ENAMETOOLONG,
    exit 70, in the search for a forgotten --src package)."""
    model = model_copy("plain_numpy")
    (model / "1" / "model.pkl").write_bytes(b"c" + b"a" * 5000 + b"\npasswd\n)R.")
    before = snapshot(model)
    res = run_cli("scan", model, "--triton", "24.10", "--json")
    assert res.exit_code == 0, res.stderr
    assert "a" * 5000 in [i["import"] for i in json.loads(res.stdout)["imports"]]
    assert snapshot(model) == before


def test_a_npz_listing_thousands_of_members_is_refused_before_they_are_read(
        model_copy: Copy, tmp_path: Path) -> None:
    import zipfile

    model = model_copy("plain_numpy")
    inputs = tmp_path / "many.npz"
    with zipfile.ZipFile(inputs, "w") as zipped:
        for i in range(1100):
            zipped.writestr(f"I{i}.npy", b"")
    res = run_cli("verify", model, "--inputs", inputs)
    assert res.exit_code == ExitCode.USAGE, res.stderr
    assert error_line(res.stderr) == (
        f"error: --inputs {inputs}: more than 1024 members, more than the inputs of any model")
