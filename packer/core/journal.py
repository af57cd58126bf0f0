"""The commit protocol: a model's outputs change all together or not at all.

A pack changes up to five things in a model dir (the lock, the environment, its sha256
record, the SBOM, config.pbtxt). One rename each cannot make them one change, so:

1. **prepare**: every new file is written, fsync'd, beside its destination (a full disk
   fails here, before anything is replaced); config.pbtxt is checked to be as it was read;
2. **journal**: ``.tritonpack-journal.json`` lists each (kind, destination, new, backup),
   fsync'd, bound to this model dir (its device and inode) and to this run's random id;
3. **renames** in a fixed order (lock, environment, record, SBOM, config.pbtxt), each old
   file kept as a backup (a hard link; an old directory env renamed aside);
4. **finish**: backups removed, then the journal.

A failure in 3 rolls back (backups restored, new files removed) before the error is
reported. A run killed in 3 (power loss, SIGKILL) leaves the journal: the next run on that
model, under the same per-model lock, reads it first and finishes the commit when every
rename was done, else rolls back. SIGINT/SIGTERM are held through 2-4 (``signals``).

A journal is data that may arrive with a model (committed to git, copied, planted), so
recovery acts only on one tritonpack wrote for this very directory, and then touches only
tritonpack's own outputs (``_refusal``): anything else is refused and nothing is deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .debris import RUN_ID, tagged
from .errors import ConfigPatchError, PackError
from .fsguard import read_regular
from .signals import PACK_OUTPUTS, committed

JOURNAL = ".tritonpack-journal.json"
VERSION = 2
KINDS = ("lock", "env", "record", "sbom", "config")
_NAMES = {"lock": "tritonpack.lock", "config": "config.pbtxt"}
_RESERVED = {"config.pbtxt", "model.py", "tritonpack.lock", "tritonpack.toml",
             "requirements.txt", "environment.yml"}


@dataclass(frozen=True)
class Step:
    kind: str  # one of KINDS: what the destination is to tritonpack
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
    fd, name = tempfile.mkstemp(prefix=tagged(f".{dest.name}."), suffix=".new", dir=dest.parent)
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


def _backup_name(dest: Path, run: str = RUN_ID) -> Path:
    return dest.with_name(f".{dest.name}.{run}.tritonpack-old")


def _identity(model_dir: Path) -> dict[str, Any]:
    """What binds a journal to one directory: its real path, device and inode (a copy, a
    clone or a checkout elsewhere has another)."""
    real = model_dir.resolve()
    st = os.stat(real)
    return {"path": str(real), "dev": st.st_dev, "ino": st.st_ino}


class Commit:
    """Collect the outputs of one run, then put them in place together (``run``)."""

    def __init__(self, model_dir: Path):
        self.model_dir = model_dir
        self.steps: list[Step] = []
        self._expect: list[tuple[Path, bytes]] = []

    def add_bytes(self, kind: str, dest: Path, data: bytes, mode: int | None = None,
                  expect: bytes | None = None) -> None:
        """A file to write; ``expect``: what ``dest`` must still hold (else nothing changes)."""
        if mode is None:
            mode = dest.stat().st_mode & 0o7777 if dest.exists() else 0o644
        self.steps.append(Step(kind, dest, _write_new(dest, data, mode), _backup_name(dest)))
        if expect is not None:
            self._expect.append((dest, expect))

    def add_staged(self, dest: Path, tmp: Path, directory: bool) -> None:
        """The environment, made by this run at ``tmp`` (a ``tagged`` name beside ``dest``)."""
        self.steps.append(Step("env", dest, tmp, _backup_name(dest), directory))

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
        record = {"version": VERSION, "run": RUN_ID, "dir": _identity(self.model_dir),
                  "steps": [{"kind": s.kind, "dest": str(s.dest), "new": str(s.new),
                             "backup": str(s.backup), "directory": s.directory}
                            for s in self.steps]}
        try:
            data = (json.dumps(record, indent=2) + "\n").encode()
            with journal.open("xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            _fsync_dir(self.model_dir)
        except OSError as exc:
            self.discard()
            if not isinstance(exc, FileExistsError):
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
        committed(self.model_dir, PACK_OUTPUTS)  # what an interrupt from now on says
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


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _done(step: Step) -> bool:
    return not _exists(step.new)


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


def recover(model_dir: Path, owned: Callable[[Path], bool]) -> str | None:
    """Finish or roll back a commit a killed run left (its journal); say what was done.

    ``owned`` tells an environment tritonpack wrote (its stamp): recovery replaces or removes
    no other. A journal not bound to this directory, or naming anything but tritonpack's own
    outputs and their temporary names, is refused before anything is touched."""
    journal = model_dir / JOURNAL
    if not journal.exists() and not journal.is_symlink():
        return None
    run, steps = _read(journal, model_dir)
    rolling_back = not all(_done(s) for s in steps)
    for step in steps:
        if why := _refusal(step, model_dir, run, steps, owned, rolling_back):
            raise _refused(journal, why)
    if rolling_back:
        rollback(steps)
        what = ("rolled back the commit an interrupted run left half done (the model directory "
                "is as it was before that run)")
    else:
        finish(steps)
        what = "finished the commit an interrupted run left (its outputs are all in place)"
    _remove(journal)
    return what


def _read(journal: Path, model_dir: Path) -> tuple[str, list[Step]]:
    """The journal's run id and steps, once it is shown to be this directory's."""
    try:
        raw = json.loads(read_regular(journal, PackError, "commit journal", limit=1 << 20))
    except (OSError, ValueError, RecursionError) as exc:
        raise PackError(f"{journal}: unreadable commit journal of an interrupted run: refused, "
                        "nothing was touched", hint=_HINT, detail=str(exc)) from exc
    if not isinstance(raw, dict) or raw.get("version") != VERSION:
        raise _refused(journal, "it is not in the format this tritonpack writes")
    run, ident, items = raw.get("run"), raw.get("dir"), raw.get("steps")
    if not (isinstance(run, str) and re.fullmatch("r[0-9a-f]{16}", run)):
        raise _refused(journal, "it carries no run id")
    if ident != _identity(model_dir):
        raise _refused(journal, f"it was written for another directory, not {model_dir}")
    if not isinstance(items, list) or len(items) > len(KINDS):
        raise _refused(journal, "its list of steps is not one tritonpack writes")
    try:
        steps = [_step(item) for item in items]
    except (KeyError, TypeError, ValueError) as exc:
        raise _refused(journal, "a step is not one tritonpack writes") from exc
    return run, steps


def _step(item: Any) -> Step:
    if not isinstance(item, dict) or item["kind"] not in KINDS:
        raise ValueError("bad step")
    paths = [item[key] for key in ("dest", "new", "backup")]
    if not all(isinstance(p, str) and "\0" not in p for p in paths) or not isinstance(
            item["directory"], bool):
        raise TypeError("bad step")
    dest, new, backup = (Path(p) for p in paths)
    return Step(item["kind"], dest, new, backup, directory=item["directory"])


def _refusal(step: Step, model_dir: Path, run: str, steps: list[Step],
             owned: Callable[[Path], bool], rolling_back: bool) -> str:
    """Why recovery may not act on ``step`` ("" when it may): its destination must be one of
    the outputs tritonpack writes for this model, through no symlink, its new and backup
    files this run's temporary names beside it, and any environment it would replace or
    remove one tritonpack wrote."""
    model = model_dir.resolve()
    dest = step.dest
    if not dest.is_absolute() or ".." in dest.parts or not dest.name:
        return f"{str(dest)!r}, not an absolute path of its own"
    if dest.parent.resolve() != dest.parent:
        return f"{dest}, reached through a symbolic link"
    if why := _dest_refusal(step, model, steps):
        return why
    if step.backup != _backup_name(dest, run):
        return f"the backup {step.backup}, not the name this run gives {dest.name}'s"
    if step.new.parent != dest.parent or not re.match(
            rf"\.{re.escape(dest.name)}\.\d+\.{run}\.", step.new.name):
        return f"the new file {step.new}, not one this run writes beside {dest.name}"
    if step.kind == "env":
        for path, what in ((dest, "the environment"), (step.backup, "the backup")):
            if _exists(path) and not owned(path):
                return f"{path} as {what}, not an environment tritonpack wrote"
    if (step.kind == "config" and rolling_back and _done(step) and not _exists(step.backup)):
        return f"{dest} as new, which rolling back would delete"
    return ""


def _dest_refusal(step: Step, model: Path, steps: list[Step]) -> str:
    """Why ``step.dest`` is not the output of its kind for ``model`` ("" when it is)."""
    dest = step.dest
    if step.kind in _NAMES:
        expect = model / _NAMES[step.kind]
        if dest == expect or (step.kind == "config" and expect.is_symlink()
                              and expect.resolve() == dest and dest.is_relative_to(model)):
            return "" if not step.directory else f"{dest} as a directory"
        return f"{dest}, not this model's {_NAMES[step.kind]}"
    envs = [s.dest for s in steps if s.kind == "env"]
    if len(envs) != 1:
        return "no single environment"
    if step.kind == "record":
        ok = dest == envs[0].with_name(envs[0].name + ".sha256")
        return "" if ok and not step.directory else f"{dest}, not the environment's sha256 record"
    if step.kind == "sbom":
        ok = dest == envs[0].with_name(envs[0].name.removesuffix(".tar.gz") + ".cdx.json")
        return "" if ok and not step.directory else f"{dest}, not the environment's SBOM"
    root = model if dest.is_relative_to(model) else model.parent  # --shared-env: the repository
    if not dest.is_relative_to(root) or dest == root or (root != model and dest.parent == root):
        return f"{dest}, outside the model directory {model}"
    if root != model and any((d / "config.pbtxt").exists() for d in dest.parents
                             if d.is_relative_to(root) and d != root):
        return f"{dest}, inside another model's directory"
    rel = dest.relative_to(root).parts
    if any(part.isdigit() for part in rel) or dest.name in _RESERVED or dest.name.endswith(
            (".sha256", ".cdx.json")) or not (step.directory or dest.name.endswith(".tar.gz")):
        return f"{dest}, not a name tritonpack gives an environment"
    return ""


_HINT = ("a journal tritonpack writes names only its own outputs in this model directory; if "
         "it came with the model (copied, or committed to git), check the files it names, "
         "then remove it")


def _refused(journal: Path, why: str) -> PackError:
    return PackError(f"{journal}: not a commit journal tritonpack wrote for this directory "
                     f"({why}): refused, nothing was touched", hint=_HINT)


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
