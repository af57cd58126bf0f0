"""Requirements declared where users already keep them, read without running anything.

* ``requirements.txt`` in the model dir or its version dir: pip's format (``-r`` includes,
  ``--index-url`` / ``--extra-index-url`` / ``--find-links`` lines, markers, extras, ``--hash``
  pins kept as pins; tritonpack's lock makes its own hashes).
* ``environment.yml`` / ``environment.yaml``: conda's format (``channels``, conda specs, the
  ``pip:`` section). A conda spec for a Python package that tritonpack installs from PyPI
  (``[conda] names`` in recipes/imports.toml: numpy, scipy, pytorch -> torch, ...) becomes
  a PyPI requirement with the same bounds; ``python`` is checked against the target; ``pip``
  is always there; any other spec is solved with the conda packages.
* ``pyproject.toml`` ``[project] dependencies`` when the model dir is itself a project.

Each requirement keeps the file it came from, for the scan table, ``--json`` and the lock.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from ..core.errors import ModelError, ResolveError
from ..core.fsguard import not_regular

REQUIREMENTS_TXT = "requirements.txt"
ENVIRONMENT_YML = ("environment.yml", "environment.yaml")
PYPROJECT = "pyproject.toml"
_MAX_BYTES = 1 << 20  # a requirements file is small; anything bigger is not one
_MAX_DEPTH = 32  # -r includes nested in one another (pip's own recursion fails near 300)
_MAX_FILES = 256  # files read through -r in all (a diamond of includes grows exponentially)
_IGNORED_OPTIONS = ("--pre", "--prefer-binary", "--only-binary", "--no-binary", "--trusted-host",
                    "--use-feature", "--no-index", "--require-hashes", "--upgrade-strategy")


@dataclass(frozen=True)
class Declaration:
    """One requirement and the file (relative to the model dir's parent) it came from."""

    line: str
    source: str


@dataclass(frozen=True)
class FileDeclarations:
    pypi: tuple[Declaration, ...] = ()
    conda: tuple[Declaration, ...] = ()
    python: tuple[Declaration, ...] = ()  # `python=3.10` in an environment file
    channels: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())


def _shown(path: Path, model_dir: Path) -> str:
    try:
        return str(path.relative_to(model_dir.parent))
    except ValueError:
        return str(path)


def _read(path: Path, shown: str) -> str:
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise ModelError(f"{shown}: larger than {_MAX_BYTES >> 20} MiB: not a requirements file")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(f"{shown}: not UTF-8 text") from exc
    except OSError as exc:
        raise ModelError(f"{shown}: cannot read: {exc.strerror}") from exc


def _requirement(text: str, where: str) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        raise ResolveError(f"{where}: invalid requirement {text!r}: {exc}") from exc


class _PipFile:
    """pip's requirements format, one file and its ``-r`` includes."""

    def __init__(self, model_dir: Path):
        self.model_dir = model_dir
        self.pypi: list[Declaration] = []
        self.index_url: str | None = None
        self.extra: list[str] = []
        self.links: list[str] = []
        self.files: list[str] = []
        self.warnings: list[str] = []
        self._stack: list[Path] = []

    def read(self, path: Path, included_from: str | None = None, written: str = "") -> None:
        shown = _shown(path, self.model_dir)
        if not path.is_file():
            where = f"{included_from}: -r {written}" if included_from else shown
            kind = not_regular(path)  # a FIFO or a directory is there, not nothing
            raise ModelError(f"{where}: {f'is {kind}, not a file' if kind else 'no such file'}",
                             hint="-r paths are relative to the file that includes them")
        real = path.resolve()
        if not real.is_relative_to(self.model_dir.resolve().parent):  # never read (and quote)
            where = f"{included_from}: -r {written}" if included_from else shown  # any file
            raise ModelError(f"{where}: leads outside the model repository: refused",
                             hint="keep requirements files (and what they include) in the "
                             "model dir or the repository around it")
        if real in self._stack:
            raise ModelError(f"{shown}: includes itself (-r loop)")
        if len(self._stack) >= _MAX_DEPTH or len(self.files) >= _MAX_FILES:
            where = f"{included_from}: -r {written}" if included_from else shown
            raise ModelError(f"{where}: -r includes nested deeper than {_MAX_DEPTH} files or "
                             f"more than {_MAX_FILES} in all: refused",
                             hint="list the requirements in fewer files")
        self._stack.append(real)
        self.files.append(shown)
        text = re.sub(r"\\\r?\n", " ", _read(path, shown))  # continuation lines
        for number, raw in enumerate(text.splitlines(), 1):
            line = re.sub(r"(^|\s)#.*$", "", raw).strip()
            if line:
                self._line(line, path, f"{shown}:{number}")
        self._stack.pop()

    def _line(self, line: str, path: Path, where: str) -> None:
        if line.startswith("-"):
            self._option(line, path, where)
            return
        spec = line.split(" --hash", 1)[0].split("\t--hash", 1)[0].strip()  # pins kept, hashes not
        if spec.startswith((".", "/")) or ("://" in spec.split(";")[0] and "@" not in spec):
            raise ResolveError(
                f"{where}: {spec!r} is a path or URL without a name: tritonpack locks named "
                "distributions",
                hint="write NAME @ URL, or pass your own source with --src DIR")
        req = _requirement(spec, where)
        self.pypi.append(Declaration(str(req), where.rsplit(":", 1)[0]))

    def _option(self, line: str, path: Path, where: str) -> None:
        name, _, value = line.replace("=", " ", 1).partition(" ")
        value = value.strip()
        if name in ("-r", "--requirement"):
            self.read(path.parent / value, where, value)
        elif name in ("-i", "--index-url"):
            self.index_url = value
        elif name == "--extra-index-url":
            self.extra.append(value)
        elif name in ("-f", "--find-links"):
            if "://" not in value:
                local = (path.parent / value).resolve()
                if not local.is_dir():
                    raise ModelError(f"{where}: --find-links {value}: no such directory",
                                     hint="paths are relative to the file that names them")
                value = str(local)
            self.links.append(value)
        elif name in ("-e", "--editable"):
            raise ResolveError(
                f"{where}: editable requirement {value!r}: an environment archive cannot point "
                "at a source checkout",
                hint="list the distribution by name, or pass your own package with --src DIR")
        elif name in ("-c", "--constraint"):
            self.warnings.append(f"{where}: constraints file {value!r} ignored: declare the "
                                 "bounds as requirements")
        elif name in _IGNORED_OPTIONS:
            self.warnings.append(f"{where}: {name} ignored (tritonpack installs wheels, resolved "
                                 "by uv, with its own hashes)")
        else:
            raise ModelError(f"{where}: unknown option {name!r}",
                             hint="tritonpack reads pip's requirement lines, -r, --index-url, "
                             "--extra-index-url and --find-links")


def read_requirements_txt(model_dir: Path, paths: list[Path]) -> FileDeclarations:
    pip = _PipFile(model_dir)
    for path in paths:
        pip.read(path)
    return FileDeclarations(pypi=tuple(pip.pypi), index_url=pip.index_url,
                            extra_index_urls=tuple(pip.extra), find_links=tuple(pip.links),
                            files=tuple(pip.files), warnings=tuple(pip.warnings))


# --- environment.yml: the subset of YAML conda writes ---------------------------------------

def _scalar(text: str) -> str:
    text = re.sub(r"\s+#.*$", "", text).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _node(text: str, where: str) -> str:
    """One value of the file, refused when it is YAML that conda never writes: an anchor
    (``&a``), an alias (``*a``: a billion-laughs file is aliases of aliases), a tag (``!!x``),
    a flow mapping or a block scalar. Read, they would be taken as package names."""
    value = _scalar(text)
    if value[:1] in ("&", "*", "!", "{", "|", ">"):
        raise ModelError(f"{where}: {value.split()[0][:40]!r}: YAML anchors, aliases, tags and "
                         "{...} mappings are refused (an environment.yml as conda writes it has "
                         "none): write each value out")
    return value


def _flow(rest: str, where: str) -> list[str]:
    """``[a, b]`` on one line: conda's flow list, never nested (``[[[...]]]`` was read as its
    innermost item, however deep)."""
    if not rest.endswith("]"):
        raise ModelError(f"{where}: a [ list must close on its own line (or write one '- item' "
                         "per line)")
    inner = rest[1:-1]
    if any(c in inner for c in "[]{}"):
        raise ModelError(f"{where}: a list nested in a list: an environment.yml as conda writes "
                         "it has none")
    return [_node(x, where) for x in inner.split(",") if x.strip()]


def parse_environment(text: str, shown: str) -> dict[str, object]:
    """``name``, ``channels``, ``dependencies`` (with one nested ``pip:`` list): the shape of
    every environment file conda exports. Anything else is refused, not guessed: YAML's
    anchors, aliases and tags, lists nested in lists (``[[[...]]]``, ``- - x``, deeper items)."""
    data: dict[str, object] = {}
    key: str | None = None
    pip: list[str] | None = None
    pip_indent = item_indent = -1
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        where = f"{shown}:{number}"
        indent = len(raw) - len(raw.lstrip(" "))
        line = raw.strip()
        if indent == 0 and not (key is not None and line.startswith("-")):  # "- x" at 0: an item
            key, _, rest = line.partition(":")
            if not _ or not re.fullmatch(r"[A-Za-z_][\w-]*", key):
                raise ModelError(f"{where}: expected 'key:' at the top level")
            rest = _scalar(rest)
            data[key] = _flow(rest, where) if rest.startswith("[") else (
                _node(rest, where) if rest else [])
            pip, item_indent = None, -1
            continue
        if key is None or not line.startswith("-"):
            raise ModelError(f"{where}: expected a '- item' list entry")
        item = line[1:].strip()
        items = data.get(key)
        if not isinstance(items, list):
            raise ModelError(f"{where}: {key} is not a list")
        if pip is not None and indent > pip_indent:
            pip.append(_node(item, where))
            continue
        item_indent = indent if item_indent < 0 else item_indent
        if indent > item_indent or item.startswith(("-", "[")):
            raise ModelError(f"{where}: a list nested in a list: an environment.yml as conda "
                             "writes it has none (only 'pip:' holds a list)")
        if re.fullmatch(r"pip\s*:", item):
            pip, pip_indent = [], indent
            items.append({"pip": pip})
        else:
            pip = None
            items.append(_node(item, where))
    return data


def _conda_to_pep440(spec: str, where: str) -> tuple[str, str]:
    """(name, PEP 440 specifier) of a conda MatchSpec: ``numpy``, ``numpy=1.26`` (1.26.*),
    ``numpy==1.26.4=py310h...`` (the build dropped), ``numpy>=1.20,<2``, ``numpy 1.26.4 py310_0``."""
    spec = spec.split("::", 1)[-1].strip()
    match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", spec)
    if match is None:
        raise ResolveError(f"{where}: invalid conda spec {spec!r}")
    name, rest = match.group(1), match.group(2).strip()
    if not rest:
        return name, ""
    if rest[0].isdigit():  # `numpy 1.26.4 py310_0`
        rest = "=" + rest.split()[0]
    if rest.startswith("=") and not rest.startswith("=="):
        version = rest[1:].split("=", 1)[0].removesuffix("*").rstrip(".")
        return name, f"=={version}.*" if version.count(".") < 2 else f"=={version}"
    if rest.startswith("=="):
        return name, "==" + rest[2:].split("=", 1)[0]
    return name, rest.replace(" ", "")


def read_environment(model_dir: Path, path: Path, conda_to_pypi: dict[str, str]) -> FileDeclarations:
    shown = _shown(path, model_dir)
    data = parse_environment(_read(path, shown), shown)
    channels = data.get("channels", [])
    deps = data.get("dependencies", [])
    if not isinstance(channels, list) or not isinstance(deps, list):
        raise ModelError(f"{shown}: channels and dependencies must be lists")
    pypi: list[Declaration] = []
    conda: list[Declaration] = []
    python: list[Declaration] = []
    for dep in deps:
        if isinstance(dep, dict):
            for line in dep.get("pip", []):
                if line.startswith("-"):
                    raise ModelError(f"{shown}: pip option {line!r}: put it in a requirements.txt")
                pypi.append(Declaration(str(_requirement(line, shown)), shown))
            continue
        name, spec = _conda_to_pep440(str(dep), shown)
        low = name.lower()
        if low == "python":
            python.append(Declaration(f"python{spec}", shown))
        elif low == "pip":
            continue
        elif low in conda_to_pypi:
            pypi.append(Declaration(str(_requirement(conda_to_pypi[low] + spec, shown)), shown))
        else:
            conda.append(Declaration(str(dep).split("::", 1)[-1], shown))
    warnings = tuple(f"{shown}: channel 'defaults' left out (Anaconda's own repository, under "
                     "its own terms): conda packages come from the other channels or "
                     "conda-forge" for c in channels if c == "defaults")
    return FileDeclarations(pypi=tuple(pypi), conda=tuple(conda), python=tuple(python),
                            channels=tuple(str(c) for c in channels), files=(shown,),
                            warnings=warnings)


def read_pyproject(model_dir: Path, path: Path) -> FileDeclarations:
    shown = _shown(path, model_dir)
    try:
        data = tomllib.loads(_read(path, shown))
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"{shown}: {exc}") from exc
    except RecursionError as exc:  # tomllib recurses into each nested array and inline table
        raise ModelError(f"{shown}: arrays or tables nested too deeply to read") from exc
    project = data.get("project")
    if not isinstance(project, dict) or "dependencies" not in project:
        return FileDeclarations()
    deps = project["dependencies"]
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise ModelError(f"{shown}: [project] dependencies must be a list of strings")
    return FileDeclarations(pypi=tuple(Declaration(str(_requirement(d, shown)), shown)
                                       for d in deps), files=(shown,))


def read_all(model_dir: Path, version_dir: Path | None,
             conda_to_pypi: dict[str, str]) -> FileDeclarations:
    """Every requirements file beside the model, the model dir's first, then the version dir's."""
    parts: list[FileDeclarations] = []
    dirs = [model_dir] + ([version_dir] if version_dir is not None else [])
    txt = [d / REQUIREMENTS_TXT for d in dirs if (d / REQUIREMENTS_TXT).is_file()]
    if txt:
        parts.append(read_requirements_txt(model_dir, txt))
    for d in dirs:
        for name in ENVIRONMENT_YML:
            if (d / name).is_file():
                parts.append(read_environment(model_dir, d / name, conda_to_pypi))
    if (model_dir / PYPROJECT).is_file():
        parts.append(read_pyproject(model_dir, model_dir / PYPROJECT))
    index_urls = [p.index_url for p in parts if p.index_url]
    return FileDeclarations(
        pypi=tuple(d for p in parts for d in p.pypi),
        conda=tuple(d for p in parts for d in p.conda),
        python=tuple(d for p in parts for d in p.python),
        channels=tuple(dict.fromkeys(c for p in parts for c in p.channels)),
        index_url=index_urls[-1] if index_urls else None,
        extra_index_urls=tuple(dict.fromkeys(u for p in parts for u in p.extra_index_urls)),
        find_links=tuple(dict.fromkeys(u for p in parts for u in p.find_links)),
        files=tuple(f for p in parts for f in p.files),
        warnings=tuple(w for p in parts for w in p.warnings),
    )
