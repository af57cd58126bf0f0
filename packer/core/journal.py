"""The commit protocol: a model's outputs change all together or not at all.

A pack changes up to five things in a model dir (the lock, the environment, its sha256
record, the SBOM, config.pbtxt). One rename each cannot make them one change, so:

1. **prepare**: every new file is written, fsync'd, beside its destination (a full disk
   fails here, before anything is replaced); config.pbtxt is checked to be as it was read;
2. **journal**: ``.tritonpack-journal.json`` lists each (destination, new, backup), fsync'd;
3. **renames** in a fixed order (lock, environment, record, SBOM, config.pbtxt), each old
   file kept as a backup (a hard link; an old directory env renamed aside);
4. **finish**: backups removed, then the journal.

A failure in 3 rolls back (backups restored, new files removed) before the error is
reported. A run killed in 3 (power loss, SIGKILL) leaves the journal: the next run on that
model, under the same per-model lock, reads it first and finishes the commit when every
rename was done, else rolls back. SIGINT/SIGTERM are held through 2-4 (``signals``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigPatchError, PackError
from .fsguard import read_regular

JOURNAL = ".tritonpack-journal.json"


@dataclass(frozen=True)
class Step:
    dest: Path
    new: Path  # written beside dest; renamed onto it
    backup: Path  # the old dest, while the commit runs
    directory: bool = False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new(dest: Path, data: bytes, mode: int) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".new", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(name, mode)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _backup_name(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.tritonpack-old")


class Commit:
    """Collect the outputs of one run, then put them in place together (``run``)."""

    def __init__(self, model_dir: Path):
        self.model_dir = model_dir
        self.steps: list[Step] = []
        self._expect: list[tuple[Path, bytes]] = []

    def add_bytes(self, dest: Path, data: bytes, mode: int | None = None,
                  expect: bytes | None = None) -> None:
        """A file to write; ``expect``: what ``dest`` must still hold (else nothing changes)."""
        if mode is None:
            mode = dest.stat().st_mode & 0o7777 if dest.exists() else 0o644
        self.steps.append(Step(dest, _write_new(dest, data, mode), _backup_name(dest)))
        if expect is not None:
            self._expect.append((dest, expect))

    def add_staged(self, dest: Path, tmp: Path, directory: bool) -> None:
        self.steps.append(Step(dest, tmp, _backup_name(dest), directory))

    def discard(self) -> None:
        for step in self.steps:
            _remove(step.new)

    def run(self) -> None:
        """Journal, rename in order, finish; on any failure roll back and say so."""
        for dest, expect in self._expect:
            if dest.read_bytes() != expect:
                self.discard()
                raise ConfigPatchError(f"{dest} changed while tritonpack ran; left as it is now "
                                       "(nothing in the model directory was changed)",
                                       hint="run tritonpack again")
        journal = self.model_dir / JOURNAL
        record = {"version": 1, "steps": [
            {"dest": str(s.dest), "new": str(s.new), "backup": str(s.backup),
             "directory": s.directory} for s in self.steps]}
        try:
            for step in self.steps:
                _remove(step.backup)  # left by a run that finished oddly: not the user's
            data = (json.dumps(record, indent=2) + "\n").encode()
            with journal.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            _fsync_dir(self.model_dir)
        except OSError as exc:
            self.discard()
            _remove(journal)
            raise _failed(exc, "nothing in the model directory was changed") from exc
        try:
            for step in self.steps:
                _rename(step)
        except OSError as exc:
            try:
                rollback(self.steps)
            except OSError as again:
                raise PackError(
                    f"committing failed ({_why(exc)}) and so did rolling back ({_why(again)})",
                    hint=f"{journal} lists each file; the next tritonpack run on this model "
                    "finishes or rolls back the commit", detail=str(exc)) from exc
            _remove(journal)
            raise _failed(exc, "rolled back: the model directory is as it was") from exc
        try:
            finish(self.steps)
        except OSError:
            return  # every output is in place; the journal stays, the next run tidies up
        _remove(journal)


def _rename(step: Step) -> None:
    if step.directory:
        if step.dest.exists():
            os.rename(step.dest, step.backup)
        os.rename(step.new, step.dest)
    else:
        if step.dest.exists():
            os.link(step.dest, step.backup)
        os.replace(step.new, step.dest)


def _done(step: Step) -> bool:
    return not (step.new.exists() or step.new.is_symlink())


def rollback(steps: list[Step]) -> None:
    """Undo renames (newest first): restore each backup, remove what was new."""
    for step in reversed(steps):
        if _done(step):
            if step.backup.exists():
                if step.directory:
                    _remove(step.dest)
                    os.rename(step.backup, step.dest)
                else:
                    os.replace(step.backup, step.dest)
            else:
                _remove(step.dest)  # it did not exist before
        else:
            _remove(step.new)
            if step.directory and step.backup.exists() and not step.dest.exists():
                os.rename(step.backup, step.dest)
            elif not step.directory:
                _remove(step.backup)


def finish(steps: list[Step]) -> None:
    for step in steps:
        _remove(step.backup)


def recover(model_dir: Path) -> str | None:
    """Finish or roll back a commit a killed run left (its journal); say what was done."""
    journal = model_dir / JOURNAL
    if not journal.exists() and not journal.is_symlink():
        return None
    try:
        raw = json.loads(read_regular(journal, PackError, "commit journal", limit=1 << 20))
        steps = [Step(Path(s["dest"]), Path(s["new"]), Path(s["backup"]), bool(s["directory"]))
                 for s in raw["steps"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PackError(f"{journal}: unreadable commit journal of an interrupted run",
                        hint="check the files it names, then remove it", detail=str(exc)) from exc
    for step in steps:
        if why := _outside(step, model_dir):
            raise PackError(f"{journal}: the commit journal names {why}: refused, nothing was "
                            "touched (a journal tritonpack writes names only its own outputs "
                            "beside the model)", hint="remove the journal: it was not written "
                            "by tritonpack, or was edited")
    if all(_done(s) for s in steps):
        finish(steps)
        what = "finished the commit an interrupted run left (its outputs are all in place)"
    else:
        rollback(steps)
        what = ("rolled back the commit an interrupted run left half done (the model directory "
                "is as it was before that run)")
    _remove(journal)
    return what


def _outside(step: Step, model_dir: Path) -> str:
    """Why a step is not one tritonpack writes ("" when it is): its destination inside the
    model dir or, for --shared-env, the repository around it, through no symlink, and its new
    and backup files tritonpack's names beside it."""
    root = model_dir.resolve().parent
    dest = step.dest
    if not dest.is_absolute() or ".." in dest.parts or not dest.name:
        return f"{str(dest)!r}, not an absolute path of its own"
    if dest.parent.resolve() != dest.parent or not dest.is_relative_to(root):
        return f"{dest}, outside the model repository {root}"
    if step.backup != _backup_name(dest):
        return f"the backup {step.backup}, not tritonpack's name for {dest.name}'s"
    if step.new.parent != dest.parent or not step.new.name.startswith(f".{dest.name}."):
        return f"the new file {step.new}, not one tritonpack writes beside {dest.name}"
    return ""


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _why(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else str(exc)


def _failed(exc: OSError, state: str) -> PackError:
    return PackError(f"cannot commit the outputs: {_why(exc)}; {state}", detail=str(exc))
