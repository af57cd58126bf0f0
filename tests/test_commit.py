"""The commit protocol (packer/core/journal.py): a model's outputs change together or not at all,
and every message says what is on disk."""

from __future__ import annotations

import errno
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.core import journal
from packer.core.errors import ExitCode, PackError
from packer.core.journal import JOURNAL, Commit, recover

from .conftest import error_line, interrupt_expected, run_cli, snapshot

Copy = Callable[..., Path]


def _files(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    for name in ("a", "b", "c"):
        (tmp_path / name).write_bytes(f"old {name}\n".encode())
    return tmp_path, snapshot(tmp_path)


def _commit(root: Path) -> Commit:
    commit = Commit(root)
    for name in ("a", "b", "c", "d"):
        commit.add_bytes(root / name, f"new {name}\n".encode())
    return commit


class Killed(BaseException):
    """A run that dies mid-commit (power loss, SIGKILL): no except clause runs."""


def test_a_run_killed_mid_commit_is_rolled_back_by_the_next(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root, before = _files(tmp_path)
    real = journal._rename
    calls = []

    def dies_on_the_third(step: journal.Step) -> None:
        calls.append(step)
        if len(calls) == 3:
            raise Killed
        real(step)

    monkeypatch.setattr(journal, "_rename", dies_on_the_third)
    with pytest.raises(Killed):
        _commit(root).run()
    assert (root / JOURNAL).exists() and (root / "a").read_bytes() == b"new a\n"
    assert recover(root) == ("rolled back the commit an interrupted run left half done (the "
                             "model directory is as it was before that run)")
    assert snapshot(root) == before and sorted(p.name for p in root.iterdir()) == ["a", "b", "c"]


def test_a_run_killed_after_its_renames_is_finished_by_the_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = _files(tmp_path)

    def killed(steps: list[journal.Step]) -> None:
        raise Killed

    monkeypatch.setattr(journal, "finish", killed)
    with pytest.raises(Killed):
        _commit(root).run()
    monkeypatch.undo()
    assert recover(root) == ("finished the commit an interrupted run left (its outputs are all "
                             "in place)")
    assert snapshot(root) == {n: f"new {n}\n".encode() for n in "abcd"}
    assert sorted(p.name for p in root.iterdir()) == ["a", "b", "c", "d"]


def test_a_failed_rename_rolls_back_and_says_so(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root, before = _files(tmp_path)
    real = journal._rename

    def full_on_c(step: journal.Step) -> None:
        if step.dest.name == "c":
            raise OSError(errno.EIO, "Input/output error")
        real(step)

    monkeypatch.setattr(journal, "_rename", full_on_c)
    with pytest.raises(journal.PackError) as err:
        _commit(root).run()
    assert err.value.message == ("cannot commit the outputs: input/output error; rolled back: "
                                 "the model directory is as it was")
    assert snapshot(root) == before and sorted(p.name for p in root.iterdir()) == ["a", "b", "c"]


# --- real packs (a cache hit after the first: about a second each) ---

@pytest.fixture
def packed(model_copy: Copy) -> Path:
    model = model_copy("plain_numpy")
    assert run_cli(model, "--triton", "24.10", "--offline", "-q").exit_code == 0
    (model / "tritonpack-env.tar.gz").unlink()  # the next run commits a new archive
    return model


@pytest.mark.slow
def test_a_signal_in_the_commit_window_is_reported_after_it(
        packed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = journal._rename

    def signalled(step: journal.Step) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        real(step)

    monkeypatch.setattr(journal, "_rename", signalled)
    with interrupt_expected():
        res = run_cli(packed, "--triton", "24.10", "--offline", "-q")
    assert res.exit_code == ExitCode.INTERRUPTED
    assert res.stderr.strip() == ("interrupted (SIGINT) after the commit: the new environment, "
                                  "lock and config.pbtxt are all in place")
    assert (packed / "tritonpack-env.tar.gz").is_file()
    assert run_cli("check", packed).exit_code == 0
    assert not [p for p in packed.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_a_full_disk_while_writing_the_config_changes_nothing(
        packed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = journal._write_new

    def full(dest: Path, data: bytes, mode: int) -> Path:
        if dest.name == "config.pbtxt":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(dest, data, mode)

    (packed / "config.pbtxt").write_text((packed / "config.pbtxt").read_text().replace(
        "$$TRITON_MODEL_DIRECTORY/tritonpack-env.tar.gz", "$$TRITON_MODEL_DIRECTORY/old.tar.gz"))
    before = snapshot(packed)
    monkeypatch.setattr(journal, "_write_new", full)
    res = run_cli(packed, "--triton", "24.10", "--offline", "-q")
    assert res.exit_code == ExitCode.PACK
    assert error_line(res.stderr) == f"error: cannot write to {packed}: no space left on device"
    assert "hint: nothing in the model directory was changed" in res.stderr
    assert snapshot(packed) == before
    assert not [p for p in packed.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_a_config_edited_during_the_pack_changes_nothing(
        packed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from packer.caches import envs as envcache

    real = envcache.place
    config = packed / "config.pbtxt"

    def edit_while_packing(src: Path, tmp: Path, fmt: str) -> None:
        config.write_bytes(config.read_bytes() + b"# edited meanwhile\n")
        real(src, tmp, fmt)

    monkeypatch.setattr(envcache, "place", edit_while_packing)
    res = run_cli(packed, "--triton", "24.10", "--offline", "-q")
    assert res.exit_code == ExitCode.CONFIG
    assert error_line(res.stderr) == (f"error: {config} changed while tritonpack ran; left as it "
                                      "is now (nothing in the model directory was changed)")
    assert not (packed / "tritonpack-env.tar.gz").exists()  # the archive was not committed
    assert config.read_bytes().endswith(b"# edited meanwhile\n")
    assert not [p for p in packed.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_check_names_a_commit_left_by_a_killed_run(packed: Path) -> None:
    assert run_cli(packed, "--triton", "24.10", "--offline", "-q").exit_code == 0
    (packed / JOURNAL).write_text('{"version": 1, "steps": []}\n')
    res = run_cli("check", packed)
    assert res.exit_code == 1
    assert res.stdout.splitlines()[1].strip() == (
        f"plain_numpy: a run was killed while committing ({JOURNAL} is there): run tritonpack "
        f"{packed} to finish or roll back that commit")
    res = run_cli(packed, "--triton", "24.10", "--offline")
    assert res.exit_code == 0
    assert ("note  finished the commit an interrupted run left (its outputs are all in place)"
            in res.stderr)
    assert run_cli("check", packed).exit_code == 0


@pytest.mark.parametrize("attack", ["delete", "overwrite", "relative", "symlinked"])
def test_a_hostile_journal_touches_nothing_outside_the_model(tmp_path: Path, attack: str) -> None:
    """Recovery trusts no path of a journal it did not write: a journal committed into a model
    repository could otherwise delete or overwrite any file the CI user can write."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "important").mkdir()
    (victim / "important" / "data").write_text("keep\n")
    (victim / "notes.txt").write_text("keep\n")
    model = tmp_path / "repo" / "m"
    model.mkdir(parents=True)
    payload = model / "payload"
    payload.write_text("echo ATTACKER\n")
    steps = {
        "delete": [{"dest": str(victim / "x"), "new": str(tmp_path / "nope"),
                    "backup": str(victim / "important"), "directory": True}],
        "overwrite": [{"dest": str(victim / "notes.txt"), "new": str(model / "gone"),
                       "backup": str(payload), "directory": False}],
        "relative": [{"dest": "../../victim/notes.txt", "new": "x", "backup": "y",
                      "directory": False}],
        "symlinked": [{"dest": str(model / "link" / "notes.txt"),
                       "new": str(model / "link" / ".notes.txt.1.tmp"),
                       "backup": str(model / "link" / ".notes.txt.tritonpack-old"),
                       "directory": False}],
    }[attack]
    if attack == "symlinked":
        (model / "link").symlink_to(victim)
    (model / JOURNAL).write_text(json.dumps({"version": 1, "steps": steps}))
    with pytest.raises(PackError) as err:
        recover(model)
    assert err.value.message.startswith(f"{model / JOURNAL}: the commit journal names ")
    assert err.value.message.endswith(": refused, nothing was touched (a journal tritonpack "
                                      "writes names only its own outputs beside the model)")
    assert (victim / "important" / "data").read_text() == "keep\n"
    assert (victim / "notes.txt").read_text() == "keep\n"
    assert payload.read_text() == "echo ATTACKER\n"
    assert (model / JOURNAL).exists()  # left for the user to look at


def test_a_journal_that_is_a_fifo_is_named_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / JOURNAL)
    with pytest.raises(PackError) as err:
        recover(tmp_path)
    assert err.value.message == (f"{tmp_path / JOURNAL}: is a FIFO (named pipe), not a commit "
                                 "journal")


def test_a_fifo_where_the_record_belongs_is_not_read(tmp_path: Path) -> None:
    """check reads the sha256 record beside the environment: a FIFO there must not hang it."""
    from packer.core import integrity

    env = tmp_path / "tritonpack-env.tar.gz"
    env.write_bytes(b"\x1f\x8b")
    os.mkfifo(integrity.record_path(env))
    assert integrity.verify(env) == ("tritonpack-env.tar.gz has no readable sha256 record "
                                     "(tritonpack-env.tar.gz.sha256): re-pack it")
