"""Checks that need no server: archive format and layout, Python vs stub, numpy vs its bound."""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

_LIBPY = re.compile(r"^lib/libpython(3\.\d+)\.so\.1\.0$")
_NUMPY = re.compile(r"^lib/python3\.\d+/site-packages/numpy-([^/]+)\.dist-info/METADATA$")
_NUMPY_PKG = re.compile(r"^lib/python3\.\d+/site-packages/numpy/__init__\.py$")


@dataclass(frozen=True)
class EnvFacts:
    """What an environment (archive or directory) holds, read without running it."""

    path: Path
    format: str  # tar.gz | dir | unknown
    python: str | None  # X.Y from lib/libpythonX.Y.so.1.0
    numpy: str | None
    has_activate: bool
    has_python3: bool


@dataclass(frozen=True)
class StaticCheck:
    facts: EnvFacts
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _names_of(path: Path) -> tuple[str, list[str]]:
    if path.is_dir():
        return "dir", [p.relative_to(path).as_posix() for p in path.rglob("*")]
    with path.open("rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            return "unknown", []
    try:
        with tarfile.open(path, "r:gz") as tar:
            return "tar.gz", [m.name.removeprefix("./") for m in tar.getmembers()]
    except (tarfile.TarError, OSError, EOFError):
        return "unknown", []


def env_facts(path: Path) -> EnvFacts:
    fmt, names = _names_of(path)
    python = numpy = None
    has_numpy = False
    for name in names:
        if m := _LIBPY.match(name):
            python = m.group(1)
        elif m := _NUMPY.match(name):
            numpy = m.group(1)
        elif _NUMPY_PKG.match(name):
            has_numpy = True
    numpy = numpy if has_numpy else None
    return EnvFacts(path, fmt, python, numpy, "bin/activate" in names, "bin/python3" in names)


def check(path: Path, stub_python: str, numpy_bound: str) -> StaticCheck:
    facts = env_facts(path)
    problems: list[str] = []
    if facts.format == "unknown":
        problems.append(f"{path.name} is not a gzip'd tar or a directory: Triton cannot read it")
        return StaticCheck(facts, tuple(problems))
    if not facts.has_python3 or facts.python is None:
        problems.append("the environment has no bin/python3 or lib/libpython3.X.so.1.0: Triton would "
                        "silently run the model on its own Python")
    elif facts.python != stub_python:
        problems.append(f"Python version mismatch: the environment has Python {facts.python}, the "
                        f"backend stub is built for {stub_python} (the stub would hang or fail to load)")
    if not facts.has_activate:
        problems.append("the environment has no bin/activate (Triton before 25.08 sources it)")
    if facts.numpy is None:
        problems.append("numpy is missing: the Python backend stub imports it")
    elif numpy_bound and Version(facts.numpy) not in SpecifierSet(numpy_bound):
        problems.append(f"numpy {facts.numpy} is outside this release's bound numpy{numpy_bound}: "
                        "the model would load, then every inference would fail")
    return StaticCheck(facts, tuple(problems))
