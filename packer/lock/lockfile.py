"""The lock file: a versioned, human-diffable TOML record of exactly what the environment holds.

``MODEL_DIR/tritonpack.lock`` stores the target, the conda packages (url, sha256),
the PyPI pins (sha256 hashes), the inputs they were made from and their hash,
and a hash of its own content so a hand edit is caught on read.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from ..core.atomic import atomic_write_bytes
from ..core.errors import LockError
from ..core.fsguard import read_regular
from ..core.version import __version__
from .conda import CondaPackage
from .pypi import Pin

LOCK_NAME = "tritonpack.lock"
# Format 1: wheels only. Format 2 adds, to a [[pypi]] entry built from source, ``sdist = URL``
# (its ``hashes`` then hold the sdist's sha256 alone) and ``build_requires``: its build tools,
# pinned with hashes (``"name==V --hash=sha256:H"`` lines), without which a wheel built later
# could differ. A lock is written as format 1 unless a pin is built from source, so existing
# locks stay byte-identical; a tritonpack that reads only format 1 refuses a format-2 lock
# ("newer than this tritonpack understands") instead of rejecting it as hand-edited.
FORMAT_VERSION = 2
_FORMATS = (1, 2)
_BUILD_PIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+( --hash=sha256:[0-9a-f]{64})+")
_HEADER = (
    "# tritonpack.lock: written by tritonpack; do not edit by hand (its content hash is checked).\n"
    "# Re-create with `tritonpack lock MODEL_DIR`; check with `tritonpack lock --check MODEL_DIR`.\n"
)


def digest(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class Lockfile:
    inputs: dict[str, Any]
    target: dict[str, str]
    resolver: str
    conda: tuple[CondaPackage, ...]
    pypi: tuple[Pin, ...]
    version: int = 0  # 0: the lowest format that holds the pins (format_for)
    generator: str = field(default=f"tritonpack {__version__}")

    def __post_init__(self) -> None:
        if self.version == 0:
            object.__setattr__(self, "version", format_for(self.pypi))

    @property
    def inputs_hash(self) -> str:
        return digest(self.inputs)

    def body(self) -> dict[str, Any]:
        """Everything but the content hash, in file order."""
        return {
            "version": self.version,
            "generator": self.generator,
            "inputs_hash": self.inputs_hash,
            "resolver": self.resolver,
            "target": dict(self.target),
            "inputs": self.inputs,
            "conda": [p.as_dict() for p in self.conda],
            "pypi": [_pin_dict(p, self.version) for p in self.pypi],
        }

    @property
    def content_hash(self) -> str:
        body = self.body()
        body.pop("generator")  # a newer tritonpack writing the same lock is not a change
        return digest(body)

    def render(self) -> str:
        body = self.body()
        doc = {k: body[k] for k in ("version", "generator", "inputs_hash", "resolver")}
        doc["content_hash"] = self.content_hash
        doc.update({k: body[k] for k in ("target", "inputs", "conda", "pypi")})
        return _HEADER + tomli_w.dumps(doc, multiline_strings=False, indent=2)

    def python_version(self) -> str:
        for p in self.conda:
            if p.name == "python":
                return p.version
        return self.target.get("python", "")

    def requirements_txt(self) -> str:
        """The PyPI part as a pip-tools-style requirements file with --hash lines."""
        return requirements_txt(self.pypi)


def requirements_txt(pins: tuple[Pin, ...]) -> str:
    """Pins as a pip-tools-style requirements file with --hash lines."""
    lines = []
    for pin in pins:
        hashes = "".join(f" \\\n    --hash={h}" for h in pin.hashes)
        lines.append(f"{pin.name}=={pin.version}{hashes}\n")
    return "".join(lines)


def format_for(pins: tuple[Pin, ...]) -> int:
    """The lowest lock format that holds ``pins``: 2 once one is built from source (its
    build requirements pinned)."""
    return 2 if any(p.sdist for p in pins) else 1


def _pin_dict(pin: Pin, version: int) -> dict[str, Any]:
    out: dict[str, Any] = {"name": pin.name, "version": pin.version, "hashes": list(pin.hashes)}
    if pin.sdist:
        out["sdist"] = pin.sdist
        out["build_requires"] = list(pin.build_requires)
    return out


def _read_pin(data: dict[str, Any], version: int) -> Pin:
    sdist = data.get("sdist", "")
    if sdist and (version < 2 or len(data.get("hashes", ())) != 1):
        raise ValueError("'sdist' (format 2, one sdist hash)")
    build = data.get("build_requires")
    if (build is not None or sdist) and not (
            sdist and isinstance(build, list)
            and all(isinstance(b, str) and _BUILD_PIN.fullmatch(b) for b in build)):
        raise ValueError("'build_requires' (format 2, with 'sdist': "
                         "\"name==V --hash=sha256:H\" lines)")
    return Pin(str(data["name"]), str(data["version"]), tuple(data.get("hashes", ())),
               str(sdist), tuple(build or ()))


def needs_write(path: Path, lock: Lockfile) -> bool:
    """Whether ``path`` does not already hold ``lock`` (a broken lock is replaced)."""
    if path.is_file():
        try:
            return read_lock(path).content_hash != lock.content_hash
        except LockError:
            return True
    return True


def write_lock(path: Path, lock: Lockfile) -> bool:
    """Write ``lock`` unless the file already holds the same content. True if written."""
    text = lock.render()
    if path.is_file():
        try:
            if read_lock(path).content_hash == lock.content_hash:
                return False
        except LockError:
            pass  # a broken lock is replaced
    atomic_write_bytes(path, text.encode("utf-8"), mode=0o644)
    return True


_RECREATE = ("restore it from version control, or re-create it explicitly (every pin may "
             "change): tritonpack lock --upgrade {}")


def read_lock(path: Path) -> Lockfile:
    try:
        raw = read_regular(path, LockError, "lock file").decode("utf-8")
    except FileNotFoundError as exc:
        raise LockError(f"{path}: no lock file", hint="create it with tritonpack lock") from exc
    except UnicodeDecodeError as exc:
        raise LockError(f"{path}: corrupted: not UTF-8 text (byte {exc.start})",
                        hint=_RECREATE.format(path.parent)) from exc
    except OSError as exc:
        raise LockError(f"{path}: unreadable: {exc.strerror or exc}") from exc
    conflict = next((n for n, line in enumerate(raw.splitlines(), 1)
                     if line.startswith(("<<<<<<< ", "=======", ">>>>>>> "))), None)
    if conflict is not None:
        raise LockError(f"{path}: corrupted: unresolved merge-conflict markers (line {conflict})",
                        hint=_RECREATE.format(path.parent))
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise LockError(f"{path}: corrupted: {exc}", hint=_RECREATE.format(path.parent)) from exc
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise LockError(f"{path}: corrupted: arrays or tables nested too deeply to read",
                        hint=_RECREATE.format(path.parent)) from None
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise LockError(f"{path}: corrupted: no format version", hint=_RECREATE.format(path.parent))
    if version < min(_FORMATS):
        raise LockError(f"{path}: lock format {version} is not one tritonpack knows (it reads "
                        f"formats {min(_FORMATS)} to {FORMAT_VERSION})",
                        hint=_RECREATE.format(path.parent))
    if version > FORMAT_VERSION:
        raise LockError(
            f"{path}: lock format {version} is newer than this tritonpack understands "
            f"({FORMAT_VERSION})",
            hint="upgrade tritonpack from its repository (it is not on PyPI)",
        )
    try:
        lock = Lockfile(
            inputs=dict(data["inputs"]),
            target={k: str(v) for k, v in data["target"].items()},
            resolver=str(data["resolver"]),
            conda=tuple(CondaPackage.from_dict(p) for p in data.get("conda", [])),
            pypi=tuple(_read_pin(p, version) for p in data.get("pypi", [])),
            version=version,
            generator=str(data.get("generator", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LockError(f"{path}: corrupted: missing or malformed {exc}",
                        hint=_RECREATE.format(path.parent)) from exc
    if data.get("content_hash") != lock.content_hash:
        raise LockError(
            f"{path}: content hash mismatch: the lock was edited by hand",
            hint=_RECREATE.format(path.parent) + " (never edit hashes by hand)",
        )
    if data.get("inputs_hash") != lock.inputs_hash:
        raise LockError(f"{path}: inputs hash mismatch: the lock was edited by hand",
                        hint=_RECREATE.format(path.parent))
    return lock


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human lines naming what differs between two inputs tables."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list):
            added = [x for x in b if x not in a]
            removed = [x for x in a if x not in b]
            parts = [f"+{x}" for x in added] + [f"-{x}" for x in removed]
            out.append(f"{key}: {', '.join(map(str, parts))}")
        elif isinstance(a, dict) and isinstance(b, dict):
            for sub in sorted(set(a) | set(b)):
                if a.get(sub) != b.get(sub):
                    out.append(f"{key}.{sub}: {a.get(sub)!r} -> {b.get(sub)!r}")
        else:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out
