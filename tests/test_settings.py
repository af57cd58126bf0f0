"""Each setting is declared once (packer.settings.SETTINGS): the click options, the
tritonpack.toml keys and `tritonpack config`'s rows are derived from it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from packer.cli import main
from packer.settings import CONFIGURABLE, SETTINGS, Options, from_command_line

from .conftest import copy_model, run_cli


def test_every_option_field_has_its_setting() -> None:
    fields = {f.name for f in dataclasses.fields(Options)} - {"explicit", "indexes"}
    indexes = {"index_url", "extra_index_urls", "find_links"}
    assert {s.field for s in SETTINGS.values()} == fields | indexes


def test_the_commands_take_the_declared_options() -> None:
    ctx = click.Context(main)
    for name, groups in {"pack": ("target", "source", "lock", "remote"),
                         "lock": ("target", "source", "lock"), "scan": ("target", "source"),
                         "config": ("target", "source", "lock")}.items():
        command = main.get_command(ctx, name)
        assert command is not None
        taken = {p.name for p in command.params}
        declared = {s.param for s in SETTINGS.values() if s.group in groups}
        others = {s.param for s in SETTINGS.values() if s.group not in groups}
        assert declared <= taken and not (others & taken), name


def test_command_line_values_fill_options() -> None:
    opts = from_command_line({"triton": "24.08", "channel": ("c1",), "index_url": "https://x/s",
                              "find_links": ("/w",), "no_wait": True, "offline": False,
                              "model_version": 2, "src": (Path("/s"),)})
    assert (opts.triton, opts.channels, opts.indexes.index_url, opts.indexes.find_links,
            opts.wait, opts.offline, opts.version, opts.src) == (
        "24.08", ("c1",), "https://x/s", ("/w",), False, False, 2, (Path("/s"),))
    assert opts.explicit == {"triton", "channel", "index-url", "find-links", "src"}
    assert from_command_line({"model_version": 0, "offline": True}).version == 0
    assert from_command_line({"triton": "", "src": ()}) == Options()


def test_config_rows_and_toml_keys_are_the_configurable_settings(tmp_path: Path) -> None:
    model = copy_model("plain_numpy", tmp_path)
    rows = json.loads(run_cli("config", model, "--json").stdout)["settings"]
    assert list(rows) == list(CONFIGURABLE)
    (model / "tritonpack.toml").write_text('[options]\nno-wait = true\n')
    res = run_cli("config", model)
    assert res.exit_code == 3
    assert "unknown option 'no-wait' in [options]" in res.stderr


def test_config_shows_the_python_the_release_decides(tmp_path: Path) -> None:
    """An unset --python is not "-": it is the target release's stub Python."""
    model = copy_model("plain_numpy", tmp_path)
    rows = json.loads(run_cli("config", model, "--triton", "24.10", "--json").stdout)["settings"]
    assert rows["python"] == {"value": "3.10 (Triton 24.10's stub)", "source": "default"}


def test_no_strip_turns_off_a_toml_strip(tmp_path: Path) -> None:
    """A flag tritonpack.toml may set has its --no- form: the command line wins either way,
    and `config` says true/false (a string, as the schema has it), not True's "1"."""
    model = copy_model("plain_numpy", tmp_path)
    (model / "tritonpack.toml").write_text("[options]\nstrip = true\n")

    def strip(*args: str) -> dict[str, str]:
        res = run_cli("config", model, *args, "--json")
        assert res.exit_code == 0, res.stderr
        return json.loads(res.stdout)["settings"]["strip"]

    assert strip() == {"value": "true", "source": "tritonpack.toml"}
    assert strip("--no-strip") == {"value": "false", "source": "command line"}
    assert strip("--strip") == {"value": "true", "source": "command line"}
    line = run_cli("config", model, "--no-strip").stdout.splitlines()[CONFIGURABLE.index("strip")]
    assert line.split() == ["strip", "false", "command", "line"]
    assert from_command_line({"strip": False}).explicit == {"strip"}
    assert from_command_line({"strip": None}) == Options()  # neither given: toml and lock decide
    (model / "tritonpack.toml").unlink()
    assert strip() == {"value": None, "source": "default"}
