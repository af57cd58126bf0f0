"""Where the packed environment goes, and what it may replace.

Inside the model directory (so ``$$TRITON_MODEL_DIRECTORY`` reaches it) or, for
``--shared-env``, inside the repository; it replaces only an environment tritonpack wrote
(its stamp says so), never a version dir, the model's files or anything else the user wrote.
"""

from __future__ import annotations

from pathlib import Path

from ..archive.writer import read_stamp
from ..core.errors import PackError
from ..core.fsguard import not_regular

ARCHIVE_NAME = "tritonpack-env.tar.gz"
DIR_NAME = "tritonpack-env"
FORMATS = ("tar.gz", "dir")

# What an --output may never name: the model's own files (Triton's or tritonpack's inputs).
RESERVED = {"config.pbtxt": "the model's configuration", "model.py": "the model's code",
            "tritonpack.lock": "the lock", "tritonpack.toml": "tritonpack's settings",
            "requirements.txt": "the model's declared requirements",
            "environment.yml": "the model's declared requirements"}


def default_name(fmt: str) -> str:
    return DIR_NAME if fmt == "dir" else ARCHIVE_NAME


def output_path(model_dir: Path, name: str | None, fmt: str,
                shared_root: Path | None = None) -> Path:
    """Where the environment goes: inside the model dir, so $$TRITON_MODEL_DIRECTORY reaches it
    (or, for --shared-env, anywhere inside the repository ``shared_root``). It may replace
    only an environment tritonpack wrote (its stamp says so): never a version dir, a numeric
    name, the model's files or anything else the user wrote (``_refuse_to_replace``)."""
    if shared_root is not None and name is not None:
        dest = (shared_root / name).resolve()
        if not dest.is_relative_to(shared_root.resolve()) or dest.parent == shared_root.resolve():
            raise PackError(f"--shared-env {name}: must be a path in a directory of the "
                            f"repository {shared_root}, e.g. _envs/common.tar.gz")
        if fmt == "tar.gz" and not dest.name.endswith(".tar.gz"):
            raise PackError(f"--shared-env {name}: an archive name must end in .tar.gz")
        _refuse_to_replace("--shared-env", name, dest, shared_root.resolve())
        return dest
    rel = Path(name or default_name(fmt))
    dest = (model_dir / rel).resolve() if not rel.is_absolute() else rel.resolve()
    if not dest.is_relative_to(model_dir) or dest == model_dir:
        raise PackError(
            f"--output {name}: must be a path inside the model directory {model_dir}",
            hint="Triton finds the environment through $$TRITON_MODEL_DIRECTORY/<path>",
        )
    if fmt == "tar.gz" and not dest.name.endswith(".tar.gz"):
        raise PackError(f"--output {name}: an archive name must end in .tar.gz",
                        hint="Triton reads gzip'd tar only")
    if dest.parent.is_relative_to(model_dir) and dest.parent.name.isdigit() and (
        dest.parent.parent == model_dir
    ):
        raise PackError(f"--output {name}: not inside a version dir",
                        hint="Triton would load every file there as part of the model version")
    _refuse_to_replace("--output", name or dest.name, dest, model_dir)
    return dest


def _refuse_to_replace(option: str, name: str, dest: Path, root: Path) -> None:
    """Refuse, before any work, a destination that is not tritonpack's to write."""
    parts = dest.relative_to(root).parts
    if any(part.isdigit() for part in parts):
        raise PackError(f"{option} {name}: a numeric name is a model version dir to Triton",
                        hint="choose a name that is not a number, e.g. tritonpack-env")
    if dest.name in RESERVED:
        raise PackError(f"{option} {name}: {dest.name} is {RESERVED[dest.name]}: tritonpack "
                        "never writes over it", hint="choose another name")
    if dest.name.endswith((".sha256", ".cdx.json")):
        raise PackError(f"{option} {name}: {dest.name} is the name of a record tritonpack "
                        "writes beside an environment", hint="choose another name")
    if (dest.exists() or dest.is_symlink()) and not is_tritonpack_output(dest):
        what = "a symbolic link" if dest.is_symlink() else not_regular(dest) or "a file"
        raise PackError(f"{option} {name}: {dest.name} exists ({what}) and is not an "
                        "environment tritonpack wrote: tritonpack replaces only its own output",
                        hint="choose another name, or move it away yourself")


def is_tritonpack_output(path: Path) -> bool:
    """An environment tritonpack wrote: a real file or dir carrying its stamp."""
    return not path.is_symlink() and read_stamp(path) is not None
