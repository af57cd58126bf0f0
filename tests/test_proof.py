"""Say what was targeted, and what was proved: the target and where it came from on the first
line of every command, a --verify the runtime cannot carry out refused before anything is
written, and a verify report that says which server stood in for which target."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from packer.core.errors import ExitCode
from packer.resolve.recipebook import load
from packer.resolve.target import resolve_target
from packer.verify.docker import build_cause
from packer.verify.fits import proof
from packer.verify.infer import Output
from packer.verify.requestfile import RequestFileError, check_request_file
from packer.verify.tensors import compare_all

from .conftest import FIXTURES, MODELS, error_line, run_cli, snapshot
from .freshcache import own_cache

Copy = Callable[..., Path]
NEWEST = "26.10"
DEFAULT_LINE = (f"  target  Triton {NEWEST} (Python 3.12, linux-64): the newest known release, by "
                "default (pin one with --triton)")


def first_line(stderr: str) -> str:
    return stderr.splitlines()[0]


# --- the target and where it came from ------------------------------------------------------

def test_scan_names_a_default_target_first(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    res = run_cli("scan", model)
    assert res.exit_code == 0, res.stderr
    assert first_line(res.stderr) == DEFAULT_LINE
    assert res.stdout.splitlines()[0] == (
        f"plain_numpy (version 1) for Triton {NEWEST} (Python 3.12, linux-64): the newest known "
        "release, by default (pin one with --triton)")  # as the target line: no nested brackets
    assert json.loads(run_cli("scan", model, "--json").stdout)["target_from"] == "default"


def test_target_from_the_command_line_and_from_tritonpack_toml(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    res = run_cli("scan", model, "--triton", "24.08")
    assert first_line(res.stderr) == "  target  Triton 24.08 (Python 3.10, linux-64): from --triton"
    (model / "tritonpack.toml").write_text('[options]\ntriton = "24.10"\n')
    res = run_cli("scan", model)
    assert first_line(res.stderr) == (
        "  target  Triton 24.10 (Python 3.10, linux-64): from tritonpack.toml")


@pytest.mark.parametrize("command", ["pack", "lock", "scan", "verify", "check"])
def test_help_states_the_default_release_as_it_is(command: str) -> None:
    res = run_cli(command, "--help")
    text = " ".join(res.stdout.split())
    assert ("Default: [options] triton in tritonpack.toml, else the release tritonpack.lock was "
            f"made for, else the newest known ({NEWEST}; see `tritonpack targets`).") in text


# --- verify of something that is not packed: a usage error before any server ----------------

def test_verify_of_an_unpacked_model_is_a_usage_error(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    res = run_cli("verify", model)
    assert res.exit_code == ExitCode.USAGE == 2
    assert error_line(res.stderr) == (
        f"error: plain_numpy is not packed: {model}/config.pbtxt has no EXECUTION_ENV_PATH, so "
        "there is nothing to verify")
    assert f"hint: pack it first: tritonpack {model} --verify" in res.stderr
    assert "starting tritonserver" not in res.stderr


def test_the_pack_hint_carries_the_release_and_src_it_was_given(model_copy: Copy,
                                                                tmp_path: Path) -> None:
    """Following the hint packs what was asked: the hint for `verify --triton R --src DIR`
    of an unpacked model names both (it said `tritonpack MODEL --verify`, which packed for
    the newest release without the user's package: exit 5 or 13)."""
    model = model_copy("plain_numpy")
    src = tmp_path / "shared src"
    src.mkdir()
    res = run_cli("verify", model, "--triton", "24.10", "--src", src)
    assert res.exit_code == ExitCode.USAGE
    assert (f"hint: pack it first: tritonpack {model} --triton 24.10 --src '{src}' --verify"
            in res.stderr)


def test_inspect_of_an_unpacked_model_dir_is_a_usage_error(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    res = run_cli("inspect", model)
    assert res.exit_code == ExitCode.USAGE
    assert error_line(res.stderr) == (
        f"error: plain_numpy is a model dir, not an environment, and is not packed: "
        f"{model}/config.pbtxt has no EXECUTION_ENV_PATH to inspect")


# --- what a pass proves ---------------------------------------------------------------------

def test_proof_says_which_server_stood_in_for_which_target() -> None:
    book = load()
    t2610, t2410 = resolve_target(book, "26.10"), resolve_target(book, "24.10")
    local = proof("local", "24.10", t2610, None)
    assert local.statement == "local 24.10 server standing in for target 26.10"
    assert not local.own_image
    assert local.not_covered[0] == (
        f"the target image's libstdc++ (GLIBCXX {t2610.glibcxx}) and glibc ({t2610.glibc}): "
        "checked from the ELF symbol versions, not run")
    assert local.not_covered[2] == (
        "the Python backend of 26.10 itself: the stub that ran was 24.10's")
    same = proof("local", "24.10", t2410, None)
    assert same.statement == "local 24.10 server standing in for target 24.10's image"
    own = proof("docker", "26.10", t2610, t2610.image)
    assert (own.statement, own.not_covered) == (
        f"the target's own image {t2610.image} (Triton 26.10)", ())
    other = proof("docker", "26.10", t2610, "my/triton:1")
    assert other.statement == "image my/triton:1 (--image) standing in for target 26.10's image"


def _responses(*values: int) -> list[dict[str, Output]]:
    return [{"OUT": Output("OUT", "INT32", (1,), np.array([v], dtype=np.int32))}
            for v in values]


def test_expect_compares_every_response_of_a_stream(tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text('{"OUT": [3]}')
    assert compare_all(_responses(3, 3, 3), one) == []
    assert compare_all(_responses(3, 3, 4), one) == [
        "response 3 of 3: output OUT: [4] differs from the expected [3]"]
    listed = tmp_path / "listed.json"
    listed.write_text('[{"OUT": [1]}, {"OUT": [2]}]')
    check_request_file(listed, "--expect")
    assert compare_all(_responses(1, 2), listed) == []
    assert compare_all(_responses(1, 5), listed) == [
        "response 2 of 2: output OUT: [5] differs from the expected [2]"]
    assert compare_all(_responses(1, 2, 3), listed) == ["3 responses, --expect lists 2"]
    assert compare_all([], listed) == ["no response to compare with --expect"]


@pytest.mark.parametrize(("content", "message"), [
    ("[]", "--expect {path}: an empty list: no response to compare"),
    ('[{"OUT": [1]}, 2]', "--expect {path}: entry 2 is a JSON number, not an object of outputs "
     "by name"),
])
def test_a_bad_expect_list_is_a_usage_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "expect.json"
    path.write_text(content)
    with pytest.raises(RequestFileError) as err:
        check_request_file(path, "--expect")
    assert (err.value.exit_code, err.value.message) == (
        ExitCode.USAGE, message.replace("{path}", str(path)))


@pytest.mark.parametrize(("error", "cause"), [
    ('Get "https://nvcr.io/v2/": dial tcp: lookup nvcr.io on 127.0.0.11:53: no such host',
     "lookup nvcr.io: no such host"),
    ("failed to resolve source metadata: lookup nvcr.io: no such host",
     "lookup nvcr.io: no such host"),
    ("pull access denied for tritonpack-test/nope, repository does not exist or may require "
     "'docker login': denied", "pull access denied for tritonpack-test/nope"),
    ("something else\nand more", "something else"),
    ("", ""),
])
def test_a_failed_image_build_names_its_cause(error: str, cause: str) -> None:
    assert build_cause(error) == cause


# --- slow: a real lock and a real pack ------------------------------------------------------

@pytest.mark.slow
def test_verify_the_runtime_cannot_run_is_refused_before_anything_is_written(
        model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    before = snapshot(model)
    res = run_cli(model, "--python-from", "auto", "--verify")
    assert res.exit_code == ExitCode.RUNTIME == 13
    assert first_line(res.stderr) == DEFAULT_LINE
    assert re.fullmatch(
        r"error: the local runtime is Triton 24\.10, whose Python backend needs numpy<2; the lock "
        r"for Triton 26\.10 pins numpy 2\.[0-9.]+: it cannot run this target, so nothing was "
        r"written", error_line(res.stderr)), res.stderr
    assert "hint: verify in the target's image (--runtime docker), or pack for --triton 24.10 " \
        "to verify here" in res.stderr
    assert snapshot(model) == before and sorted(p.name for p in model.iterdir()) == [
        "1", "config.pbtxt"]


@pytest.mark.parametrize("runtime", ["local", "docker"])
def test_a_misnamed_model_dir_is_refused_before_anything_is_resolved(tmp_path: Path,
                                                                      runtime: str) -> None:
    """With config.pbtxt's other checks, right after the target line: no scan, no index asked
    (an unreachable one would be exit 5), no lock, nothing written."""
    model = tmp_path / "renamed"
    shutil.copytree(MODELS / "plain_numpy", model)
    before = snapshot(model)
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--verify",
                  "--runtime", runtime, "--index-url", "http://127.0.0.1:9/simple")
    assert res.exit_code == ExitCode.MODEL
    assert res.stderr.splitlines()[:2] == [
        "  target  Triton 24.10 (Python 3.10, linux-64): from --triton",
        "error: config.pbtxt names the model 'plain_numpy' but its directory is 'renamed': "
        "Triton loads it only from a directory named 'plain_numpy' (directory name must equal "
        "model name); nothing was written"]
    assert snapshot(model) == before


@pytest.mark.slow
def test_the_lock_is_named_as_the_target_source(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == 0, res.stderr
    target = res.stdout.splitlines()[1]
    assert re.fullmatch(r"  target  Triton 24\.10 \(Python 3\.10\.\d+, linux-64\): from --triton",
                        target), target
    res = run_cli("scan", model)
    assert first_line(res.stderr) == (
        "  target  Triton 24.10 (Python 3.10, linux-64): from tritonpack.lock")
    res = run_cli("lock", model, "--json", "--python-from", "auto")
    assert json.loads(res.stdout)["target_from"] == "tritonpack.lock"


@pytest.mark.slow
@pytest.mark.server
def test_the_report_says_what_it_proved_and_inspect_reads_the_model_dir(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--verify")
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    head = next(line for line in lines if line.startswith("verified "))
    assert head == ("verified plain_numpy: loads and answers (local 24.10 server standing in for "
                    "target 24.10's image)")
    gaps = [line for line in lines if line.startswith("  not covered  ")]
    assert gaps[0] == ("  not covered  the target image's libstdc++ (GLIBCXX 3.4.30) and glibc "
                       "(2.35): checked from the ELF symbol versions, not run")
    res = run_cli("verify", model, "--json")
    out = json.loads(res.stdout)
    assert out["proof"]["statement"] == ("local 24.10 server standing in for target 24.10's "
                                         "image")
    assert (out["proof"]["target_image"], out["proof"]["server_release"]) == (False, "24.10")
    assert len(out["proof"]["not_covered"]) == 3
    res = run_cli("inspect", model)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines()[0].startswith(
        f"{model}/tritonpack-env.tar.gz: ok for Triton 24.10")


@pytest.mark.slow
@pytest.mark.server
def test_expect_on_a_decoupled_model_compares_every_response(
        tmp_path: Path, session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own_cache(tmp_path / "cache", session_cache, monkeypatch)  # a lock no other test packs
    model = tmp_path / "square_int32"
    shutil.copytree(FIXTURES / "public" / "square_int32", model)
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--format", "dir", "-q")
    assert res.exit_code == 0, res.stderr
    inputs = tmp_path / "in.json"
    inputs.write_text('{"IN": [3]}')
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text('[{"OUT": [3]}, {"OUT": [3]}, {"OUT": [3]}]')
    bad.write_text('[{"OUT": [3]}, {"OUT": [3]}, {"OUT": [4]}]')
    res = run_cli("verify", model, "--inputs", inputs, "--expect", good)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines()[0].startswith(
        "verified square_int32: loads and answers the expected values (")
    assert f"  values       compared with --expect {good}: every response matches" in res.stdout
    res = run_cli("verify", model, "--inputs", inputs, "--expect", bad)
    assert res.exit_code == ExitCode.VERIFY_INFER
    assert error_line(res.stderr) == (
        "error: square_int32 answered wrongly: response 3 of 3: output OUT: [3] differs from "
        "the expected [4]")


@pytest.mark.slow
def test_a_misspelt_import_is_announced_once(tmp_path: Path) -> None:
    """No note that it is "on the index" before the error that says it is not: one error,
    which says the name was a guess and what it is close to."""
    model = shutil.copytree(FIXTURES / "bad" / "misspelt_import", tmp_path / "misspelt_import")
    before = snapshot(model)
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == ExitCode.RESOLVE == 5
    assert error_line(res.stderr) == (
        "error: import 'nmupy' (misspelt_import/1/model.py:1) needs distribution 'nmupy' "
        "(guessed from its name), which the package index does not have: did you mean 'numpy'?")
    assert [line for line in res.stderr.splitlines() if "nmupy" in line] == [
        error_line(res.stderr),
        "hint: if 'nmupy' is your own code, pass --src DIR; if its distribution has another "
        "name, declare it in tritonpack.toml: [imports] nmupy = \"NAME\""]
    assert snapshot(model) == before


@pytest.mark.parametrize(("line", "message"), [
    ('input [ { name: "X" data_typ: TYPE_FP32 dims: [ 1 ] } ]',
     "3:21: unknown field 'data_typ' in ModelInput: did you mean data_type?"),
    ("instance_group [ { kind: KIND_GUP } ]",
     "3:26: 'KIND_GUP' is not a value of Kind: did you mean KIND_GPU?"),
    ("dynamic_batching { max_queue_delay_microsecond: 100 }",
     "3:20: unknown field 'max_queue_delay_microsecond' in ModelDynamicBatching: did you mean "
     "max_queue_delay_microseconds?"),
    ('input [ { name: "X" dims: [ 1 ] }', "4:1: expected ',' but found the end of the file"),
])
def test_a_config_syntax_error_names_the_token_and_the_field_meant(
        tmp_path: Path, line: str, message: str) -> None:
    model = shutil.copytree(MODELS / "plain_numpy", tmp_path / "plain_numpy")
    (model / "config.pbtxt").write_text(f'name: "plain_numpy"\nbackend: "python"\n{line}\n')
    res = run_cli("scan", model)
    assert res.exit_code == ExitCode.MODEL
    assert error_line(res.stderr) == f"error: {model}/config.pbtxt:{message}"


@pytest.mark.slow
@pytest.mark.parametrize("resolver", ["uv", "pip-tools"])
def test_upgrade_package_moves_one_pin_and_keeps_the_rest(tmp_path: Path, resolver: str) -> None:
    model = shutil.copytree(MODELS / "plain_numpy", tmp_path / "plain_numpy")
    (model / "requirements.txt").write_text("requests==2.31.0\nidna==3.4\n")
    args = ("--triton", "24.10", "--python-from", "auto", "--resolver", resolver)
    res = run_cli("lock", model, *args, "--json")
    assert res.exit_code == 0, res.stderr
    before = {p["name"]: p["version"] for p in json.loads(res.stdout)["pypi"]}
    assert (before["requests"], before["idna"]) == ("2.31.0", "3.4")
    (model / "requirements.txt").write_text("requests\nidna\n")  # both may move now
    res = run_cli("lock", model, *args, "--upgrade-package", "idna", "--json")
    assert res.exit_code == 0, res.stderr
    after = {p["name"]: p["version"] for p in json.loads(res.stdout)["pypi"]}
    assert after["idna"] != "3.4"
    assert {k: v for k, v in after.items() if k != "idna"} == \
        {k: v for k, v in before.items() if k != "idna"}  # requests 2.31.0 and the rest stay


def test_upgrade_package_of_a_name_the_lock_lacks(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    res = run_cli("lock", model, "--upgrade-package", "numpy")
    assert res.exit_code == ExitCode.USAGE
    assert error_line(res.stderr) == (
        "error: --upgrade-package: plain_numpy has no tritonpack.lock to keep pinned")


def test_uv_annotations_are_read_as_the_lock_graph() -> None:
    from packer.lock.why import parse_via

    text = ("certifi==2026.1.1 \\\n    --hash=sha256:aa\n    # via requests\n"
            "idna==3.20\n    # via\n    #   requests\n    #   yarl\n"
            "requests==2.34.2\n    # via -r /tmp/x/requirements.in\n")
    assert parse_via(text) == {"certifi": ("requests",), "idna": ("requests", "yarl"),
                               "requests": ("-r /tmp/x/requirements.in",)}


@pytest.mark.slow
def test_why_names_the_import_the_declared_file_and_the_chain(tmp_path: Path) -> None:
    model = shutil.copytree(MODELS / "plain_numpy", tmp_path / "plain_numpy")
    (model / "requirements.txt").write_text("requests\n")
    assert run_cli("lock", model, "--triton", "24.10", "--python-from", "auto", "-q").exit_code == 0
    res = run_cli("why", model, "idna", "-q")
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert re.fullmatch(r"idna [\w.]+ \(pypi\) is in plain_numpy's lock because:", lines[0])
    assert lines[1:] == [
        "  idna <- requests: declared in plain_numpy/requirements.txt (requests)"]
    res = run_cli("why", model, "numpy", "--json")
    assert json.loads(res.stdout)["because"] == [
        {"chain": ["numpy"], "reason": "import numpy (plain_numpy/1/model.py:1)"},
        {"chain": ["numpy"],
         "reason": "the Python backend stub imports numpy: every environment holds it"}]
    res = run_cli("why", model, "python", "-q")
    assert res.stdout.splitlines()[1] == (
        "  python: the target's Python: Triton's stub runs the environment on it")
    res = run_cli("why", model, "nope", "-q")
    assert res.exit_code == ExitCode.USAGE
    assert error_line(res.stderr).startswith(f"error: nope is not in {model}/tritonpack.lock (it "
                                             "holds certifi, ")


@pytest.mark.slow
def test_why_answers_for_an_import_name(tmp_path: Path) -> None:
    """Found on a fresh clone: `why MODEL PIL` said 'PIL is not in the lock (it holds ...
    pillow ...)'; the name model.py imports is the one a user asks about."""
    model = shutil.copytree(MODELS / "plain_numpy", tmp_path / "plain_numpy")
    code = (model / "1" / "model.py").read_text()
    (model / "1" / "model.py").write_text("import yaml\n" + code)
    res = run_cli("lock", model, "--triton", "24.10", "-q")
    assert res.exit_code == 0, res.stderr
    res = run_cli("why", model, "yaml", "-q")
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert re.fullmatch(r"pyyaml [\w.]+ \(pypi\) is in plain_numpy's lock because:", lines[0])
    assert lines[1:] == ["  pyyaml: import yaml (plain_numpy/1/model.py:1)"]


@pytest.mark.slow
def test_why_resolves_with_the_locks_remembered_find_links(tmp_path: Path) -> None:
    """A lock made with --find-links remembers it, and every later run uses it: why asked
    the resolver without it ("the PyPI resolver found no solution: ... not found on the
    index", exit 5) for a distribution only that directory holds."""
    from .wheels import make_wheel

    wheels = tmp_path / "wheels"
    make_wheel(wheels, "tp_only_here", {"tp_only_here/__init__.py": "X = 1\n"})
    model = shutil.copytree(MODELS / "plain_numpy", tmp_path / "plain_numpy")
    code = (model / "1" / "model.py").read_text()
    (model / "1" / "model.py").write_text("import tp_only_here\n" + code)
    res = run_cli("lock", model, "--triton", "24.10", "--find-links", wheels, "-q")
    assert res.exit_code == 0, res.stderr
    res = run_cli("why", model, "tp_only_here", "-q")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines() == [
        "tp-only-here 1.0 (pypi) is in plain_numpy's lock because:",
        "  tp-only-here: import tp_only_here (plain_numpy/1/model.py:1)"]
    shutil.rmtree(wheels)  # the remembered directory gone (another machine): named, as lock does
    res = run_cli("why", model, "tp_only_here", "-q")
    assert res.exit_code == ExitCode.RESOLVE, res.stderr
    assert res.stderr.splitlines() == [f"error: --find-links {wheels}: no such directory",
                                       "hint: give a directory of wheels or a URL"]


def test_why_without_a_lock(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    res = run_cli("why", model, "numpy")
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.USAGE, "error: plain_numpy has no tritonpack.lock: nothing is locked yet")


@pytest.mark.slow
def test_why_with_an_unreachable_index_says_so(tmp_path: Path) -> None:
    """why asks the resolver for the chain: an index it cannot reach is named as lock names
    it (exit 5), not as uv's exit status (was exit 8); nothing in the model dir changes."""
    model = shutil.copytree(MODELS / "plain_numpy", tmp_path / "plain_numpy")
    assert run_cli("lock", model, "--triton", "24.10", "--python-from", "auto", "-q").exit_code == 0
    before = snapshot(model)
    res = run_cli("why", model, "numpy", "--index-url", "http://127.0.0.1:9/simple")
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.RESOLVE, "error: the package index http://127.0.0.1:9/simple is unreachable")
    assert "Traceback" not in res.stderr
    for name, shown in (("", "''"), ("a" * 500, "a" * 80 + "…")):  # said, not echoed whole
        res = run_cli("why", model, name)
        assert (res.exit_code, error_line(res.stderr)) == (
            ExitCode.USAGE, f"error: {shown} is not in {model}/tritonpack.lock (it holds numpy, "
            "pip, python)")
    assert snapshot(model) == before
