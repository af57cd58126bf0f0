"""Generate recipes/import_table.tsv: which PyPI distributions provide which import names.

    python tools/gen_import_table.py            # ~20 minutes, resumable (a cache of answers)

For each project of ``tools/top_projects.txt`` (the most-downloaded PyPI projects, most
downloaded first), the PyPI JSON API names the newest release that has a wheel; the wheel's
file list (what its RECORD lists) is read from the zip's central directory with HTTP range
requests: a few KB from the end of the file, never the whole wheel. A project that has only
source distributions is read from the first MBs of its sdist (its ``*.egg-info/top_level.txt``
when it ships one, else its package directories).

Where several projects provide one module, the names each provider's ``__init__.py`` defines
and the others' do not are read the same way (one range request per provider) and written
beside the row: ``bson.loads`` is the standalone bson project's, ``bson.encode`` pymongo's.

Standard library plus ``packaging`` only; requests are bounded (a few at once, a rate cap,
retries with back-off on 429 and 5xx) and every answer is cached, so a rerun asks again only
for the JSON of each project, and reads no file list of a release it has read before.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import datetime
import gzip
import io
import json
import os
import re
import struct
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "tools" / "top_projects.txt"
OUT = ROOT / "recipes" / "import_table.tsv"
API = "https://pypi.org/pypi/{name}/json"
AGENT = "tritonpack-import-table/1 (+tools/gen_import_table.py)"
TAIL = 64 * 1024  # bytes read from a wheel's end: the central directory of most wheels
SDIST_CAP = 12 * 1024 * 1024  # bytes of an sdist read at most (compressed)
SOURCE_CAP = 256 * 1024  # an __init__.py larger than this is not read for its names
MODULE_SUFFIXES = (".py", ".pyc", ".so", ".pyd")
# top-level names sloppy wheels ship that are nobody's import: never table rows
GENERIC = frozenset({
    "test", "tests", "testing_utils", "doc", "docs", "example", "examples", "script", "scripts",
    "bench", "benchmark", "benchmarks", "src", "lib", "build", "dist", "tools", "tool", "util",
    "utils", "common", "data", "sample", "samples", "demo", "demos", "tutorial", "tutorials",
    "setup", "conftest", "main", "app", "config", "configs", "notebooks", "site", "share",
    "include", "bin", "etc", "tasks", "noxfile", "fabfile", "versioneer", "ez_setup", "runtests",
    "manage", "__main__", "_version", "version", "helpers", "helper", "test_utils", "testutils",
})


def _request(url: str, headers: dict[str, str] | None = None) -> urllib.request.Request:
    if not url.startswith("https://"):
        raise ValueError(f"not an https URL: {url}")
    return urllib.request.Request(url, headers={"User-Agent": AGENT, **(headers or {})})  # noqa: S310


class Fetcher:
    """HTTP GETs, a few at once and at most ``rate`` a second, retried with back-off."""

    def __init__(self, rate: float, timeout: float = 60.0) -> None:
        self._gap = 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()
        self.timeout = timeout
        self.count = 0

    def _wait_turn(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._gap
            self.count += 1
        time.sleep(max(0.0, start - now))

    def get(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """(status, body); 404 is an answer, not an error."""
        status, body, _ = self.get_with_headers(url, headers)
        return status, body

    def get_with_headers(self, url: str, headers: dict[str, str] | None = None,
                         ) -> tuple[int, bytes, dict[str, str]]:
        for attempt in range(5):
            self._wait_turn()
            req = _request(url, headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 (https only)
                    body = resp.read()
                    if resp.headers.get("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    return resp.status, body, {k.lower(): v for k, v in resp.headers.items()}
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return 404, b"", {}
                if exc.code not in (429, 500, 502, 503, 504):
                    raise
            except (urllib.error.URLError, TimeoutError, ConnectionError):
                pass
            time.sleep(min(60.0, 2.0 ** attempt * 2))
        raise OSError(f"no answer from {url}")

    def open(self, url: str) -> Any:
        """A streamed response (an sdist read from its start)."""
        self._wait_turn()
        return urllib.request.urlopen(_request(url), timeout=self.timeout)  # noqa: S310 (https only)


# --- zip central directory over range requests --------------------------------------------

@dataclass(frozen=True)
class Entry:
    name: str
    offset: int  # of the local file header
    size: int  # compressed
    method: int


def _eocd(tail: bytes, total: int) -> tuple[int, int]:
    """(offset, size) of the central directory, from the end of central directory record
    (and its zip64 form when the plain one says 0xFFFFFFFF)."""
    at = tail.rfind(b"PK\x05\x06")
    if at < 0:
        raise ValueError("no end of central directory record")
    size, offset = struct.unpack_from("<II", tail, at + 12)
    if offset == 0xFFFFFFFF or size == 0xFFFFFFFF:
        loc = tail.rfind(b"PK\x06\x07", 0, at)
        rec = struct.unpack_from("<Q", tail, loc + 8)[0]
        start = total - len(tail)
        if rec < start:
            raise ValueError("zip64 record outside the tail read")
        size, offset = struct.unpack_from("<QQ", tail, rec - start + 40)
    return offset, size


def _zip64_offset(extra: bytes, need_size: bool, need_offset: bool) -> tuple[int | None, int | None]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            vals = struct.unpack_from("<" + "Q" * (length // 8), extra, pos + 4)
            i, usize, csize, off = 0, None, None, None
            if need_size:
                usize, csize, i = vals[0], vals[1], 2
            if need_offset and i < len(vals):
                off = vals[i]
            return csize if usize is not None else None, off
        pos += 4 + length
    return None, None


def parse_central(data: bytes) -> list[Entry]:
    out: list[Entry] = []
    pos = 0
    while data.startswith(b"PK\x01\x02", pos):
        (method,) = struct.unpack_from("<H", data, pos + 10)
        csize, _usize, nlen, xlen, clen = struct.unpack_from("<IIHHH", data, pos + 20)
        (offset,) = struct.unpack_from("<I", data, pos + 42)
        name = data[pos + 46: pos + 46 + nlen].decode("utf-8", "replace")
        extra = data[pos + 46 + nlen: pos + 46 + nlen + xlen]
        if csize == 0xFFFFFFFF or offset == 0xFFFFFFFF:
            big_size, big_off = _zip64_offset(extra, csize == 0xFFFFFFFF, offset == 0xFFFFFFFF)
            csize = big_size if big_size is not None else csize
            offset = big_off if big_off is not None else offset
        out.append(Entry(name, offset, csize, method))
        pos += 46 + nlen + xlen + clen
    return out


def _range(fetch: Fetcher, url: str, first: int, last: int) -> bytes:
    status, body = fetch.get(url, {"Range": f"bytes={first}-{last}"})
    if status != 206:
        raise ValueError(f"range request answered {status}")
    return body


def _tail(fetch: Fetcher, url: str) -> tuple[bytes, int]:
    """The last TAIL bytes of ``url`` and its size (from Content-Range), in one request."""
    status, body, headers = fetch.get_with_headers(url, {"Range": f"bytes=-{TAIL}"})
    found = re.search(r"/(\d+)$", headers.get("content-range", ""))
    if status != 206 or found is None:
        raise ValueError(f"range request answered {status}")
    return body, int(found.group(1))


def wheel_entries(fetch: Fetcher, url: str, total: int = 0) -> list[Entry]:
    """The wheel's file list, read from its last bytes (and its central directory); ``total``
    (the file's size) 0: asked for with the same request."""
    if total:
        start = max(0, total - TAIL)
        tail = _range(fetch, url, start, total - 1)
    else:
        tail, total = _tail(fetch, url)
        start = max(0, total - len(tail))
    offset, size = _eocd(tail, total)
    if offset >= start:
        central = tail[offset - start: offset - start + size]
    else:
        central = _range(fetch, url, offset, offset + size - 1)
    return parse_central(central)


def read_member(fetch: Fetcher, url: str, entry: Entry) -> bytes:
    """One member's bytes: its local header, then its (deflated) data."""
    head = _range(fetch, url, entry.offset, entry.offset + 30 + 1024 + entry.size)
    nlen, xlen = struct.unpack_from("<HH", head, 26)
    begin = 30 + nlen + xlen
    data = head[begin: begin + entry.size]
    if len(data) < entry.size:
        data = _range(fetch, url, entry.offset + begin, entry.offset + begin + entry.size - 1)
    if entry.method == 8:
        return zlib.decompressobj(-15).decompress(data)
    if entry.method == 0:
        return data
    raise ValueError(f"compression method {entry.method}")


# --- which modules a file list provides ---------------------------------------------------

def _strip(path: str) -> list[str] | None:
    """The path inside site-packages, or None for metadata, scripts and data files."""
    parts = path.split("/")
    if parts[0].endswith(".data"):
        return parts[2:] if len(parts) > 2 and parts[1] in ("purelib", "platlib") else None
    if parts[0].endswith((".dist-info", ".egg-info")):
        return None
    return parts


def _module_file(name: str) -> str | None:
    """``x.py`` -> x; ``x.cpython-312-x86_64-linux-gnu.so`` -> x; anything else: None."""
    if not name.endswith(MODULE_SUFFIXES):
        return None
    stem = name.split(".", 1)[0]
    return stem if stem.isidentifier() else None


def modules_of(paths: list[str], generic: frozenset[str] = GENERIC) -> dict[str, str]:
    """Import name -> the file that defines it (``pkg/__init__.py``, ``mod.py``; "" when compiled).

    A top-level directory without ``__init__`` that holds only directories is a namespace
    (``google/``, ``azure/``): its sub-packages are the modules (``google.protobuf``).
    """
    tree: dict[str, Any] = {}
    for path in paths:
        parts = _strip(path)
        if not parts or not parts[-1] or any(p in ("..", "__pycache__") for p in parts):
            continue
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part + "/", {})
        node[parts[-1]] = None
    out: dict[str, str] = {}
    _walk(tree, "", out, depth=0, generic=generic)
    return out


def children_of(paths: list[str], modules: dict[str, str]) -> dict[str, list[str]]:
    """Module -> the names of its direct submodules and subpackages (``databricks`` ->
    ``sdk``): what ``import databricks.sdk`` reads of it, a provider's mark like its names."""
    out: dict[str, set[str]] = {m: set() for m in modules}
    for path in paths:
        parts = _strip(path)
        if not parts:
            continue
        for module in modules:
            depth = module.count(".") + 1
            if len(parts) > depth and ".".join(parts[:depth]) == module:
                child = parts[depth] if len(parts) > depth + 1 else _module_file(parts[depth])
                if child and child.isidentifier() and not child.startswith("_"):
                    out[module].add(child)
    return {m: sorted(c) for m, c in out.items() if c}


def _holds_modules(node: dict[str, Any]) -> bool:
    return any((k.endswith("/") and _holds_modules(v)) or (not k.endswith("/") and _module_file(k))
               for k, v in node.items())


def _walk(node: dict[str, Any], prefix: str, out: dict[str, str], depth: int,
          generic: frozenset[str]) -> None:
    for key, child in sorted(node.items()):
        if key.endswith("/"):
            name = key[:-1]
            if not name.isidentifier() or name.startswith("__") or not _holds_modules(child):
                continue
            if depth == 0 and name in generic:
                continue
            dotted = prefix + name
            inits = [k for k in child if not k.endswith("/") and _module_file(k) == "__init__"]
            loose = any(not k.endswith("/") and _module_file(k) for k in child)
            if inits or loose or depth >= 3:
                out.setdefault(dotted, f"{dotted.replace('.', '/')}/__init__.py"
                               if "__init__.py" in inits else "")
            else:  # a namespace: its sub-packages are what is imported
                _walk(child, dotted + ".", out, depth + 1, generic)
        else:
            stem = _module_file(key)
            if stem is None or stem.startswith("__") or (depth == 0 and stem in generic):
                continue
            dotted = prefix + stem
            path = f"{prefix.replace('.', '/')}{key}"
            out.setdefault(dotted, path if key.endswith(".py") else "")
            if key.endswith(".py"):
                out[dotted] = path


# --- one project ------------------------------------------------------------------------

@dataclass
class Project:
    name: str  # as the seed list has it: PyPI's normalized name (pyyaml)
    version: str = ""
    file: str = ""  # the distribution file read
    url: str = ""
    kind: str = ""  # wheel | sdist | none
    modules: dict[str, str] = field(default_factory=dict)  # module -> defining file
    members: dict[str, list[int]] = field(default_factory=dict)  # file -> [offset, size, method]
    sources: dict[str, str] = field(default_factory=dict)  # sdist: defining file -> text
    children: dict[str, list[str]] = field(default_factory=dict)  # module -> its submodules
    problem: str = ""


def _release_files(meta: dict[str, Any]) -> list[tuple[Version, list[dict[str, Any]]]]:
    releases: list[tuple[Version, list[dict[str, Any]]]] = []
    for text, files in (meta.get("releases") or {}).items():
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        live = [f for f in files if not f.get("yanked")]
        if live:
            releases.append((version, live))
    releases.sort(key=lambda r: r[0], reverse=True)
    final = [r for r in releases if not r[0].is_prerelease]
    return final or releases


_PLATFORM_ORDER = ("none-any", "x86_64.whl", "linux", "macosx", "win")


def _wheel_rank(filename: str) -> tuple[int, int]:
    plat = next((i for i, p in enumerate(_PLATFORM_ORDER) if p in filename), len(_PLATFORM_ORDER))
    newest_cp = max((int(m) for m in re.findall(r"cp3(\d+)", filename)), default=0)
    return plat, -newest_cp


def choose_file(meta: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The newest release's best wheel (pure, else a Linux one); else, when no release has a
    wheel, the newest sdist."""
    newest = [f for f in meta.get("urls") or [] if not f.get("yanked")]
    wheels = [f for f in newest if f["filename"].endswith(".whl")]
    if wheels:  # the common case: no need to sort every release (boto3 has thousands)
        return "wheel", min(wheels, key=lambda f: _wheel_rank(f["filename"]))
    releases = _release_files(meta)
    for _version, files in releases:
        wheels = [f for f in files if f["filename"].endswith(".whl")]
        if wheels:
            return "wheel", min(wheels, key=lambda f: _wheel_rank(f["filename"]))
    for _version, files in releases:
        sdists = [f for f in files if f.get("packagetype") == "sdist"]
        if sdists:
            return "sdist", sdists[0]
    return None


def read_project(fetch: Fetcher, name: str, cache: Path, max_age: float = 0.0) -> Project:
    """One project's modules; a cached answer younger than ``max_age`` days is reused whole
    (no request), an older one only when the newest release's file is the same."""
    cached = cache / f"{canonicalize_name(name)}.json"
    if max_age > 0 and cached.is_file() and time.time() - cached.stat().st_mtime < max_age * 86400:
        data = json.loads(cached.read_text())
        data.pop("display", None)
        return Project(**data)
    api = API.format(name=urllib.parse.quote(name))
    status, body = fetch.get(api, {"Accept-Encoding": "gzip"})
    if status == 404:
        return Project(name, kind="none", problem="not on PyPI")
    meta = json.loads(body)
    chosen = choose_file(meta)
    if chosen is None:
        return Project(name, kind="none", problem="no wheel or sdist")
    kind, info = chosen
    if cached.is_file():
        data = json.loads(cached.read_text())
        data.pop("display", None)
        old = Project(**data)
        if old.file == info["filename"]:
            return old
    project = Project(name, version=str(meta["info"]["version"]), file=info["filename"],
                      url=urllib.parse.urljoin(api, info["url"]), kind=kind)
    try:
        if kind == "wheel":
            _read_wheel(fetch, project, int(info["size"]))
        else:
            _read_sdist(fetch, project)
    except (OSError, ValueError, struct.error, tarfile.TarError, zlib.error, EOFError) as exc:
        project.problem = f"{type(exc).__name__}: {exc}"[:200]
        return project
    _save(cached, project)
    return project


def _save(cached: Path, project: Project) -> None:
    tmp = cached.with_suffix(f".{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(project.__dict__))
    os.replace(tmp, cached)


def _read_wheel(fetch: Fetcher, project: Project, size: int) -> None:
    entries = wheel_entries(fetch, project.url, size)
    project.modules = modules_of([e.name for e in entries])
    project.children = children_of([e.name for e in entries], project.modules)
    wanted = {f for f in project.modules.values() if f}
    for entry in entries:  # keyed by the name in site-packages (X.data/purelib/ stripped)
        inner = "/".join(_strip(entry.name) or [])
        if inner in wanted:
            project.members[inner] = [entry.offset, entry.size, entry.method]


class _Capped(io.RawIOBase):
    """A stream that ends (EOFError) after ``cap`` bytes."""

    def __init__(self, raw: Any, cap: int) -> None:
        self.raw, self.left = raw, cap

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            raise EOFError("sdist read cap reached")
        chunk = self.raw.read(min(len(buffer), self.left))
        self.left -= len(chunk)
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _read_sdist(fetch: Fetcher, project: Project) -> None:
    if not project.file.endswith((".tar.gz", ".tgz", ".tar.bz2")):
        raise ValueError("sdist is not a tar")
    names: list[str] = []
    texts: dict[str, str] = {}
    top_level: list[str] = []
    with fetch.open(project.url) as resp:
        stream = io.BufferedReader(_Capped(resp, SDIST_CAP))
        try:
            with tarfile.open(fileobj=stream, mode="r|*") as tar:
                for member in tar:
                    inner = member.name.split("/", 1)[1] if "/" in member.name else ""
                    if not member.isfile() or not inner:
                        continue
                    names.append(inner)
                    if inner.endswith("egg-info/top_level.txt") and inner.count("/") <= 2:
                        top_level += _read_text(tar, member).split()
                    elif inner.endswith(".py") and inner.count("/") <= 2 and (
                            member.size <= SOURCE_CAP):
                        texts[inner] = _read_text(tar, member)
        except EOFError:
            pass  # what was read so far decides
    project.modules = sdist_modules(names, top_level, project.name)
    inside = [n[4:] for n in names if n.startswith("src/")] or names
    project.children = children_of(inside, project.modules)
    project.sources = {f: texts[f] for f in project.modules.values() if f in texts}


def _read_text(tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    handle = tar.extractfile(member)
    return handle.read().decode("utf-8", "replace") if handle else ""


def sdist_modules(names: list[str], top_level: list[str], project: str) -> dict[str, str]:
    """Modules of a source distribution: its egg-info's top_level.txt when it has one, else
    the packages at its root or under ``src/`` (a loose root module only when it is named
    after the project or no package was found)."""
    roots = ("src/", "") if any(n.startswith("src/") for n in names) else ("",)
    found: dict[str, str] = {}
    for root in roots:
        inside = [n[len(root):] for n in names if n.startswith(root)]
        mods = modules_of(inside)
        for mod, path in mods.items():
            found.setdefault(mod, root + path if path else "")
        if found:
            break
    if top_level:
        wanted = {t for t in top_level if t.isidentifier() and t not in GENERIC}
        return {m: p for m, p in found.items() if m.split(".")[0] in wanted} or dict.fromkeys(
            wanted, "")
    packages = {m: p for m, p in found.items() if p.endswith("__init__.py") or "." in m}
    if packages:
        own = canonicalize_name(project).replace("-", "_")
        return {m: p for m, p in found.items()
                if m in packages or canonicalize_name(m).replace("-", "_") == own}
    return found


# --- the names a module defines ----------------------------------------------------------

_ANNOTATIONS = frozenset({"typing", "typing_extensions", "collections.abc", "__future__", "abc"})


def public_names(source: str) -> set[str]:
    """Top-level names a module's source binds (defs, classes, assignments, imports, __all__),
    public ones only; read with ast, never run."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    names: set[str] = set()
    _bind(tree.body, names)
    return {n for n in names if not n.startswith("_")}


def _bind(body: list[ast.stmt], names: set[str]) -> None:
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and \
                    isinstance(node.value, ast.List | ast.Tuple):
                names.update(e.value for e in node.value.elts
                             if isinstance(e, ast.Constant) and isinstance(e.value, str))
        elif isinstance(node, ast.Import):  # `import os` binds a module, not the API
            names.update(a.asname for a in node.names if a.asname)
        elif isinstance(node, ast.ImportFrom) and node.module not in _ANNOTATIONS:
            names.update(a.asname or a.name for a in node.names if a.name != "*")
        elif isinstance(node, ast.If | ast.Try):
            _bind([*node.body, *node.orelse, *getattr(node, "finalbody", []),
                   *(s for h in getattr(node, "handlers", []) for s in h.body)], names)


def module_source(fetch: Fetcher, project: Project, module: str) -> str | None:
    path = project.modules.get(module, "")
    if not path:
        return None
    if project.kind == "sdist":
        return project.sources.get(path)
    member = project.members.get(path)
    if member is None or member[1] > SOURCE_CAP:
        return None
    offset, size, method = member
    return read_member(fetch, project.url, Entry(path, offset, size, method)).decode(
        "utf-8", "replace")


def _children(fetch: Fetcher, project: Project, module: str) -> list[str]:
    """The submodules of ``module`` in ``project`` (read again for an answer cached before
    they were kept: one range request)."""
    if module in project.children or project.kind != "wheel" or not project.url:
        return project.children.get(module, [])
    try:
        entries = wheel_entries(fetch, project.url)
    except (OSError, ValueError, struct.error):
        return []
    project.children = children_of([e.name for e in entries], project.modules)
    return project.children.get(module, [])


def distinguishing(fetch: Fetcher, module: str, providers: list[Project],
                   cap: int = 80) -> dict[str, list[str]]:
    """Per provider: the public names its ``module`` defines that no other provider's does."""
    names: dict[str, set[str]] = {}
    for project in providers:
        try:
            text = module_source(fetch, project, module)
        except (OSError, ValueError, struct.error, zlib.error):
            text = None
        names[project.name] = (public_names(text) if text else set()) | set(
            _children(fetch, project, module))
    out: dict[str, list[str]] = {}
    for shown, mine in names.items():
        others = set().union(*(v for k, v in names.items() if k != shown))
        # functions first (``bson.loads``): what model code calls on a module
        own = sorted(mine - others, key=lambda n: (not n.islower(), n))
        if own:
            out[shown] = own[:cap]
    return out


# --- the table ------------------------------------------------------------------------------

def read_seed(path: Path) -> list[str]:
    out: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and line not in out:
            out.append(line)
    return out


def render(projects: list[Project], attrs: dict[str, dict[str, list[str]]], made: str,
           seed: int) -> str:
    providers: dict[str, list[str]] = {}
    for project in projects:
        for module in project.modules:
            providers.setdefault(module, []).append(project.name)
    wheels = sum(p.kind == "wheel" and not p.problem for p in projects)
    sdists = sum(p.kind == "sdist" and not p.problem for p in projects)
    lines = [
        "# Import name -> the PyPI distributions that provide it, most downloaded first.",
        "# Generated from real distributions' file lists (a wheel's RECORD, read from its zip",
        "# central directory with HTTP range requests; a source-only project's sdist) by:",
        "#     python tools/gen_import_table.py",
        f"# made: {made}, from the {seed:,} projects of tools/top_projects.txt "
        f"({wheels:,} wheels, {sdists:,} sdists read)",
        "# MODULE<TAB>DIST DIST...: the providers of MODULE (a namespace's sub-package: google.protobuf)",
        "# MODULE:DIST<TAB>NAME NAME...: names DIST's MODULE defines that the others' do not",
        "# Hand-kept choices (recipes/imports.toml) win over these rows. Do not edit: regenerate.",
    ]
    for module in sorted(providers):
        lines.append(f"{module}\t{' '.join(providers[module])}")
        for dist, names in sorted(attrs.get(module, {}).items()):
            lines.append(f"{module}:{dist}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=Path, default=SEED)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--limit", type=int, default=0, help="read only the first N projects")
    parser.add_argument("--jobs", type=int, default=6, help="requests under way at once")
    parser.add_argument("--rate", type=float, default=20.0, help="requests a second, at most")
    parser.add_argument("--max-age", type=float, default=7.0,
                        help="reuse cached answers younger than this many days (0: ask again)")
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                        / "tritonpack" / "import-table")
    args = parser.parse_args(argv)
    names = read_seed(args.seed)
    if args.limit:
        names = names[: args.limit]
    args.cache.mkdir(parents=True, exist_ok=True)
    fetch = Fetcher(args.rate)
    projects: dict[str, Project] = {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(read_project, fetch, n, args.cache, args.max_age): n
                   for n in names}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            name = futures[future]
            try:
                projects[name] = future.result()
            except Exception as exc:  # one project's failure is reported, not fatal
                projects[name] = Project(name, kind="none", problem=f"{type(exc).__name__}: {exc}")
            if done % 250 == 0:
                print(f"{done}/{len(names)} projects, {fetch.count} requests", file=sys.stderr)
    ordered = [projects[n] for n in names]
    by_module: dict[str, list[Project]] = {}
    for project in ordered:
        for module in project.modules:
            by_module.setdefault(module, []).append(project)
    shared = {m: ps for m, ps in by_module.items() if len(ps) > 1}
    attrs: dict[str, dict[str, list[str]]] = {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        jobs = {pool.submit(distinguishing, fetch, m, ps): m for m, ps in shared.items()}
        for future in concurrent.futures.as_completed(jobs):
            found = future.result()
            if found:
                attrs[jobs[future]] = found
    made = datetime.datetime.now(datetime.UTC).date().isoformat()
    args.out.write_text(render(ordered, attrs, made, len(names)), encoding="utf-8")
    problems = [p for p in ordered if p.problem]
    for project in problems:
        print(f"{project.name}: {project.problem}", file=sys.stderr)
    print(f"{len(by_module):,} modules from {len(ordered) - len(problems):,} projects "
          f"({len(problems)} not read), {len(shared)} shared; {fetch.count:,} requests",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
