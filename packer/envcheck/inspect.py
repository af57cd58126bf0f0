"""``tritonpack inspect``: check any environment (archive or directory, tritonpack's or
anyone's) against a Triton target, without extracting or running it.

Layout, Python vs the stub, numpy and its bound, unsafe entries (what Triton 26.06+
refuses at load: absolute paths, ``..``, links leaving the env, device files), and the
newest GLIBC_/GLIBCXX_ symbol versions its ELF files need vs what the image's OS has.
"""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath
import re
import stat
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from ..archive.fs import ArchiveFS, escapes_dir
from ..archive.inflate import read_targz
from ..archive.paxguard import GuardedTarInfo
from ..core.errors import PackError, UsageError
from ..core.fsguard import not_regular
from ..core.progress import Reporter
from ..resolve.recipebook import Recipes
from ..resolve.target import Target, resolve_target
from .elf import MAGIC, ElfError, file_version_needs, newest, stream_version_needs

_LIBPY = re.compile(r"^lib/libpython(3\.\d+)\.so\.1\.0$")
_NUMPY_META = re.compile(r"^lib/python3\.\d+/site-packages/numpy-([^/]+)\.dist-info/METADATA$")
_NUMPY_PKG = re.compile(r"^lib/python3\.\d+/site-packages/numpy/__init__\.py$")
# Code every start of the env's Python runs (site imports these, and .pth lines that start
# with "import"): each must belong to an installed package (its conda-meta record or its
# wheel's RECORD). A local build never has another; a pulled one may.
_HOOK = re.compile(r"^lib/python3\.\d+/(?:site-packages/)?(?:sitecustomize|usercustomize)\.py$"
                   r"|^lib/python3\.\d+/site-packages/[^/]+\.pth$")
# tritonpack's own .pth (pack.sitezip): a path line naming the zip of the pure-Python
# distributions beside it, no code. Recognised by its name and exact bytes, nothing else:
# another .pth, or this name with other content, is judged like any hook.
SITE_ZIP = "tritonpack-site.zip"
SITE_PTH = "tritonpack-site.pth"
SITE_PTH_TEXT = (SITE_ZIP + "\n").encode()
_SITE_PTH = re.compile(r"^lib/python3\.\d+/site-packages/" + re.escape(SITE_PTH) + "$")
_OWNERS = re.compile(r"^conda-meta/[^/]+\.json$|^(lib/python3\.\d+/site-packages)/[^/]+\.dist-info/RECORD$")
_OWNER_LIMIT = 16 << 20
REREADS = 4  # large ELF members of one archive read again from their start, at most


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # file | dir | symlink | hardlink | device | fifo | other
    mode: int
    link: str = ""
    needs: frozenset[str] = frozenset()  # symbol versions an ELF file needs
    read_error: str = ""
    data: bytes = b""  # a package's record of its files (conda-meta/*.json, RECORD)


@dataclass(frozen=True)
class Finding:
    level: str  # error | warning
    message: str


@dataclass(frozen=True)
class InspectReport:
    path: Path
    format: str
    entries: int
    python: str | None
    numpy: str | None
    glibc: str | None  # newest needed, and by which file
    glibcxx: str | None
    findings: tuple[Finding, ...] = field(default=())
    # why each unsafe entry is unsafe (``first_unsafe_entry``'s judgement), in archive order:
    # a pulled environment is refused on the first without a second read of its entries
    unsafe: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not any(f.level == "error" for f in self.findings)

    def errors(self) -> list[str]:
        return [f.message for f in self.findings if f.level == "error"]


def _read_data(name: str) -> bool:
    """Whether an entry's bytes are kept for the judgement: a package's record of its files,
    or tritonpack's own ``.pth`` (recognised by its bytes)."""
    return bool(_OWNERS.match(name) or _SITE_PTH.match(name))


def _tar_entries(path: Path, elf: bool = True, mode: str = "r:gz") -> Iterator[Entry]:
    """Every member as an Entry; with ``elf``, the symbol versions each ELF file needs."""
    rereads = [REREADS]

    with (read_targz(path) if mode == "r:gz"
          else tarfile.open(path, mode, tarinfo=GuardedTarInfo)) as tar:  # type: ignore[call-overload]
        def again(m: tarfile.TarInfo) -> IO[bytes]:
            """The member once more from its start: a gzip stream seeks back by decompressing
            again from its first byte, so an archive gets only a few."""
            fh: IO[bytes] | None = tar.extractfile(m) if rereads[0] > 0 else None
            if fh is None:
                raise ElfError(f"more than {REREADS} large ELF files keep their version tables "
                               "in their middle: not read again")
            rereads[0] -= 1
            return fh

        for m in tar:
            kind = ("file" if m.isreg() else "dir" if m.isdir() else "symlink" if m.issym()
                    else "hardlink" if m.islnk() else "device" if (m.isblk() or m.ischr())
                    else "fifo" if m.isfifo() else "other")
            needs: frozenset[str] = frozenset()
            err = ""
            data = b""
            keep = m.size <= _OWNER_LIMIT and _read_data(m.name.removeprefix("./"))
            # each member is read once, from where the stream stands: a second extractfile
            # of a member already read from seeks back, and a gzip stream seeks back by
            # decompressing again from the archive's first byte (seconds per member)
            fh = tar.extractfile(m) if m.isreg() and (elf or keep) else None
            if fh is not None:
                head = fh.read(4)
                if elf and head == MAGIC:
                    try:  # a stream: the section table is last; spooled, never all in memory
                        needs = frozenset(stream_version_needs(head, fh, m.size,
                                                               partial(again, m)))
                    except ElfError as exc:
                        err = str(exc)
                elif keep:
                    data = head + fh.read(_OWNER_LIMIT)
            # tarfile strips trailing slashes from directory names: a directory entry
            # named "/" (the archive's root, absolute) reads back as "".
            yield Entry(m.name or "/", kind, m.mode, m.linkname, needs, err, data)
        while tar.fileobj is not None and tar.fileobj.read(1 << 20):
            pass  # read to the end: a truncated gzip trailer (CRC, size) is an error too


def _dir_entries(root: Path) -> Iterator[Entry]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            p = Path(dirpath) / name
            st = p.lstat()
            rel = p.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                yield Entry(rel, "symlink", st.st_mode & 0o7777, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                yield Entry(rel, "dir", st.st_mode & 0o7777)
            elif stat.S_ISREG(st.st_mode):
                needs: frozenset[str] = frozenset()
                err = ""
                try:
                    needs = frozenset(file_version_needs(p))
                except (OSError, ValueError) as exc:  # ElfError: not parseable as ELF
                    err = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                data = b""
                if st.st_size <= _OWNER_LIMIT and _read_data(rel):
                    with p.open("rb") as fh:
                        data = fh.read(_OWNER_LIMIT)
                yield Entry(rel, "file", st.st_mode & 0o7777, "", needs, err, data)
            elif stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode):
                yield Entry(rel, "device", st.st_mode & 0o7777)
            else:
                yield Entry(rel, "fifo" if stat.S_ISFIFO(st.st_mode) else "other",
                            st.st_mode & 0o7777)


def _unsafe(e: Entry, fs: ArchiveFS) -> str | None:
    kind = e.kind if e.kind in ("dir", "file", "symlink", "hardlink") else "other"
    if (why := fs.add(e.name, kind, e.link)) is not None:
        return why
    if e.kind in ("device", "fifo", "other"):
        return f"{e.kind} entry {e.name}"
    if e.mode & (stat.S_ISUID | stat.S_ISGID):
        return f"setuid/setgid entry {e.name}"
    return None


def first_unsafe_entry(archive: Path, mode: str = "r:gz") -> str | None:
    """Why the first unsafe entry of a .tar.gz (``mode`` "r:": a plain tar) is unsafe (the
    same judgement as ``inspect_env``, without reading ELF files), or None."""
    fs = ArchiveFS()
    try:
        for e in _tar_entries(archive, elf=False, mode=mode):
            if (why := _unsafe(e, fs)) is not None:
                return why
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        return f"an unreadable archive ({exc})"
    return None


def environment_of(path: Path) -> Path:
    """What ``tritonpack inspect PATH`` reads: PATH itself, or, for a model dir (it holds
    config.pbtxt), the environment its EXECUTION_ENV_PATH names: a model dir is never an
    environment, and reading it as one says only "no bin/python3"."""
    from ..scan.model import CONFIG_NAME, open_model

    if not path.is_dir() or not (path / CONFIG_NAME).is_file():
        return path
    model = open_model(path)
    where = model.env_location()
    if where.fault == "unset":
        raise UsageError(f"{model.name} is a model dir, not an environment, and is not packed: "
                         f"{model.config_path} has no EXECUTION_ENV_PATH to inspect",
                         hint=f"pack it first: tritonpack {model.path}")
    if where.path is None:
        raise UsageError(f"{model.name}: EXECUTION_ENV_PATH {where.value!r} names no "
                         "environment of this model dir",
                         hint="give the environment's path: tritonpack inspect ARCHIVE_OR_DIR")
    if where.fault == "missing":
        raise UsageError(f"{model.name} is not packed here: EXECUTION_ENV_PATH points at "
                         f"{where.path}, which does not exist",
                         hint=f"pack it first: tritonpack {model.path}")
    return where.path


def inspect_target(env: Path, book: Recipes, release: str | None, python: str | None,
                   platform: str | None) -> tuple[Target, str]:
    """The target to check against, and where it came from: the options, else the target
    tritonpack recorded in the environment's stamp, else the newest release (said so)."""
    if release or python or platform:
        return resolve_target(book, release, python=python, platform=platform), "as given"
    from ..archive.writer import read_stamp

    recorded = (read_stamp(env) or {}).get("target")
    if isinstance(recorded, dict) and recorded.get("release") in book.triton:
        rel = str(recorded["release"])
        custom = str(recorded.get("python", ""))
        stub = custom if custom and custom != str(book.triton[rel].get("python")) else None
        plat = str(recorded.get("platform") or "") or None
        return (resolve_target(book, rel, python=stub, platform=plat),
                "the target recorded in the environment")
    newest = resolve_target(book, None)
    return newest, f"no target recorded: assumed the newest release, {newest.release} (--triton)"


def _vstr(v: tuple[int, ...]) -> str:
    return ".".join(map(str, v))


def _refused(why: str) -> str:
    """The one sentence for an entry Triton refuses at load."""
    return f"unsafe entry: {why} (Triton 26.06+ refuses it)"


Newest = tuple[tuple[int, ...], str] | None  # a symbol version and the file that needs it


@dataclass
class _Seen:
    """What one read of an environment's entries found."""

    names: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    python: str | None = None
    numpy: str | None = None
    has_numpy: bool = False
    glibc: Newest = None
    glibcxx: Newest = None
    count: int = 0
    hooks: list[str] = field(default_factory=list)  # start-up code (``_HOOK``)
    owned: set[str] = field(default_factory=set)  # files installed packages say are theirs
    unsafe: list[str] = field(default_factory=list)  # why each unsafe entry is


def inspect_env(path: Path, target: Target) -> InspectReport:
    """Read an environment once and report everything Triton and the image would object to:
    the entries are read (``_read``), then judged against the target (``_judge``)."""
    path = Path(path)
    if not path.exists():
        raise PackError(f"{path}: no such file or directory")
    if path.is_dir():
        fmt, source = "dir", _dir_entries(path)
    else:
        if (kind := not_regular(path)) is not None:  # a FIFO would block the reader forever
            raise PackError(f"{path}: is {kind}, not an environment archive or directory")
        with path.open("rb") as fh:
            magic = fh.read(2)
        if magic != b"\x1f\x8b":
            return InspectReport(path, "unknown", 0, None, None, None, None, (Finding(
                "error", f"{path.name} is not gzip'd: Triton reads gzip'd tar archives only"),))
        fmt, source = "tar.gz", _tar_entries(path)
    seen = _read(path, fmt, source)
    numpy_version = seen.numpy if seen.has_numpy else None
    return InspectReport(
        path, fmt, seen.count, seen.python, numpy_version,
        f"{_vstr(seen.glibc[0])} ({seen.glibc[1]})" if seen.glibc else None,
        f"{_vstr(seen.glibcxx[0])} ({seen.glibcxx[1]})" if seen.glibcxx else None,
        tuple(seen.findings + _judge(seen, numpy_version, target)), tuple(seen.unsafe),
    )


def _read(path: Path, fmt: str, source: Iterator[Entry]) -> _Seen:
    """Every entry once: unsafe ones (replayed through the archive's file system), the Python,
    numpy, and the newest GLIBC/GLIBCXX any ELF file needs."""
    seen = _Seen()
    fs = ArchiveFS()
    try:
        for e in source:
            seen.count += 1
            name = e.name.removeprefix("./")
            seen.names.add(name)
            if (why := _unsafe(e, fs)) is not None:
                seen.unsafe.append(why)
                seen.findings.append(Finding("error", _refused(why)))
            elif fmt == "dir" and e.kind == "symlink" and escapes_dir(path, path / name):
                seen.findings.append(Finding("error", f"unsafe entry: symlink {name} -> {e.link} "
                                                      "really leaves the environment"))
            if e.read_error:
                seen.findings.append(Finding("error", f"cannot read ELF file {name}: {e.read_error}"))
            if _HOOK.match(name) and e.kind != "dir":
                if not (e.kind == "file" and _SITE_PTH.match(name) and e.data == SITE_PTH_TEXT):
                    seen.hooks.append(name)
            elif e.data:
                seen.owned |= _owned(name, e.data)
            if m := _LIBPY.match(name):
                seen.python = m.group(1)
            elif m := _NUMPY_META.match(name):
                seen.numpy = m.group(1)
            elif _NUMPY_PKG.match(name):
                seen.has_numpy = True
            if e.needs:
                seen.glibc = _newer(e.needs, "GLIBC", seen.glibc, name)
                seen.glibcxx = _newer(e.needs, "GLIBCXX", seen.glibcxx, name)
    except (tarfile.TarError, zlib.error, EOFError, OSError) as exc:
        seen.findings.append(Finding("error", f"{path.name} is truncated or corrupted: {exc}"))
    said = {f.message for f in seen.findings}
    escapes = [why for why in fs.final_escapes() if _refused(why) not in said]
    seen.unsafe += escapes
    seen.findings += [Finding("error", _refused(why)) for why in escapes]
    seen.findings += [Finding("error", f"unsafe entry: {hook} runs at every start of the "
                                       "environment's Python and no installed package owns it")
                      for hook in seen.hooks if hook not in seen.owned]
    return seen


def _newer(needs: frozenset[str], family: str, current: Newest, name: str) -> Newest:
    version = newest(needs, family)
    return (version, name) if version is not None and (
        current is None or version > current[0]) else current


def _judge(seen: _Seen, numpy_version: str | None, target: Target) -> list[Finding]:
    """What the target's stub and image would object to in what was read."""
    findings = []
    if "bin/python3" not in seen.names or seen.python is None:
        missing = "bin/python3" if "bin/python3" not in seen.names else "lib/libpython3.X.so.1.0"
        findings.append(Finding("error", f"the environment has no {missing}: Triton would "
                                         "silently run the model on its own Python"))
    elif seen.python != target.python:
        findings.append(Finding("error", f"Python version mismatch: the environment has Python "
                                         f"{seen.python}, the Triton {target.release} stub is "
                                         f"built for {target.python} (the stub would hang or "
                                         "fail to load)"))
    if "bin/activate" not in seen.names:
        findings.append(Finding("error", "the environment has no bin/activate (Triton before "
                                         "25.08 sources it)"))
    if numpy_version is None:
        findings.append(Finding("error", "numpy is missing: the Python backend stub imports it"))
    elif target.numpy:
        try:
            if Version(numpy_version) not in SpecifierSet(target.numpy):
                findings.append(Finding("error", f"numpy {numpy_version} is outside Triton "
                                                 f"{target.release}'s bound numpy{target.numpy}: "
                                                 "the model would load, then every inference "
                                                 "would fail"))
        except (InvalidVersion, InvalidSpecifier):
            findings.append(Finding("warning", f"cannot compare numpy {numpy_version}"))
    for fam, need, have in (("GLIBC", seen.glibc, target.glibc),
                            ("GLIBCXX", seen.glibcxx, target.glibcxx)):
        if need is not None and need[0] > tuple(int(p) for p in have.split(".")):
            findings.append(Finding("error", f"{need[1]} needs {fam}_{_vstr(need[0])}; the "
                                             f"Triton {target.release} image has {fam}_{have}"))
    if "lib/libstdc++.so.6" in seen.names:
        findings.append(Finding("warning", "the environment ships lib/libstdc++.so.6: Triton puts "
                                           "the env's lib/ first, so it shadows the image's"))
    return findings


def _owned(name: str, data: bytes) -> set[str]:
    """The env-relative files a conda-meta record or a wheel's RECORD says its package
    installed (nothing, when it cannot be read: its hooks are then no package's)."""
    try:
        if name.startswith("conda-meta/"):
            record = json.loads(data.decode("utf-8"))
            files = record.get("files", []) if isinstance(record, dict) else []
            return {f for f in files if isinstance(f, str)} if isinstance(files, list) else set()
        site = name.rsplit("/", 2)[0]
        rows = csv.reader(io.StringIO(data.decode("utf-8")))
        return {posixpath.normpath(f"{site}/{row[0]}") for row in rows if row and row[0]}
    except (ValueError, RecursionError, csv.Error):
        return set()


def check_compatible(tree: Path, target: Target, allow: bool,
                     rep: Reporter) -> tuple[tuple[str, str], ...]:
    """What `tritonpack inspect` says, before anything is written: refuse, or warn when allowed."""
    findings = tuple((f.level, f.message) for f in inspect_env(tree, target).findings)
    enforce(findings, target, allow, rep)
    return findings


def enforce(findings: tuple[tuple[str, str], ...], target: Target, allow: bool,
            rep: Reporter) -> None:
    """The compatibility gate: warnings are said; errors refuse the pack unless allowed."""
    for level, message in findings:
        if level == "warning" or allow:
            rep.note(message)
    errors = [m for level, m in findings if level == "error"]
    if errors and not allow:
        raise PackError(
            f"the environment would fail in Triton {target.release}: {errors[0]}",
            hint="pass --allow-incompatible to pack it anyway",
            detail="\n".join(errors),
        )
