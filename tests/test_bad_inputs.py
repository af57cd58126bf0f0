"""The bad-input corpus (tests/fixtures/bad/): for each, the exact message, the exit code,
no traceback, and nothing in the model directory changed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from packer.core.errors import ExitCode
from packer.core.integrity import manifest, render_record
from packer.verify.kinds import plan
from packer.verify.requestfile import RequestFileError, check_request_file
from packer.verify.samples import check_expected_names, from_user_file

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
     "error: {model}/config.pbtxt:5:1: expected ',' but found 'output'"),
    ("template_config", ExitCode.MODEL,
     "error: {model}/config.pbtxt: config.pbtxt is a template with ${...} placeholders: fill it "
     "first"),
    ("config_unknown_field", ExitCode.MODEL,
     "error: {model}/config.pbtxt:6:1: unknown field 'max_batch_sise' in ModelConfig: did you "
     "mean max_batch_size?"),
    ("backend_not_python", ExitCode.MODEL,
     "error: {model}/config.pbtxt: backend is 'pytorch': tritonpack packs Python-backend models only"),
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
    ("numpy2_before_2411", ExitCode.RESOLVE,
     "error: numpy==2.1.0 (numpy2_before_2411/requirements.txt) conflicts with numpy<2, the bound "
     "of Triton 24.10 (recipes/triton.toml: its Python backend stub was built with that numpy)"),
    ("reqs_missing_include", ExitCode.MODEL,
     "error: reqs_missing_include/requirements.txt:2: -r common/requirements.txt: no such file"),
    ("reqs_include_outside", ExitCode.MODEL,
     "error: reqs_include_outside/requirements.txt:2: -r /etc/passwd: leads outside the model "
     "repository: refused"),
    ("reqs_editable", ExitCode.RESOLVE,
     "error: reqs_editable/1/requirements.txt:1: editable requirement '../mylib': an environment "
     "archive cannot point at a source checkout"),
    ("reqs_unknown_option", ExitCode.MODEL,
     "error: reqs_unknown_option/requirements.txt:1: unknown option '--no-deps'"),
    ("env_yml_python_mismatch", ExitCode.RESOLVE,
     "error: python==3.12.* (env_yml_python_mismatch/environment.yml) conflicts with Python 3.10, "
     "the Python of Triton 24.10's stub (recipes/triton.toml)"),
    ("env_yml_not_conda", ExitCode.MODEL,
     "error: env_yml_not_conda/environment.yml:3: expected a '- item' list entry"),
    # YAML bombs: read as package names once, exit 0 (5000 nested [ lists were numpy)
    ("env_yml_nested_too_deep", ExitCode.MODEL,
     "error: env_yml_nested_too_deep/environment.yml:2: a list nested in a list: an "
     "environment.yml as conda writes it has none"),
    ("env_yml_nested_items", ExitCode.MODEL,
     "error: env_yml_nested_items/environment.yml:4: a list nested in a list: an environment.yml "
     "as conda writes it has none (only 'pip:' holds a list)"),
    ("env_yml_billion_laughs", ExitCode.MODEL,
     "error: env_yml_billion_laughs/environment.yml:3: '&a': YAML anchors, aliases, tags and "
     "{...} mappings are refused (an environment.yml as conda writes it has none): write each "
     "value out"),
    ("pins_across_files", ExitCode.RESOLVE,
     "error: conflicting pins for numpy: 1.26.3 (pins_across_files/requirements.txt), 1.26.4 "
     "(pins_across_files/tritonpack.toml)"),
    ("options_unknown_release", ExitCode.TARGET,
     "error: Triton release 99.01 is not in the release table (set in {model}/tritonpack.toml)"),
    # tritonpack.toml: the wrong TOML types, unquoted numbers, values outside their choices
    ("toml_requirements_number", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: requirements must be a table ([requirements]), not a "
     "number"),
    ("toml_imports_string", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: imports must be a table ([imports]), not a string"),
    ("toml_options_list", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: options must be a table ([options]), not a list"),
    ("toml_options_array_of_tables", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: options must be a table ([options]), not a list"),
    ("toml_resolver_poetry", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: [options] resolver = 'poetry' is not one of pip-tools, uv"),
    ("toml_platform_windows", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: [options] platform = 'win-64' is not one of linux-64, "
     "linux-aarch64"),
    ("toml_triton_unquoted", ExitCode.MODEL,
     'error: {model}/tritonpack.toml: [options] triton is the number 24.1, not a string: quote '
     'it (triton = "24.10")'),
    ("toml_python_unquoted", ExitCode.MODEL,
     'error: {model}/tritonpack.toml: [options] python is the number 3.1, not a string: quote '
     'it (python = "3.10")'),
    ("toml_torch_number", ExitCode.MODEL,
     'error: {model}/tritonpack.toml: [options] torch is the number 121, not a string: quote it '
     '(torch = "121")'),
    ("toml_triton_bool", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: [options] triton must be a string"),
    ("toml_pypi_string", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: requirements.pypi: expected a list of strings"),
    ("toml_pypi_number_item", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: requirements.pypi: expected a list of strings"),
    ("toml_conda_table", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: requirements.conda: expected a list of strings"),
    ("toml_imports_number", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: [imports] values must be distribution names (strings)"),
    ("toml_src_number", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: [options] src must be a string or a list of strings"),
    ("toml_channel_numbers", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: [options] channel must be a string or a list of strings"),
    ("toml_find_links_table", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: [options] find-links must be a string or a list of "
     "strings"),
    ("toml_src_missing", ExitCode.SCAN,
     "error: {model}/tritonpack.toml: [options] src '../no_such_src_dir': no such directory "
     "(relative to the model dir)"),
    ("toml_non_utf8", ExitCode.MODEL, "error: {model}/tritonpack.toml: not UTF-8 text"),
    ("toml_duplicate_key", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: Cannot overwrite a value (at line 3, column 17)"),
    ("toml_empty_key_name", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: unknown option '' in [options]"),
    ("toml_unknown_table_tool", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: unknown table [tool]"),
    ("toml_nested_too_deep", ExitCode.MODEL,  # a RecursionError in tomllib was exit 70
     "error: {model}/tritonpack.toml: arrays or tables nested too deeply to read"),
    ("pyproject_nested_too_deep", ExitCode.MODEL,
     "error: pyproject_nested_too_deep/pyproject.toml: arrays or tables nested too deeply to "
     "read"),
    ("toml_pypi_empty_string", ExitCode.RESOLVE,
     "error: {model}/tritonpack.toml: invalid requirement '': Expected package name at the start "
     "of dependency specifier"),
    ("toml_pypi_editable", ExitCode.RESOLVE,
     "error: {model}/tritonpack.toml: invalid requirement '-e .': Expected package name at the "
     "start of dependency specifier"),
    ("toml_invalid_marker", ExitCode.RESOLVE,
     "error: {model}/tritonpack.toml: invalid requirement 'numpy; python_version >> \"3\"': "
     "Expected a marker variable or quoted string"),
    ("toml_conflicting_extras_pins", ExitCode.RESOLVE,
     "error: {model}/tritonpack.toml: conflicting pins for numpy: 1.25.0, 1.26.4"),
    ("toml_triton_letter_o", ExitCode.TARGET,
     "error: Triton release 24.1O is not in the release table (set in {model}/tritonpack.toml)"),
    ("toml_python_major_only", ExitCode.TARGET,
     "error: --python 3: expected MAJOR.MINOR, e.g. 3.12 (set in {model}/tritonpack.toml)"),
    ("toml_python_2", ExitCode.TARGET,
     "error: Python 2.7 is not supported (set in {model}/tritonpack.toml)"),
    # config.pbtxt
    ("config_bom", ExitCode.MODEL,
     "error: {model}/config.pbtxt: starts with a UTF-8 byte-order mark, which Triton refuses (it "
     "fails to parse the config)"),
    ("config_latin1", ExitCode.MODEL, "error: {model}/config.pbtxt: not UTF-8 text (byte 189)"),
    ("config_binary", ExitCode.MODEL, "error: {model}/config.pbtxt: not UTF-8 text (byte 11)"),
    ("config_ensemble", ExitCode.MODEL,
     "error: {model}/config.pbtxt: platform is 'ensemble': tritonpack packs Python-backend "
     "models only"),
    ("config_backend_typo", ExitCode.MODEL,
     "error: {model}/config.pbtxt: backend is 'pyhton': tritonpack packs Python-backend models "
     "only"),
    ("config_only_comment", ExitCode.MODEL,
     "error: {model}/config.pbtxt: backend is not set and no version dir holds model.py: "
     "tritonpack packs Python-backend models only"),
    ("config_backend_unquoted", ExitCode.MODEL,
     "error: {model}/config.pbtxt:2:10: Expected string but found: 'python'"),
    ("config_yaml", ExitCode.MODEL,
     "error: {model}/config.pbtxt:1:7: Expected string but found: 'config_yaml'"),
    ("config_json", ExitCode.MODEL,
     "error: {model}/config.pbtxt:1:1: Expected identifier or number, got {."),
    ("config_bad_enum", ExitCode.MODEL,
     "error: {model}/config.pbtxt:4:37: 'TYPE_FLOAT32' is not a value of DataType: did you mean "
     "TYPE_FP32?"),
    ("config_type_bytes", ExitCode.MODEL,
     "error: {model}/config.pbtxt:4:34: 'TYPE_BYTES' is not a value of DataType: did you mean "
     "TYPE_STRING (the API's BYTES is TYPE_STRING in config.pbtxt)?"),
    ("config_string_for_int", ExitCode.MODEL,
     "error: {model}/config.pbtxt:3:17: Couldn't parse integer: \"eight\""),
    ("config_negative_overflow", ExitCode.MODEL,
     "error: {model}/config.pbtxt:3:17: Value out of range: 99999999999"),
    ("config_unterminated_string", ExitCode.MODEL,
     "error: {model}/config.pbtxt:1:7: String missing ending quote: "
     "'\"config_unterminated_string'"),
    ("config_duplicate_name", ExitCode.MODEL,
     "error: {model}/config.pbtxt:6:7: field 'name' is given twice in ModelConfig (it takes one "
     "value)"),
    ("config_unclosed_brace", ExitCode.MODEL,
     "error: {model}/config.pbtxt:3:52: expected '}' but found the end of the file (after ']')"),
    ("config_named_config_txt", ExitCode.MODEL, "error: {model}: no config.pbtxt"),
    # layouts
    ("version_dir_not_numeric", ExitCode.MODEL, "error: {model}: no numeric version dir"),
    ("model_in_root_not_version_dir", ExitCode.MODEL, "error: {model}: no numeric version dir"),
    ("model_py_uppercase", ExitCode.MODEL, "error: {model}: no model.py in 1/"),
    ("default_model_filename_missing", ExitCode.MODEL, "error: {model}: no handler.py in 1/"),
    ("default_model_filename_subdir", ExitCode.MODEL,
     "error: {model}/config.pbtxt: default_model_filename 'sub/code.py' is not a file name: "
     "tritonpack packs a model whose code lies in its version dir"),
    ("default_model_filename_too_long", ExitCode.MODEL,
     "error: {model}/config.pbtxt: default_model_filename '" + "handler_" * 10 + "…' is longer "
     "than a file name may be (324 bytes; at most 255): no file has it"),
    ("default_model_filename_is_dir", ExitCode.MODEL, "error: {model}/1/code.py: not a file"),
    ("model_py_broken_symlink", ExitCode.MODEL,
     "error: {model}/1/model.py: a broken symlink (to no_such_target.py)"),
    # model.py and the modules it pulls in
    ("model_empty", ExitCode.SCAN,
     "error: model_empty/1/model.py: defines no TritonPythonModel class: Triton's Python backend "
     "loads that class from model.py"),
    ("model_only_comments", ExitCode.SCAN,
     "error: model_only_comments/1/model.py: defines no TritonPythonModel class: Triton's Python "
     "backend loads that class from model.py"),
    ("model_class_inside_function", ExitCode.SCAN,
     "error: model_class_inside_function/1/model.py: defines no TritonPythonModel class: "
     "Triton's Python backend loads that class from model.py"),
    ("model_deep_expression", ExitCode.SCAN,
     "error: model_deep_expression/1/model.py: nested too deeply for Python's parser"),
    ("model_deep_parentheses", ExitCode.SCAN,
     "error: model_deep_parentheses/1/model.py:3: syntax error: too many nested parentheses"),
    ("model_tabs_and_spaces", ExitCode.SCAN,
     "error: model_tabs_and_spaces/1/model.py:4: syntax error: inconsistent use of tabs and "
     "spaces in indentation"),
    ("model_unknown_coding", ExitCode.SCAN,
     "error: model_unknown_coding/1/model.py: not valid UTF-8 source"),
    ("model_python2_print", ExitCode.SCAN,
     "error: model_python2_print/1/model.py:3: syntax error: Missing parentheses in call to "
     "'print'. Did you mean print(...)?"),
    ("model_type_alias_312", ExitCode.SCAN,
     "error: model_type_alias_312/1/model.py:1: syntax error: invalid syntax"),
    ("model_unterminated_string", ExitCode.SCAN,
     "error: model_unterminated_string/1/model.py:1: syntax error: unterminated string literal "
     "(detected at line 1)"),
    ("model_import_underscore_missing", ExitCode.RESOLVE,
     "error: import '_helpers' (model_import_underscore_missing/1/model.py:1) is not found in "
     "the model dir or a --src root, and '_helpers' cannot be a distribution name"),
    ("local_module_null_bytes", ExitCode.SCAN,
     "error: local_module_null_bytes/1/helpers.py: not Python source: source code string cannot "
     "contain null bytes"),
    ("local_module_tabs", ExitCode.SCAN,
     "error: local_module_tabs/1/helpers.py:3: syntax error: inconsistent use of tabs and spaces "
     "in indentation"),
    ("local_package_syntax_error", ExitCode.SCAN,
     "error: local_package_syntax_error/1/mypkg/__init__.py:1: syntax error: invalid syntax"),
    ("local_submodule_non_utf8", ExitCode.SCAN,
     "error: local_submodule_non_utf8/1/mypkg/sub.py: not valid UTF-8 source"),
    # devices where files belong: named, never read (a read of /dev/zero never ends)
    ("toml_is_device", ExitCode.MODEL,
     "error: {model}/tritonpack.toml: is a character device, not a file"),
    ("local_module_is_device", ExitCode.SCAN,
     "error: local_module_is_device/1/helpers.py: is a character device, not a Python source "
     "file"),
]


def test_a_named_file_that_is_a_folder_is_named_in_the_hint(tmp_path: Path) -> None:
    """default_model_filename "code.py" that is a folder: the hint names code.py, the file the
    backend imports, not model.py (which this model has no reason to hold)."""
    model = bad_copy("default_model_filename_is_dir", tmp_path)
    res = run_unchanged(model, "scan", model, "-q")
    assert "hint: Triton's Python backend imports code.py from the version dir" in res.stderr


def test_a_missing_named_file_says_the_config_names_it(tmp_path: Path) -> None:
    """default_model_filename names the file to put there: the hint says where the name
    comes from (a user looking for 'handler.py' in their code would not find it)."""
    model = bad_copy("default_model_filename_missing", tmp_path)
    res = run_unchanged(model, "scan", model, "-q")
    assert "hint: put the model's code at default_model_filename_missing/1/handler.py " \
           "(config.pbtxt's default_model_filename names it)" in res.stderr


@pytest.mark.parametrize(("name", "code", "message"), SCAN_CASES, ids=[c[0] for c in SCAN_CASES])
@pytest.mark.parametrize("command", ["scan", "lock", "pack"])
def test_broken_model(tmp_path: Path, name: str, code: int, message: str, command: str) -> None:
    model = bad_copy(name, tmp_path)
    res = run_unchanged(model, command, model, *(("--python-from", "auto") if command != "scan" else ("-q",)))
    assert res.exit_code == code
    assert error_line(res.stderr) == message.replace("{model}", str(model))


LOCK_CASES = [
    ("lock_corrupted", "error: {model}/tritonpack.lock: corrupted: Expected ']]' at the end of an "
                       "array declaration (at line 2, column 8)"),
    ("lock_future", "error: {model}/tritonpack.lock: lock format 99 is newer than this "
                    "tritonpack understands (2)"),
    ("lock_hand_edited", "error: {model}/tritonpack.lock: content hash mismatch: the lock was "
                         "edited by hand"),
    ("lock_version_zero", "error: {model}/tritonpack.lock: lock format 0 is not one tritonpack "
                          "knows (it reads formats 1 to 2)"),
    ("lock_merge_conflict", "error: {model}/tritonpack.lock: corrupted: unresolved "
                            "merge-conflict markers (line 1)"),
    ("lock_empty", "error: {model}/tritonpack.lock: corrupted: no format version"),
    ("lock_binary", "error: {model}/tritonpack.lock: corrupted: not UTF-8 text (byte 1)"),
    ("lock_version_string", "error: {model}/tritonpack.lock: corrupted: no format version"),
    ("lock_version_zero_negative", "error: {model}/tritonpack.lock: lock format -1 is not one "
                                   "tritonpack knows (it reads formats 1 to 2)"),
    ("lock_missing_inputs", "error: {model}/tritonpack.lock: corrupted: missing or malformed "
                            "'inputs'"),
    ("lock_is_dir", "error: {model}/tritonpack.lock: is a directory, not a lock file"),
    ("lock_nested_too_deep", "error: {model}/tritonpack.lock: corrupted: arrays or tables "
                             "nested too deeply to read"),
]

RECREATE = ("hint: restore it from version control, or re-create it explicitly (every pin may "
            "change): tritonpack lock --upgrade {model}")


@pytest.mark.parametrize(("name", "message"), LOCK_CASES, ids=[c[0] for c in LOCK_CASES])
@pytest.mark.parametrize("command", [("lock", "--check"), ("pack", "--frozen"), ("export",),
                                     ("pack",), ("lock",)])
def test_broken_lock(tmp_path: Path, name: str, message: str, command: tuple[str, ...]) -> None:
    """Every command refuses a lock it cannot read, the plain ones included: a new lock would
    silently change every pin (uv, Cargo and Poetry refuse too)."""
    model = bad_copy(name, tmp_path)
    args = [command[0], model, *command[1:]]
    if command[0] != "export":
        args += ["--triton", "24.10", "--python-from", "auto"]
    res = run_unchanged(model, *args)
    assert res.exit_code == ExitCode.LOCK
    expected = message.replace("{model}", str(model))
    if name == "lock_is_dir" and (command[0] == "pack" or command == ("lock",)):  # to be written
        expected = expected.replace("not a lock file", "where tritonpack writes its lock file")
    assert error_line(res.stderr) == expected
    if name not in ("lock_future", "lock_is_dir"):
        hint = next(line for line in res.stderr.splitlines() if line.startswith("hint:"))
        assert hint.startswith(RECREATE.format(model=model))


def test_frozen_without_a_lock(tmp_path: Path) -> None:
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    res = run_unchanged(model, model, "--frozen", "--python-from", "auto")
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
    (("--format", "dir", "--output", "1"), ExitCode.PACK,
     "error: --output 1: a numeric name is a model version dir to Triton"),
    (("--format", "dir", "--output", "7"), ExitCode.PACK,
     "error: --output 7: a numeric name is a model version dir to Triton"),
    (("--format", "dir", "--output", "config.pbtxt"), ExitCode.PACK,
     "error: --output config.pbtxt: config.pbtxt is the model's configuration: tritonpack never "
     "writes over it"),
    (("--format", "dir", "--output", "tritonpack.lock"), ExitCode.PACK,
     "error: --output tritonpack.lock: tritonpack.lock is the lock: tritonpack never writes over "
     "it"),
    (("--format", "dir", "--output", "envs/model.py"), ExitCode.PACK,
     "error: --output envs/model.py: model.py is the model's code: tritonpack never writes over "
     "it"),
    (("--format", "dir", "--output", "1/model.py"), ExitCode.PACK,
     "error: --output 1/model.py: not inside a version dir"),
    (("--format", "dir", "--output", "tritonpack-env.tar.gz.sha256"), ExitCode.PACK,
     "error: --output tritonpack-env.tar.gz.sha256: tritonpack-env.tar.gz.sha256 is the name of "
     "a record tritonpack writes beside an environment"),
])
def test_bad_options(tmp_path: Path, args: tuple[str, ...], code: int, message: str) -> None:
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    res = run_unchanged(model, model, "--python-from", "auto", *args)
    assert res.exit_code == code
    assert error_line(res.stderr) == message.replace("{model}", str(model))


@pytest.mark.parametrize("fmt", ["tar.gz", "dir"])
def test_output_never_replaces_what_the_user_wrote(tmp_path: Path, fmt: str) -> None:
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    name = "mine.tar.gz" if fmt == "tar.gz" else "mine"
    if fmt == "dir":
        (model / name).mkdir()
        (model / name / "notes.txt").write_text("mine\n")
    else:
        (model / name).write_bytes(b"not tritonpack's")
    res = run_unchanged(model, model, "--python-from", "auto", "--format", fmt, "--output", name)
    assert res.exit_code == ExitCode.PACK
    what = "a directory" if fmt == "dir" else "a file"
    assert error_line(res.stderr) == (f"error: --output {name}: {name} exists ({what}) and is "
                                      "not an environment tritonpack wrote: tritonpack replaces "
                                      "only its own output")


def test_bad_output_is_refused_before_any_network(tmp_path: Path) -> None:
    """The destination is checked first: no resolve against an index that is not there."""
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    res = run_unchanged(model, model, "--python-from", "auto", "--output", "env.zip",
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
    res = run_unchanged(model, "lock", model, "--python-from", "auto", "--python", "3.13", "--index-url",
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
     "distribution 'tritonpack-no-such-module-xyz' (guessed from its name), which the package "
     "index does not have"),
    ("declared_missing", (),
     "error: declared requirement 'tritonpack-no-such-distribution-abc' (tritonpack.toml) is not "
     "on the package index"),
    ("needs_newer_python", ("--triton", "24.10"),
     "error: the PyPI resolver found no solution for pandas>=3.0 under Python 3.10: Because "
     "pandas>=3.0.0 has no usable wheels and you require pandas>=3.0, we can conclude that "
     "your requirements are unsatisfiable"),
])
def test_resolution_failures(tmp_path: Path, name: str, args: tuple[str, ...], message: str) -> None:
    model = bad_copy(name, tmp_path)
    res = run_unchanged(model, "lock", model, "--python-from", "auto", *args)
    assert (res.exit_code, error_line(res.stderr)) == (ExitCode.RESOLVE, message)


@pytest.mark.slow
def test_index_unreachable(tmp_path: Path) -> None:
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    res = run_unchanged(model, "lock", model, "--python-from", "auto",
                        "--index-url", "http://127.0.0.1:9/simple")
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
        res = cli_without_root_powers(model, "--triton", "24.10", "--python-from", "auto")
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
        res = run_unchanged(model, model, "--triton", "24.10", "--python-from", "auto", "--no-cache")
        assert res.exit_code == ExitCode.CACHE  # the full disk, named: exit 15
        assert error_line(res.stderr) == (
            f"error: no space left on device: the disk of {model} is full (8.4 MB in all)")
        assert sorted(p.name for p in model.iterdir()) == ["1", "config.pbtxt"]


@pytest.mark.slow
def test_model_dir_on_read_only_file_system(tmp_path: Path) -> None:
    with small_tmpfs("8m") as mnt:
        model = shutil.copytree(FIXTURES / "models" / "plain_numpy", mnt / "m")
        subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
        res = run_unchanged(model, model, "--triton", "24.10", "--python-from", "auto")
        assert res.exit_code == ExitCode.PACK
        assert error_line(res.stderr) == f"error: cannot write to {model}: read-only file system"


# --- environments (tests/fixtures/bad_envs): inspect names the first problem ---------------

BAD_ENVS = [
    ("not_gzip.tar.gz", "not_gzip.tar.gz is not gzip'd: Triton reads gzip'd tar archives only"),
    ("zero_bytes.tar.gz", "zero_bytes.tar.gz is not gzip'd: Triton reads gzip'd tar archives only"),
    ("truncated.tar.gz", "truncated.tar.gz is truncated or corrupted: Compressed file ended before "
                         "the end-of-stream marker was reached"),
    ("broken_elf.tar.gz", "cannot read ELF file lib/libbroken.so: unknown ELF class 0"),
    ("absolute_path.tar.gz",
     "unsafe entry: absolute path /etc/cron.d/x (Triton 26.06+ refuses it)"),
    ("dotdot_path.tar.gz",
     "unsafe entry: path with '..': lib/../../escape.txt (Triton 26.06+ refuses it)"),
    ("symlink_escape.tar.gz", "unsafe entry: symlink lib/evil -> ../../../etc/passwd leaves the "
                              "environment (Triton 26.06+ refuses it)"),
    ("hardlink_escape.tar.gz", "unsafe entry: hard link lib/evil -> /etc/passwd leaves the "
                               "environment (Triton 26.06+ refuses it)"),
    ("device_entry.tar.gz", "unsafe entry: device entry dev/null (Triton 26.06+ refuses it)"),
    ("fifo_entry.tar.gz", "unsafe entry: fifo entry run/pipe (Triton 26.06+ refuses it)"),
    ("setuid_entry.tar.gz", "unsafe entry: setuid/setgid entry bin/su (Triton 26.06+ refuses it)"),
    ("empty.tar.gz", "the environment has no bin/python3: Triton would silently run the model on "
                     "its own Python"),
    ("no_python.tar.gz", "the environment has no bin/python3: Triton would silently run the "
                         "model on its own Python"),
    ("no_libpython.tar.gz", "the environment has no lib/libpython3.X.so.1.0: Triton would "
                            "silently run the model on its own Python"),
    ("no_activate.tar.gz", "the environment has no bin/activate (Triton before 25.08 sources it)"),
    ("no_numpy.tar.gz", "numpy is missing: the Python backend stub imports it"),
    ("python_mismatch.tar.gz", "Python version mismatch: the environment has Python 3.12, the "
                               "Triton 24.10 stub is built for 3.10 (the stub would hang or fail "
                               "to load)"),
    ("numpy2_for_2410.tar.gz", "numpy 2.1.0 is outside Triton 24.10's bound numpy<2: the model "
                               "would load, then every inference would fail"),
]


@pytest.mark.parametrize(("name", "finding"), BAD_ENVS, ids=[c[0] for c in BAD_ENVS])
def test_bad_environment(name: str, finding: str) -> None:
    res = run_cli("inspect", FIXTURES / "bad_envs" / name, "--triton", "24.10")
    assert "Traceback" not in res.stderr
    assert res.exit_code == ExitCode.CHECK_FAILED
    first = next(line for line in res.stdout.splitlines() if line.startswith("  error "))
    assert first == f"  error    {finding}"


# --- request files (tests/fixtures/bad_requests): refused before a server starts -----------

BAD_REQUESTS = [
    ("not_json.json", ":1:1: not JSON: Expecting value"),
    ("empty.json", ":1:1: not JSON: Expecting value"),
    ("trailing_comma.json", ":1:25: not JSON: Expecting property name enclosed in double quotes"),
    ("deep.json", ": nested deeper than 32 levels: no tensor has that many dimensions"),
    ("deep_40.json", ": nested deeper than 32 levels: no tensor has that many dimensions"),
    ("not_utf8.json", ": not UTF-8 text (byte 12)"),
    ("random.npz", ": not a .npz archive (a zip of .npy arrays)"),
    ("single_array.npz", ": not a .npz archive (a zip of .npy arrays)"),
    ("truncated.npz", ": corrupt .npz archive: File is not a zip file"),
    ("pickled.npz", ": unusable .npz: it holds pickled objects"),
    # numpy's own words named an ast object's address: <ast.Call object at 0x7f...>
    ("header_not_literal.npz", ": unusable .npz: a member's .npy header is not one numpy writes "
     "(its shape is not a tuple of numbers)"),
    ("bad_member.npz", ": member 'INPUT0' is not a .npy array"),
    # were exit 70: an AttributeError, a value silently dropped, a ValueError of int()
    ("top_level_list.json", ": is a JSON list, not an object of tensors by name"),
    ("duplicate_key.json", ": key 'INPUT0' is given twice in one object"),
    ("huge_integer.json", ": holds an integer of 5000 digits: no tensor holds a number that long"),
    # were a 22 GB allocation: sizes read from each .npy header before any array is
    ("zeros_320mb.npz", ": INPUT0.npy (shape (80000000,) of float32) would decode past 256 MiB, "
                        "more than tritonpack sends in one request"),
    ("declares_huge.npz", ": INPUT0.npy (shape (100000, 100000) of float32) would decode past "
                          "256 MiB, more than tritonpack sends in one request"),
    # were exit 70: zlib.error, RuntimeError, NotImplementedError from zipfile
    ("corrupt_deflate.npz", ": corrupt .npz archive: Error -3 while decompressing data: invalid "
                            "distance too far back"),
    ("encrypted.npz", ": unusable .npz: a member is encrypted (it needs a password)"),
    ("unknown_compression.npz", ": unusable .npz: that compression method is not supported"),
]


@pytest.mark.parametrize(("name", "why"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
@pytest.mark.parametrize("option", ["--inputs", "--expect"])
def test_bad_request_file(tmp_path: Path, name: str, why: str, option: str) -> None:
    """Checked first: the model here was never packed, and no server is started."""
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "plain_numpy")
    path = FIXTURES / "bad_requests" / name
    if (option, name) == ("--expect", "top_level_list.json"):  # a list: one object a response
        why = ": entry 1 is a JSON number, not an object of outputs by name"
    res = run_unchanged(model, "verify", model, option, path)
    assert (res.exit_code, error_line(res.stderr)) == (ExitCode.USAGE, f"error: {option} {path}{why}")


def test_perf_analyzer_data_that_does_not_decode(tmp_path: Path) -> None:
    """--inputs only: a top-level "data" list in --expect is an output named data."""
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "plain_numpy")
    path = FIXTURES / "bad_requests" / "perf_bad_b64.json"
    res = run_unchanged(model, "verify", model, "--inputs", path)
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.USAGE, f"error: --inputs {path}: input INPUT0: \"b64\" is not base64: Invalid "
        "base64-encoded string: number of data characters (9) cannot be 1 more than a multiple "
        "of 4")
    expect = tmp_path / "expect.json"
    expect.write_text('{"data": [1, 2, 3, 4]}')
    check_request_file(expect, "--expect")  # no error


def test_values_the_config_refuses() -> None:
    """Only the config the server loaded says INPUT0 is FP32: refused once it is read, as a
    bad --inputs (exit 2), not a ValueError of numpy (exit 70); no server needed here."""
    config = {"name": "plain_numpy", "max_batch_size": 0,
              "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [4]}]}
    path = FIXTURES / "bad_requests" / "strings_for_fp32.json"
    check_request_file(path, "--inputs")  # JSON of the right form
    with pytest.raises(RequestFileError) as err:
        from_user_file(path, plan(config))
    assert (err.value.exit_code, err.value.message) == (
        ExitCode.USAGE, f"--inputs {path}: input INPUT0 (FP32): 'a' is not a number")


@pytest.mark.parametrize(("name", "typo"), [("unknown_input.json", "INPUT_0"),
                                             ("perf_unknown_input.json", "INPT0"),
                                             ("unknown_string_input.json", "TXET")])
def test_inputs_the_model_does_not_take(name: str, typo: str) -> None:
    """A misspelt input name is the user's typo (exit 2), named before any request is sent;
    the server's own words for it ('unexpected inference input') would be exit 12."""
    config = {"name": "plain_numpy", "max_batch_size": 0,
              "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [4]}]}
    path = FIXTURES / "bad_requests" / name
    check_request_file(path, "--inputs")  # JSON of the right form
    with pytest.raises(RequestFileError) as err:
        from_user_file(path, plan(config))
    assert (err.value.exit_code, err.value.message) == (
        ExitCode.USAGE, f"--inputs {path}: {typo!r} is not an input of model 'plain_numpy' "
        "(its inputs: INPUT0)")


def test_inputs_without_a_required_input() -> None:
    config = {"name": "plain_numpy", "max_batch_size": 0,
              "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [4]}]}
    path = FIXTURES / "bad_requests" / "no_inputs.json"
    check_request_file(path, "--inputs")
    with pytest.raises(RequestFileError) as err:
        from_user_file(path, plan(config))
    assert (err.value.exit_code, err.value.message) == (
        ExitCode.USAGE, f"--inputs {path}: gives no INPUT0, which model 'plain_numpy' requires")


def test_expect_names_an_output_the_model_does_not_have() -> None:
    """A misspelt --expect name is the user's typo (exit 2), not a model that 'answered
    wrongly' (exit 12)."""
    config = {"name": "plain_numpy", "max_batch_size": 0,
              "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [4]}],
              "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [4]}]}
    path = FIXTURES / "bad_requests" / "unknown_output.json"
    check_request_file(path, "--expect")
    with pytest.raises(RequestFileError) as err:
        check_expected_names(path, plan(config))
    assert (err.value.exit_code, err.value.message) == (
        ExitCode.USAGE, f"--expect {path}: 'OUTPT0' is not an output of model 'plain_numpy' "
        "(its outputs: OUTPUT0)")


# --- what the pack and verify commands meet in the model dir ---------------------------------

@pytest.mark.parametrize(("name", "args", "code", "message"), [
    ("archive_path_is_dir", ("--triton", "24.10", "--python-from", "auto"), ExitCode.PACK,
     "error: --output tritonpack-env.tar.gz: tritonpack-env.tar.gz exists (a directory) and is "
     "not an environment tritonpack wrote: tritonpack replaces only its own output"),
    ("env_path_missing", ("verify",), ExitCode.USAGE,  # not packed here: nothing to verify
     "error: env_path_missing is not packed here: EXECUTION_ENV_PATH points at "
     "{model}/tritonpack-env.tar.gz, which does not exist, so there is nothing to verify"),
    ("env_path_without_token", ("verify",), ExitCode.VERIFY_LOAD,
     "error: EXECUTION_ENV_PATH '/opt/envs/tritonpack-env.tar.gz' does not start with "
     "$$TRITON_MODEL_DIRECTORY/"),
])
def test_model_dir_contents(tmp_path: Path, name: str, args: tuple[str, ...], code: int,
                            message: str) -> None:
    model = bad_copy(name, tmp_path)
    argv = ("verify", model) if args == ("verify",) else (model, *args)
    res = run_unchanged(model, *argv)
    assert (res.exit_code, error_line(res.stderr)) == (code, message.replace("{model}", str(model)))


def test_an_environment_unlike_its_record_is_never_verified(tmp_path: Path) -> None:
    """A --format dir env's files are hard links shared by every model packed from one cache
    entry: a file edited in place in one model (root ignores 0444) changes it in all. check
    says so; verify (and image, through the same env_location) refuses it before any server,
    instead of proving and shipping the edited bytes."""
    model = bad_copy("env_path_missing", tmp_path)
    config = model / "config.pbtxt"
    config.write_text(config.read_text().replace("tritonpack-env.tar.gz", "tritonpack-env"))
    site = model / "tritonpack-env" / "lib" / "python3.10" / "site-packages"
    site.mkdir(parents=True)
    (site / "numpy.py").write_text("pass\n")
    (model / "tritonpack-env.sha256").write_bytes(
        render_record("tritonpack-env", files=manifest(model / "tritonpack-env")))
    with (site / "numpy.py").open("a") as fh:  # as root would, through another model's link
        fh.write("import os; os.system('id')\n")
    res = run_unchanged(model, "verify", model)
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.VERIFY_LOAD, "error: env_path_missing: tritonpack-env differs from what was "
        "packed: changed lib/python3.10/site-packages/numpy.py")


def test_verify_json_reports_failure_as_not_passed(tmp_path: Path) -> None:
    model = bad_copy("env_path_missing", tmp_path)
    res = run_unchanged(model, "verify", model, "--json")
    out = json.loads(res.stdout)
    assert res.exit_code == ExitCode.USAGE
    assert (out["passed"], out["error"]["exit_code"]) == (False, ExitCode.USAGE)


# --- repositories (tests/fixtures/bad_repos): a model that cannot be read fails, named ------

@pytest.mark.parametrize("locks", [("--locks",), ()])
def test_check_of_a_broken_config_is_its_own_error(locks: tuple[str, ...]) -> None:
    """Not exit 1 ("stale": re-locking would not mend it): exit 3 with line:col, as scan says."""
    model = BAD / "config_syntax"
    res = run_cli("check", *locks, model)
    assert (res.exit_code, res.stdout.splitlines()) == (ExitCode.MODEL, [
        "checked 1 model: config_syntax",
        f"  {model.resolve()}/config.pbtxt:5:1: expected ',' but found 'output'"])
    scan = run_cli("scan", model)
    assert (scan.exit_code, error_line(scan.stderr)) == (
        ExitCode.MODEL, f"error: {model.resolve()}/config.pbtxt:5:1: expected ',' but found "
                        "'output'")


def test_repository_with_an_unparseable_model_fails_check_and_pack(tmp_path: Path) -> None:
    """Not 'skipped' and 'all fresh': the gate fails, naming the model."""
    repo = shutil.copytree(FIXTURES / "bad_repos" / "one_unparseable", tmp_path / "repo")
    why = (f"{repo}/broken/config.pbtxt:3:17: Couldn't parse integer: [")
    res = run_cli("check", repo)
    assert res.exit_code == ExitCode.MODEL  # the config error's own code, as scan gives it
    assert res.stdout.splitlines() == [
        "checked 2 models: broken, plain_numpy", f"  {why}",
        f"  plain_numpy: no tritonpack.lock (run tritonpack lock {repo}/plain_numpy)"]
    assert run_cli("check", "--locks", repo).exit_code == ExitCode.MODEL
    locks = run_cli("lock", "--check", repo)  # the other locks-only gate: the same code
    assert locks.exit_code == ExitCode.MODEL and f"broken: {why}" in locks.stdout.splitlines()
    shutil.rmtree(repo / "broken")  # a missing lock alone is "stale", not an unreadable model
    assert run_cli("lock", "--check", repo).exit_code == ExitCode.CHECK_FAILED
    shutil.copytree(FIXTURES / "bad_repos" / "one_unparseable" / "broken", repo / "broken")
    packed = run_cli(repo, "--frozen", "--python-from", "auto", "--json", "-q")
    out = json.loads(packed.stdout)
    assert packed.exit_code == ExitCode.MODEL
    assert [(f["name"], f["exit_code"], f["message"]) for f in out["failed"]] == [
        ("broken", ExitCode.MODEL, why),
        ("plain_numpy", ExitCode.LOCK, f"{repo}/plain_numpy/tritonpack.lock: no lock file")]
    assert out["skipped"] == []


def test_a_directory_without_models(tmp_path: Path) -> None:
    repo = shutil.copytree(FIXTURES / "bad_repos" / "no_models", tmp_path / "repo")
    for args in (("scan", repo), (repo, "--python-from", "auto")):
        res = run_unchanged(repo, *args)
        assert (res.exit_code, error_line(res.stderr)) == (
            ExitCode.MODEL, f"error: {repo}: no config.pbtxt")


# --- the command line ------------------------------------------------------------------------

@pytest.mark.parametrize("command", [(), ("pack",), ("scan",), ("lock",), ("lock", "--check"),
                                     ("verify",), ("check",), ("config",)])
def test_wrong_model_path(tmp_path: Path, command: tuple[str, ...]) -> None:
    nope, afile = tmp_path / "nope", tmp_path / "config.pbtxt"
    afile.write_text('name: "x"\n')
    for path, why in ((nope, "no such directory"), (afile, "not a directory")):
        res = run_cli(*command, path)
        assert "Traceback" not in res.stderr
        assert (res.exit_code, error_line(res.stderr)) == (ExitCode.MODEL, f"error: {path}: {why}")
        res = run_cli(*command, path, "--json")
        out = json.loads(res.stdout)
        assert out["error"] == {"message": f"{path}: {why}", "exit_code": ExitCode.MODEL,
                                "hint": out["error"]["hint"], "detail": None}


@pytest.mark.parametrize(("word", "message"), [
    ("scna", "Error: unknown command 'scna' (did you mean 'scan'?)"),
    ("chek", "Error: unknown command 'chek' (did you mean 'check'?)"),
    ("build", "Error: unknown command 'build'; commands: bench, cache, check, config, export, "
              "image, inspect, lock, pack, scan, targets, verify, why"),
])
def test_unknown_command(word: str, message: str) -> None:
    model = FIXTURES / "models" / "plain_numpy"
    res = run_cli(word, model)
    assert res.exit_code == ExitCode.USAGE
    assert res.stderr.splitlines()[-1] == message


@pytest.mark.parametrize("command", [(), ("scan",), ("verify",), ("lock",)])
def test_version_means_tritonpacks_version_everywhere(command: tuple[str, ...]) -> None:
    res = run_cli(*command, FIXTURES / "models" / "plain_numpy", "--version")
    assert (res.exit_code, res.stdout.split(",")[0]) == (0, "tritonpack")


# --- FIFOs where files belong: named, never opened -------------------------------------------

@pytest.mark.parametrize(("args", "code", "message"), [
    (("export", "{model}"), ExitCode.LOCK,
     "error: {model}/tritonpack.lock: is a FIFO (named pipe), not a lock file"),
    (("lock", "--check", "{model}"), ExitCode.LOCK,
     "error: {model}/tritonpack.lock: is a FIFO (named pipe), not a lock file"),
    (("{model}", "--frozen", "--python-from", "auto", "--triton", "24.10"), ExitCode.LOCK,
     "error: {model}/tritonpack.lock: is a FIFO (named pipe), where tritonpack writes its lock "
     "file"),
])
def test_lock_is_a_fifo(tmp_path: Path, args: tuple[str, ...], code: int, message: str) -> None:
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    os.mkfifo(model / "tritonpack.lock")
    res = run_cli(*(a.replace("{model}", str(model)) for a in args))
    assert (res.exit_code, error_line(res.stderr)) == (code, message.replace("{model}", str(model)))


def test_environment_is_a_fifo(tmp_path: Path) -> None:
    model = bad_copy("env_path_missing", tmp_path)
    os.mkfifo(model / "tritonpack-env.tar.gz")
    res = run_cli("verify", model)
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.VERIFY_LOAD, f"error: EXECUTION_ENV_PATH points at {model}/tritonpack-env.tar.gz,"
                              " which is a FIFO (named pipe), not an environment")
    res = run_cli("check", model)
    assert res.exit_code == ExitCode.CHECK_FAILED
    assert "  env_path_missing: no tritonpack.lock" in res.stdout  # read first: no hang either


def test_request_file_is_a_fifo(tmp_path: Path) -> None:
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    fifo = tmp_path / "inputs.json"
    os.mkfifo(fifo)
    res = run_cli("verify", model, "--inputs", fifo)
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.USAGE, f"error: --inputs {fifo}: is a FIFO (named pipe), not a file")


def test_local_module_is_a_fifo(tmp_path: Path) -> None:
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    (model / "1" / "model.py").write_text("import helpers\nclass TritonPythonModel:\n    pass\n")
    os.mkfifo(model / "1" / "helpers.py")
    res = run_cli("scan", model)
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.SCAN, "error: m/1/helpers.py: is a FIFO (named pipe), not a Python source file")


# --- tritonpack's cache ------------------------------------------------------------------------

def test_cache_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    cache.write_text("not a directory\n")
    monkeypatch.setenv("TRITONPACK_CACHE", str(cache))
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    res = run_unchanged(model, model, "--python-from", "auto", "--triton", "24.10")
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.CACHE, f"error: tritonpack's cache {cache} cannot be used: a path in it is a "
                        "file, not a directory")


def test_cache_read_only(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o555)
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    env = {**os.environ, "TRITONPACK_CACHE": str(cache)}
    argv = [*(NO_DAC if os.geteuid() == 0 else []), sys.executable, "-m", "packer", "lock",
            str(model), "--python-from", "auto", "--triton", "24.10"]
    res = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert (res.returncode, error_line(res.stderr)) == (
        ExitCode.CACHE, f"error: tritonpack's cache {cache} cannot be used: permission denied")


def test_lock_in_a_read_only_model_dir(tmp_path: Path) -> None:
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
    model.chmod(0o555)
    try:
        res = cli_without_root_powers("lock", model, "--python-from", "auto", "--triton", "24.10")
    finally:
        model.chmod(0o755)
    assert (res.returncode, error_line(res.stderr)) == (
        ExitCode.LOCK, f"error: cannot write to {model}: permission denied")
    assert not (model / "tritonpack.lock").exists()


@pytest.mark.parametrize(("name", "message"), [
    ("release_unquoted", '[24.10] is read by TOML as a table inside a table: quote the release, '
                         '["24.10"]'),
    ("number_value", '[24.10] python = 3.1 must be a string (quote it: python = "3.1")'),
])
def test_bad_recipe_dir(name: str, message: str) -> None:
    recipes = FIXTURES / "bad_recipes" / name
    res = run_cli("targets", "--recipes", recipes)
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.TARGET, f"error: {recipes}/triton.toml: {message}")


@pytest.mark.slow
def test_cache_disk_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The local Python channel does not fit: the cache is named, nothing is left in it."""
    with small_tmpfs("2m") as mnt:
        monkeypatch.setenv("TRITONPACK_CACHE", str(mnt))
        model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "m")
        res = run_unchanged(model, "lock", model, "--python-from", "auto", "--triton", "24.10")
        assert (res.exit_code, error_line(res.stderr)) == (
            ExitCode.CACHE, f"error: no space left on device: tritonpack's cache {mnt} is full "
                            "(2.1 MB in all)")
        assert list((mnt / "channels").iterdir()) == []


@pytest.mark.slow
def test_tmpdir_on_another_file_system_than_tritonpack(tmp_path: Path) -> None:
    """A tmpfs /tmp (holding the cache too) with tritonpack installed elsewhere: conda-pack's
    activate scripts cannot be hard-linked into the build dir (EXDEV, was exit 70): copied."""
    with small_tmpfs("1g") as mnt:
        model = shutil.copytree(FIXTURES / "models" / "plain_numpy", mnt / "m")
        env = {**os.environ, "TMPDIR": str(mnt), "TRITONPACK_CACHE": str(mnt / "cache")}
        done = subprocess.run([sys.executable, "-m", "packer", model, "--triton", "24.10",
                               "--python-from", "auto", "--no-cache", "-q"], capture_output=True, text=True,
                              env=env, check=False)
        assert done.returncode == 0, done.stderr
        with tarfile.open(model / "tritonpack-env.tar.gz") as tar:
            assert "bin/activate" in tar.getnames()


def test_bad_request_file_is_refused_before_packing(tmp_path: Path) -> None:
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "plain_numpy")
    path = FIXTURES / "bad_requests" / "deep.json"
    res = run_unchanged(model, model, "--verify", "--python-from", "auto", "--inputs", path)
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.USAGE, f"error: --inputs {path}: nested deeper than 32 levels: no tensor has "
                        "that many dimensions")


def test_repository_models_whose_config_is_not_a_file_fail(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "models" / "plain_numpy", repo / "plain_numpy")
    (repo / "a").mkdir()
    os.mkfifo(repo / "a" / "config.pbtxt")
    (repo / "b").mkdir()
    os.symlink("nowhere.pbtxt", repo / "b" / "config.pbtxt")
    res = run_cli("check", repo)
    assert (res.exit_code, res.stdout.splitlines()[:3]) == (ExitCode.MODEL, [
        "checked 3 models: a, b, plain_numpy", f"  {repo}/a/config.pbtxt: not a file",
        f"  {repo}/b/config.pbtxt: a broken symlink (to nowhere.pbtxt)"])


@pytest.mark.slow
def test_a_corrupt_lock_is_recreated_only_when_asked(tmp_path: Path) -> None:
    """What the refusal's hint says to run does re-create it."""
    model = bad_copy("lock_merge_conflict", tmp_path)
    assert run_cli("lock", model, "--python-from", "auto", "--triton", "24.10").exit_code == ExitCode.LOCK
    res = run_cli("lock", "--upgrade", model, "--python-from", "auto", "--triton", "24.10", "-q")
    assert res.exit_code == 0, res.stderr
    assert run_cli("lock", "--check", model, "--triton", "24.10").exit_code == 0


@pytest.mark.parametrize("command", [(), ("scan",), ("check",), ("export",), ("config",)])
def test_model_path_too_long_or_a_loop(tmp_path: Path, command: tuple[str, ...]) -> None:
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    long = "a" * 5000
    for path, message in ((loop, f"error: {loop}: Too many levels of symbolic links"),
                          (Path(long), f"error: {long[:200]}…: File name too long")):
        res = run_cli(*command, path)
        assert "Traceback" not in res.stderr
        assert (res.exit_code, error_line(res.stderr)) == (ExitCode.MODEL, message)


def test_no_config_beside_a_model_py_says_what_to_write(tmp_path: Path) -> None:
    """Found packing FedML's Triton example (auto_complete_config, no config.pbtxt): one line
    is enough, Triton fills in the inputs and outputs."""
    res = run_cli("scan", BAD / "config_named_config_txt")
    assert res.exit_code == ExitCode.MODEL
    assert res.stderr.splitlines()[-1] == (
        'hint: write config.pbtxt holding at least backend: "python" (Triton takes the inputs '
        "and outputs from model.py's auto_complete_config, where it has one)")
    (tmp_path / "empty" / "1").mkdir(parents=True)
    res = run_cli("scan", tmp_path / "empty")
    assert res.stderr.splitlines()[-1] == ("hint: a Triton model directory holds config.pbtxt "
                                           "and numeric version dirs (1/model.py)")


@pytest.mark.parametrize(("make", "what"), [(os.mkfifo, "a FIFO (named pipe)"),
                                            (os.mkdir, "a directory")])
def test_an_include_that_is_not_a_file_is_named(tmp_path: Path, make: Callable[[Path], None],
                                                what: str) -> None:
    """-r naming a FIFO or a directory says what is there (was 'no such file')."""
    model = shutil.copytree(FIXTURES / "models" / "plain_numpy", tmp_path / "plain_numpy")
    make(model / "extra.txt")
    (model / "requirements.txt").write_text("-r extra.txt\n")
    res = run_unchanged(model, "scan", model)
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.MODEL, f"error: plain_numpy/requirements.txt:1: -r extra.txt: is {what}, "
        "not a file")
