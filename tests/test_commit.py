"""The commit protocol (packer/core/journal.py): a model's outputs change together or not at all,
and every message says what is on disk."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.archive.writer import STAMP, read_stamp
from packer.core import journal
from packer.core.debris import tagged
from packer.core.errors import ExitCode, PackError
from packer.core.journal import JOURNAL, Commit, recover
from packer.pack.output import is_tritonpack_output

from .conftest import copy_model, error_line, interrupt_expected, run_cli, snapshot

Copy = Callable[..., Path]


def _env(path: Path, lock: str) -> Path:
    """An environment archive as tritonpack writes it: its stamp the first entry."""
    data = json.dumps({"lock": lock, "format": 1}).encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(STAMP)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def _files(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A packed model: config.pbtxt, the lock, the environment and its record."""
    root = tmp_path / "m"
    root.mkdir()
    for name in ("config.pbtxt", "tritonpack.lock", "tritonpack-env.tar.gz.sha256"):
        (root / name).write_bytes(f"old {name}\n".encode())
    _env(root / "tritonpack-env.tar.gz", "old")
    return root, snapshot(root)


def _commit(root: Path) -> Commit:
    """The five outputs of a pack, the SBOM new (it did not exist before)."""
    env = root / "tritonpack-env.tar.gz"
    fd, tmp = tempfile.mkstemp(prefix=tagged(f".{env.name}."), suffix=".tmp", dir=root)
    os.close(fd)
    commit = Commit(root)
    commit.add_bytes("lock", root / "tritonpack.lock", b"new lock\n")
    commit.add_staged(env, _env(Path(tmp), "new"), directory=False)
    commit.add_bytes("record", root / "tritonpack-env.tar.gz.sha256", b"new record\n")
    commit.add_bytes("sbom", root / "tritonpack-env.cdx.json", b"new sbom\n")
    commit.add_bytes("config", root / "config.pbtxt", b"new config\n")
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
    assert (root / JOURNAL).exists() and (root / "tritonpack.lock").read_bytes() == b"new lock\n"
    assert recover(root, is_tritonpack_output) == (
        "rolled back the commit an interrupted run left half done (the model directory is as it "
        "was before that run)")
    assert snapshot(root) == before and sorted(p.name for p in root.iterdir()) == sorted(before)


def test_a_run_killed_after_its_renames_is_finished_by_the_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = _files(tmp_path)

    def killed(steps: list[journal.Step]) -> None:
        raise Killed

    monkeypatch.setattr(journal, "finish", killed)
    with pytest.raises(Killed):
        _commit(root).run()
    monkeypatch.undo()
    assert recover(root, is_tritonpack_output) == (
        "finished the commit an interrupted run left (its outputs are all in place)")
    after = snapshot(root)
    assert {n: after[n] for n in after if n != "tritonpack-env.tar.gz"} == {
        "config.pbtxt": b"new config\n", "tritonpack.lock": b"new lock\n",
        "tritonpack-env.tar.gz.sha256": b"new record\n", "tritonpack-env.cdx.json": b"new sbom\n"}
    assert read_stamp(root / "tritonpack-env.tar.gz") == {"lock": "new", "format": 1}


def test_a_failed_rename_rolls_back_and_says_so(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root, before = _files(tmp_path)
    real = journal._rename

    def full_on_c(step: journal.Step) -> None:
        if step.dest.name == "tritonpack-env.cdx.json":
            raise OSError(errno.EIO, "Input/output error")
        real(step)

    monkeypatch.setattr(journal, "_rename", full_on_c)
    with pytest.raises(journal.PackError) as err:
        _commit(root).run()
    assert err.value.message == ("cannot commit the outputs: input/output error; rolled back: "
                                 "the model directory is as it was")
    assert snapshot(root) == before and sorted(p.name for p in root.iterdir()) == sorted(before)


# --- real packs (a cache hit after the first: about a second each) ---

@pytest.fixture
def packed(packed_copy: Copy) -> Path:
    model = packed_copy("plain_numpy", "--triton", "24.10", "--python-from", "auto")  # packed once a session
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
        res = run_cli(packed, "--triton", "24.10", "--python-from", "auto", "-q")
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
    res = run_cli(packed, "--triton", "24.10", "--python-from", "auto", "-q")
    assert res.exit_code == ExitCode.CACHE  # a full disk is exit 15, naming it
    assert error_line(res.stderr).startswith(
        f"error: no space left on device: the disk of {packed} is full (")
    assert "hint: free some space there (nothing in the model directory was changed)" \
        in res.stderr
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
    res = run_cli(packed, "--triton", "24.10", "--python-from", "auto", "-q")
    assert res.exit_code == ExitCode.CONFIG
    assert error_line(res.stderr) == (f"error: {config} changed while tritonpack ran; left as it "
                                      "is now (nothing in the model directory was changed)")
    assert not (packed / "tritonpack-env.tar.gz").exists()  # the archive was not committed
    assert config.read_bytes().endswith(b"# edited meanwhile\n")
    assert not [p for p in packed.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_check_names_a_commit_left_by_a_killed_run(packed: Path) -> None:
    assert run_cli(packed, "--triton", "24.10", "--python-from", "auto", "-q").exit_code == 0
    _journal(packed, [])  # a run killed after its renames, before the journal went
    res = run_cli("check", packed)
    assert res.exit_code == 1
    assert res.stdout.splitlines()[1].strip() == (
        f"plain_numpy: a run was killed while committing ({JOURNAL} is there): run tritonpack "
        f"{packed} to finish or roll back that commit")
    res = run_cli(packed, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == 0
    assert ("note  finished the commit an interrupted run left (its outputs are all in place)"
            in res.stderr)
    assert run_cli("check", packed).exit_code == 0


RUN = "r0123456789abcdef"  # a run id of the journal's form (a planted journal may guess one)


def _journal(model: Path, steps: list[dict[str, object]], *, bound: bool = True) -> Path:
    """A journal planted in ``model``: ``bound``, forged to match the directory (its path,
    device and inode, which a hostile file cannot know, but a hostile local user could);
    else in the first format, as a journal committed to git by an older tritonpack is."""
    st = os.stat(model)
    record = ({"version": 2, "run": RUN, "steps": steps,
               "dir": {"path": str(model), "dev": st.st_dev, "ino": st.st_ino}}
              if bound else {"version": 1, "steps": steps})
    (model / JOURNAL).write_text(json.dumps(record))
    return model / JOURNAL


def _step(kind: str, dest: Path, directory: bool = True) -> dict[str, object]:
    """A step naming ``dest`` with the temporary names tritonpack would give it."""
    return {"kind": kind, "dest": str(dest), "directory": directory,
            "new": str(dest.with_name(f".{dest.name}.1.{RUN}.x.tmp")),
            "backup": str(dest.with_name(f".{dest.name}.{RUN}.tritonpack-old"))}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home dir that is also a repository: ~/.ssh, ~/.git, and two models in it."""
    home = tmp_path / "home"
    for name, data in ((".ssh/id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\n"),
                       (".ssh/authorized_keys", "ssh-ed25519 AAAA me\n"),
                       (".git/HEAD", "ref: refs/heads/main\n"), (".git/config", "[core]\n")):
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_text(data)
    copy_model("plain_numpy", home, "m")
    copy_model("plain_numpy", home, "sibling")
    _env(home / "sibling" / "tritonpack-env.tar.gz", "theirs")
    monkeypatch.setenv("HOME", str(home))
    return home


TARGETS = {"a sibling model": "sibling", "the repository's .git": ".git",
           "the model's version dir": "m/1", "~/.ssh": ".ssh"}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("bound", [False, True], ids=["as-committed", "forged-binding"])
def test_a_planted_journal_deletes_nothing(home: Path, target: str, bound: bool) -> None:
    """A journal that names a path tritonpack never writes is refused, and every byte under
    the home dir (the model, its sibling, .git, .ssh) is as it was: nothing is deleted."""
    model, victim = home / "m", home / TARGETS[target]
    journal = _journal(model, [_step("env", victim)], bound=bound)
    before = snapshot(home)
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == ExitCode.PACK
    why = ("it is not in the format this tritonpack writes" if not bound
           else f"{victim}, not a name tritonpack gives an environment" if target.endswith("dir")
           else f"{victim}, outside the model directory {model}")
    assert error_line(res.stderr) == (f"error: {journal}: not a commit journal tritonpack wrote "
                                      f"for this directory ({why}): refused, nothing was touched")
    assert res.stderr.count("error:") == 1 and "Traceback" not in res.stderr
    assert snapshot(home) == before and victim.is_dir()


@pytest.mark.parametrize("kind", ["lock", "record", "sbom", "config"])
def test_a_forged_journal_cannot_name_another_file(home: Path, kind: str) -> None:
    """Each output kind has one place: the lock and config.pbtxt in this model dir, the record
    and SBOM beside this journal's environment; a sibling's file is refused by kind."""
    model, victim = home / "m", home / "sibling" / "config.pbtxt"
    env = _step("env", model / "tritonpack-env.tar.gz", directory=False)
    journal = _journal(model, [env, _step(kind, victim, directory=False)])
    before = snapshot(home)
    with pytest.raises(PackError) as err:
        recover(model, is_tritonpack_output)
    what = {"lock": "this model's tritonpack.lock", "config": "this model's config.pbtxt",
            "record": "the environment's sha256 record", "sbom": "the environment's SBOM"}
    assert err.value.message == (f"{journal}: not a commit journal tritonpack wrote for this "
                                 f"directory ({victim}, not {what[kind]}): refused, nothing "
                                 "was touched")
    assert err.value.exit_code == ExitCode.PACK
    assert snapshot(home) == before


def test_a_forged_journal_cannot_remove_an_environment_it_did_not_write(home: Path) -> None:
    """An env-shaped name in a sibling's dir is still refused when what is there is not an
    environment tritonpack wrote (no stamp): the user's data.tar.gz is kept."""
    model = home / "m"
    data = model / "data.tar.gz"
    data.write_bytes(b"user data, not an environment")
    journal = _journal(model, [_step("env", data, directory=False)])
    before = snapshot(home)
    with pytest.raises(PackError) as err:
        recover(model, is_tritonpack_output)
    assert err.value.message == (f"{journal}: not a commit journal tritonpack wrote for this "
                                 f"directory ({data} as the environment, not an environment "
                                 "tritonpack wrote): refused, nothing was touched")
    assert snapshot(home) == before


def test_a_real_journal_copied_to_another_model_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A journal a killed run left, then committed to git (or copied) with the model: in the
    clone it is bound to another directory, so it is refused and the clone is untouched."""
    root, _ = _files(tmp_path)
    real = journal._rename

    def dies_after_two(step: journal.Step) -> None:
        if step.kind == "record":
            raise Killed
        real(step)

    monkeypatch.setattr(journal, "_rename", dies_after_two)
    with pytest.raises(Killed):
        _commit(root).run()
    clone = tmp_path / "clone"
    shutil.copytree(root, clone)
    before = snapshot(clone)
    with pytest.raises(PackError) as err:
        recover(clone, is_tritonpack_output)
    assert err.value.message == (f"{clone / JOURNAL}: not a commit journal tritonpack wrote for "
                                 f"this directory (it was written for another directory, not "
                                 f"{clone}): refused, nothing was touched")
    assert snapshot(clone) == before
    assert recover(root, is_tritonpack_output) is not None  # the original still rolls back


@pytest.mark.parametrize("attack", ["delete", "overwrite", "relative", "symlinked", "backup",
                                    "new", "steps"])
def test_a_hostile_journal_touches_nothing_outside_the_model(tmp_path: Path, attack: str) -> None:
    """Recovery trusts no path of a journal, even one bound to the directory: a journal
    committed into a model repository could otherwise delete or overwrite any file the CI
    user can write."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "important").mkdir()
    (victim / "important" / "data").write_text("keep\n")
    (victim / "notes.txt").write_text("keep\n")
    model = tmp_path / "repo" / "m"
    model.mkdir(parents=True)
    payload = model / "payload"
    payload.write_text("echo ATTACKER\n")
    lock = _step("lock", model / "tritonpack.lock", directory=False)
    steps: list[dict[str, object]] = {
        "delete": [{**lock, "backup": str(victim / "important")}],
        "overwrite": [{**lock, "dest": str(victim / "notes.txt")}],
        "relative": [{**lock, "dest": "../../victim/notes.txt"}],
        "symlinked": [_step("env", model / "link" / "env.tar.gz", directory=False)],
        "backup": [{**lock, "backup": str(payload)}],
        "new": [{**lock, "new": str(model / "payload")}],
        "steps": [lock] * 9,
    }[attack]
    if attack == "symlinked":
        (model / "link").symlink_to(victim)
    path = _journal(model, steps)
    why = {"delete": f"the backup {victim / 'important'}, not the name this run gives "
                     "tritonpack.lock's",
           "overwrite": f"{victim / 'notes.txt'}, not this model's tritonpack.lock",
           "relative": "'../../victim/notes.txt', not an absolute path of its own",
           "symlinked": f"{model / 'link' / 'env.tar.gz'}, reached through a symbolic link",
           "backup": f"the backup {payload}, not the name this run gives tritonpack.lock's",
           "new": f"the new file {payload}, not one this run writes beside tritonpack.lock",
           "steps": "its list of steps is not one tritonpack writes"}[attack]
    before = snapshot(tmp_path)
    with pytest.raises(PackError) as err:
        recover(model, is_tritonpack_output)
    assert err.value.message == (f"{path}: not a commit journal tritonpack wrote for this "
                                 f"directory ({why}): refused, nothing was touched")
    assert snapshot(tmp_path) == before
    assert (model / JOURNAL).exists()  # left for the user to look at


def test_a_journal_that_is_a_fifo_is_named_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / JOURNAL)
    with pytest.raises(PackError) as err:
        recover(tmp_path, is_tritonpack_output)
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


def test_a_shared_env_commit_is_recovered_and_a_sibling_env_refused(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--shared-env puts the environment in the repository, outside the model dir: a real
    killed commit there is rolled back; a forged one naming another model's own
    environment is refused."""
    model, shared = home / "m", home / "_envs" / "common.tar.gz"
    shared.parent.mkdir()
    before = snapshot(home)
    fd, tmp = tempfile.mkstemp(prefix=tagged(f".{shared.name}."), suffix=".tmp",
                               dir=shared.parent)
    os.close(fd)
    commit = Commit(model)
    commit.add_staged(shared, _env(Path(tmp), "new"), directory=False)
    commit.add_bytes("config", model / "config.pbtxt", b"new config\n")

    def killed(step: journal.Step) -> None:
        raise Killed

    real = journal._rename
    monkeypatch.setattr(journal, "_rename", lambda s: killed(s) if s.kind == "config" else real(s))
    with pytest.raises(Killed):
        commit.run()
    monkeypatch.undo()
    assert recover(model, is_tritonpack_output) is not None
    assert snapshot(home) == before and not shared.exists()
    theirs = home / "sibling" / "tritonpack-env.tar.gz"
    path = _journal(model, [_step("env", theirs, directory=False)])
    with pytest.raises(PackError) as err:
        recover(model, is_tritonpack_output)
    assert err.value.message == (f"{path}: not a commit journal tritonpack wrote for this "
                                 f"directory ({theirs}, inside another model's directory): "
                                 "refused, nothing was touched")
    assert read_stamp(theirs) == {"lock": "theirs", "format": 1}
