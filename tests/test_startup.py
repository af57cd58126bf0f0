"""Start-up: the CLI imports a command's stages only when that command runs.

Behaviour, not timing: which modules a fresh interpreter holds after importing the CLI
(or one command), and that the fast ``--version`` answers what click's would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from packer import cli
from packer.core.errors import ExitCode

from .conftest import FIXTURES, error_line, run_cli

HEAVY = ("rattler", "conda_pack", "tritonclient", "grpc", "numpy", "docker", "oras", "uv",
         "google.protobuf", "packer.pack", "packer.verify", "packer.build", "packer.lock",
         "packer.pipeline")


def _loaded_after(statement: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"import sys\n{statement}\n"
                          "print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def _heavy(modules: set[str], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(m for m in modules
                  if any(m == h or m.startswith(h + ".") for h in HEAVY if h not in allowed))


def test_importing_the_cli_loads_no_stage() -> None:
    assert _heavy(_loaded_after("import packer.cli")) == []


def test_the_help_loads_no_command() -> None:
    loaded = _loaded_after("from packer.cli import main\n"
                           "try:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert _heavy(loaded) == []
    assert not any(m.startswith("packer.commands.") for m in loaded)


def test_scan_loads_only_scan_and_resolve() -> None:
    """The scan reads config.pbtxt (protobuf) and the settings' index and lock names
    (packer.lock); nothing of build, pack or verify, and no solver."""
    loaded = _loaded_after("import packer.commands.scan")
    assert _heavy(loaded, allowed=("google.protobuf", "packer.lock")) == []


def test_fast_version_says_what_click_says() -> None:
    fast = subprocess.run([sys.executable, "-m", "packer", "--version"], capture_output=True,
                          text=True, check=True)
    assert fast.stdout == run_cli("--version").stdout
    assert fast.stdout.startswith("tritonpack, version ")


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_command_summaries_are_the_commands_own(name: str) -> None:
    """`tritonpack --help` lists commands without importing them: its summaries must be
    what each command's docstring says."""
    real = cli.main.get_command(click.Context(cli.main), name)
    assert real is not None
    shown = click.Command(name, short_help=cli.COMMANDS[name][1])
    for limit in (45, 80, 300):
        assert shown.get_short_help_str(limit) == real.get_short_help_str(limit)


@pytest.mark.parametrize(("args", "message"), [
    (("scna", "--json"), "unknown command 'scna' (did you mean 'scan'?)"),
    (("scan", "--no-such-flag", "--json"), "No such option '--no-such-flag'."),
    (("scan", "--json", "--triton"), "Option '--triton' requires an argument."),
])
def test_usage_error_with_json_is_json(args: tuple[str, ...], message: str) -> None:
    res = run_cli(*args, *( [FIXTURES / "models" / "plain_numpy"] if args[0] == "scna" else []))
    assert res.exit_code == 2
    out = json.loads(res.stdout)
    assert out == {"schema": "tritonpack/v1", "command": "usage",
                   "error": {"message": message, "hint": "run tritonpack --help",
                             "exit_code": 2, "detail": None}}
    assert res.stderr.splitlines()[-1] == f"Error: {message}"


def test_usage_error_without_json_prints_nothing_on_stdout() -> None:
    res = run_cli("scan", "--no-such-flag")
    assert (res.exit_code, res.stdout) == (2, "")


# --- a directory that is no model: named as such by every command --------------------------

NO_CONFIG = FIXTURES / "bad" / "no_config"  # 1/model.py, no config.pbtxt


def test_export_names_the_missing_config() -> None:
    res = run_cli("export", NO_CONFIG)
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.MODEL, f"error: {NO_CONFIG.resolve()}: no config.pbtxt")


def test_check_counts_no_directory_without_config_as_a_model() -> None:
    res = run_cli("check", NO_CONFIG)
    assert (res.exit_code, error_line(res.stderr), res.stdout) == (
        ExitCode.MODEL, f"error: {NO_CONFIG}: no config.pbtxt, and no model directory in it "
        "holds one", "")
    out = json.loads(run_cli("check", NO_CONFIG, "--json").stdout)
    assert out["error"]["message"] == f"{NO_CONFIG}: no config.pbtxt, and no model directory " \
        "in it holds one"


@pytest.mark.parametrize("args", [("-q", "scan"), ("--json", "scan"), ("--quiet", "--json", "scan")])
def test_options_before_the_command_are_the_commands(args: tuple[str, ...]) -> None:
    """`tritonpack -q scan DIR` (git's and docker's habit) is `tritonpack scan -q DIR`, not a
    pack of a model dir named scan."""
    example = FIXTURES.parent.parent / "examples" / "numpy_model"
    res = run_cli(*args, example)
    assert res.exit_code == 0, res.stderr
    if "--json" in args:
        assert json.loads(res.stdout)["command"] == "scan"
    else:
        assert "requirements: numpy" in res.stdout


def test_an_options_value_named_like_a_command_is_the_value(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`tritonpack --src check scan DIR`: `check` is --src's directory, not the command (it was
    taken as `tritonpack check --src scan DIR`)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "check").mkdir()
    example = FIXTURES.parent.parent / "examples" / "numpy_model"
    res = run_cli("--src", "check", "scan", example, "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["command"] == "scan"


def test_check_of_the_current_dir_names_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES / "models" / "plain_numpy")
    out = json.loads(run_cli("check", ".", "--json").stdout)
    assert out["models"] == ["plain_numpy"]


def test_every_package_ships() -> None:
    """pyproject.toml lists the packages explicitly: a new one (packer/commands/) missing
    there works in a checkout and is absent from the wheel."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(root).parts)
             for p in (root / "packer").rglob("__init__.py")}
    assert found <= listed
