"""The conda side, through py-rattler: solve for a Python, install locked records (no re-solve)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import deadlines, network
from ..core.cachehome import cache_dir
from ..core.diskfull import no_space_error
from ..core.errors import BuildError, ResolveError, TargetError
from ..core.integrity import sha256_file
from ..core.progress import Reporter
from ..core.redact import restore, strip
from ..resolve.target import Target

CONDA_FORGE = "conda-forge"


@dataclass(frozen=True)
class CondaPackage:
    """A locked conda package: enough to install it again without a solve."""

    name: str
    version: str
    build: str
    build_number: int
    subdir: str
    url: str
    sha256: str
    channel: str
    file_name: str
    size: int = 0
    md5: str = ""
    noarch: str = ""
    license: str = ""
    depends: tuple[str, ...] = field(default=())
    constrains: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "version": self.version, "build": self.build,
            "build_number": self.build_number, "subdir": self.subdir, "url": self.url,
            "sha256": self.sha256, "md5": self.md5, "size": self.size, "channel": self.channel,
            "file_name": self.file_name, "noarch": self.noarch, "license": self.license,
            "depends": list(self.depends), "constrains": list(self.constrains),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CondaPackage:
        """A package as a lock records it; ValueError for fields that could never have come
        from a solve (anyone can recompute a lock's content hash): a sha256 that is not one,
        a file name that is a path, a URL of another scheme or with control characters."""
        pkg = cls._read(data)
        problem = pkg.malformed()
        if problem:
            raise ValueError(problem)
        return pkg

    def malformed(self) -> str:
        """What makes these fields impossible for a solved package ("" when nothing)."""
        if not _SHA256.fullmatch(self.sha256):
            return f"conda package {self.name!r}: sha256 is not 64 hex digits"
        if not _FILE_NAME.fullmatch(self.file_name):
            return f"conda package {self.name!r}: file_name is not a package file's name"
        if _CONTROL.search(self.url) or not self.url.startswith(_SCHEMES):
            return (f"conda package {self.name!r}: url is not an http(s), file or "
                    "tritonpack-local-python URL")
        if self.url.startswith(LOCAL_PYTHON) and not self.url.endswith(
                (f"/{self.subdir}/{self.file_name}", f"/noarch/{self.file_name}")):
            return f"conda package {self.name!r}: url does not end with its subdir and file name"
        return ""

    @classmethod
    def _read(cls, data: dict[str, Any]) -> CondaPackage:
        return cls(
            name=str(data["name"]), version=str(data["version"]), build=str(data["build"]),
            build_number=int(data["build_number"]), subdir=str(data["subdir"]),
            url=str(data["url"]), sha256=str(data["sha256"]), channel=str(data["channel"]),
            file_name=str(data["file_name"]), size=int(data.get("size", 0)),
            md5=str(data.get("md5", "")), noarch=str(data.get("noarch", "")),
            license=str(data.get("license", "")),
            depends=tuple(data.get("depends", ())), constrains=tuple(data.get("constrains", ())),
        )


def channel_url(channel: str) -> str:
    if not channel.strip():
        raise ResolveError("--channel '': a channel needs a name or a URL",
                           hint="e.g. --channel conda-forge or --channel file:///srv/channel")
    if "://" in channel:
        return channel
    if channel.startswith("/") or channel.startswith("."):
        return Path(channel).resolve().as_uri()
    return f"https://conda.anaconda.org/{channel}"


def reachable(channel: str, timeout: float = 5.0) -> bool:
    """Whether a channel answers (a file:// channel: whether its noarch/ exists)."""
    url = channel_url(channel)
    if url.startswith("file://"):
        return Path(url[len("file://"):], "noarch").is_dir()
    import urllib.error  # with http.client and ssl: paid by a run that reaches a network
    import urllib.request

    try:
        # the URL is an http(s) channel address built above, not user-controlled schemes
        with urllib.request.urlopen(f"{url}/noarch/repodata.json", timeout=timeout):  # noqa: S310
            return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _virtual_packages(target: Target) -> list[Any]:
    from rattler import BuildString, GenericVirtualPackage, PackageName, Version

    def vp(name: str, version: str) -> Any:
        return GenericVirtualPackage(PackageName(name), Version(version), BuildString("0"))

    return [vp("__linux", "5.15"), vp("__glibc", target.glibc), vp("__unix", "0"),
            vp("__archspec", "1")]


def _to_package(rec: Any) -> CondaPackage:
    return CondaPackage(
        name=rec.name.normalized, version=str(rec.version), build=str(rec.build),
        build_number=int(rec.build_number), subdir=str(rec.subdir), url=strip(str(rec.url)),
        sha256=rec.sha256.hex() if rec.sha256 else "", channel=strip(str(rec.channel)),
        file_name=str(rec.file_name), size=int(rec.size or 0),
        md5=rec.md5.hex() if rec.md5 else "", noarch=_noarch(rec),
        license=str(rec.license or ""), depends=tuple(rec.depends),
        constrains=tuple(rec.constrains),
    )


def _noarch(rec: Any) -> str:
    kind = rec.noarch
    if kind.python:
        return "python"
    if kind.generic:
        return "generic"
    return ""


def check_specs(specs: Sequence[str]) -> None:
    """A declared conda spec that does not parse is the spec's fault, not the channel's."""
    from rattler import MatchSpec

    for spec in specs:
        try:
            MatchSpec(spec)
        except Exception as exc:  # rattler's InvalidMatchSpecError has no importable base
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ResolveError(f"conda requirement {spec!r} is not a valid conda spec: {why}",
                               hint="conda specs read 'name', 'name >=1.2' or 'name 1.2.*' "
                                    "([requirements] conda in tritonpack.toml)") from exc


def solve(target: Target, channels: Sequence[str], specs: Sequence[str],
          pip: bool = True) -> tuple[CondaPackage, ...]:
    """Solve ``python X.Y.*`` + pip + ``specs`` for the target platform; without pip when the
    PyPI lock installs its own (``pip=False``): two pips in one prefix break each other."""
    from rattler import Subdir
    from rattler import solve as rattler_solve
    from rattler.exceptions import SolverError

    check_specs(specs)
    sources = [channel_url(c) for c in channels]  # an empty --channel is named, not "unreachable"
    all_specs = [f"python {target.python}.*", *(["pip"] if pip else []), *specs]
    try:
        import asyncio  # py-rattler is async; asyncio loads when it runs
        records = asyncio.run(
            rattler_solve(
                sources=sources,
                specs=all_specs,
                platforms=[Subdir(target.platform), Subdir("noarch")],
                virtual_packages=_virtual_packages(target),
            )
        )
    except SolverError as exc:
        if specs:  # the declared specs are the likelier cause than the target's Python
            raise ResolveError(
                f"no conda solution for {', '.join(specs)} with python {target.python}.* on "
                f"{target.platform}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                .rstrip(": "),
                hint=f"check [requirements] conda in tritonpack.toml; channels tried: "
                     f"{', '.join(channels)}",
                detail=str(exc),
            ) from exc
        raise TargetError(
            f"no conda solution for python {target.python}.* on {target.platform}",
            hint=f"channels tried: {', '.join(channels)}",
            detail=str(exc),
        ) from exc
    except Exception as exc:  # rattler's fetch errors have no common base
        raise ResolveError(
            f"conda channel unreachable or unreadable: {', '.join(channels)}",
            hint="check --channel, or use --python-from / --offline",
            detail=str(exc),
        ) from exc
    return tuple(sorted((_to_package(r) for r in records), key=lambda p: p.name))


def _record(pkg: CondaPackage) -> Any:
    from rattler import BuildString, NoArchType, PackageRecord, RepoDataRecord

    kinds: dict[str, Any] = {"python": "python", "generic": "generic"}
    noarch = NoArchType(kinds.get(pkg.noarch))
    record = PackageRecord(
        name=pkg.name, version=pkg.version, build=BuildString(pkg.build), build_number=pkg.build_number,
        subdir=pkg.subdir, noarch=noarch, depends=list(pkg.depends),
        constrains=list(pkg.constrains), sha256=bytes.fromhex(pkg.sha256),
        md5=bytes.fromhex(pkg.md5) if pkg.md5 else None, size=pkg.size or None,
        license=pkg.license or None,
    )
    return RepoDataRecord(record, pkg.file_name, pkg.url, pkg.channel)


class _Downloads:
    """rattler's installer callbacks -> megabytes downloaded so far, for the progress line."""

    def __init__(self, reporter: Reporter, total: int):
        self.reporter = reporter
        self.total = total
        self.done: dict[int, int] = {}
        self.next = 0

    def on_download_start(self, cache_entry: int) -> int:
        self.next += 1
        return self.next

    def on_download_progress(self, download_idx: int, progress: int, total: int | None) -> None:
        self.done[download_idx] = progress
        self.reporter.progress("downloading conda packages", sum(self.done.values()) / 1e6,
                               self.total / 1e6 or None, "MB")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on_"):  # every other callback: nothing to show
            return lambda *args, **kwargs: 0
        raise AttributeError(name)


LOCAL_PYTHON = "tritonpack-local-python:"  # pychannel.SCHEME: a package made from a CPython
_SHA256 = re.compile(r"(?:[0-9a-f]{64})?")  # empty: refused at install, by name
_FILE_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+-]*")  # one name: no '/', no leading '.'
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCHEMES = ("https://", "http://", "file://", LOCAL_PYTHON)


def _fetch(pkg: CondaPackage, python_from: str | None = None) -> Path:
    """The package archive on disk: a file:// URL as it is, a local Python package made again
    from this machine's CPython when missing, anything else downloaded once into the cache
    under its locked sha256."""
    if pkg.url.startswith(LOCAL_PYTHON):
        from .pychannel import materialize  # pychannel builds on this module

        return materialize(pkg, python_from)
    import urllib.error
    import urllib.request

    if pkg.url.startswith("file://"):
        return Path(urllib.request.url2pathname(pkg.url[len("file://"):]))
    dest = cache_dir("downloads") / f"{pkg.sha256}-{pkg.file_name}"
    if not dest.is_file():
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        try:
            # the URL is the lock's http(s) package URL, fetched to be hash-checked
            with urllib.request.urlopen(  # noqa: S310
                    pkg.url, timeout=deadlines.DOWNLOAD_READ) as resp, tmp.open("wb") as fh:
                shutil.copyfileobj(resp, fh, 1 << 20)
            os.replace(tmp, dest)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            tmp.unlink(missing_ok=True)
            raise BuildError(f"cannot download {pkg.file_name} from {pkg.url}: {exc}",
                             hint="check the network, or re-lock with tritonpack lock") from exc
    return dest


def verified(pkg: CondaPackage, python_from: str | None = None) -> CondaPackage:
    """``pkg`` pointing at a local archive whose sha256 equals the lock's, or a BuildError."""
    problem = pkg.malformed()  # read_lock refuses these; a caller's own record too
    if problem:
        raise BuildError(problem, hint="re-create the lock with tritonpack lock")
    if len(pkg.sha256) != 64:
        raise BuildError(f"the lock records no sha256 for conda package {pkg.name}: it cannot "
                         "be checked", hint="re-create the lock with tritonpack lock")
    path = _fetch(pkg, python_from)
    try:
        got = sha256_file(path)
    except OSError as exc:
        raise BuildError(f"conda package {pkg.file_name} is missing at {pkg.url}",
                         hint="re-create the lock with tritonpack lock") from exc
    if got != pkg.sha256:
        if path.parent == cache_dir("downloads"):  # a download that is not the locked file
            path.unlink(missing_ok=True)
        raise BuildError(f"conda package {pkg.file_name} has sha256 {got[:16]}..., the lock "
                         f"says {pkg.sha256[:16]}...: refusing to install it",
                         hint="re-lock only if you trust the new file (tritonpack lock --upgrade)"
                         if not pkg.url.startswith(LOCAL_PYTHON) else "this machine's CPython "
                         f"{pkg.version} differs from the one locked: re-lock here, or build "
                         "where the lock was made")
    if pkg.url.startswith(LOCAL_PYTHON):  # the channel made on this machine (CHANNEL/SUBDIR/FILE)
        return dataclasses.replace(pkg, url=path.resolve().as_uri(),
                                   channel=path.resolve().parent.parent.as_uri())
    return dataclasses.replace(pkg, url=path.resolve().as_uri())


def _offline_check(packages: Sequence[CondaPackage]) -> None:
    """Under ``--offline``, every conda package to download is refused at once, by name."""
    if not network.offline():
        return
    missing = [p.file_name for p in packages
               if not p.url.startswith((LOCAL_PYTHON, "file://"))
               and not (cache_dir("downloads") / f"{p.sha256}-{p.file_name}").is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                           else "")
        raise BuildError(f"--offline: cannot install the locked conda packages without the "
                         f"network: {shown} {'is' if len(missing) == 1 else 'are'} not in "
                         "tritonpack's package cache", hint=network.hint())


def install(packages: Sequence[CondaPackage], prefix: Path,
            reporter: Reporter | None = None, python_from: str | None = None,
            credentials: tuple[str, ...] = ()) -> None:
    """Create ``prefix`` from locked records, each archive checked against the lock's sha256
    first (rattler's package cache is keyed by name, version and build, not by bytes: the
    extracted packages are kept per set of locked sha256s). A lock's URLs carry no
    credentials: those of the channel URLs given (``credentials``) are put back for the
    download (``packer.core.redact.restore``)."""
    from rattler import install as rattler_install

    _offline_check(packages)
    checked = [verified(dataclasses.replace(p, url=restore(p.url, credentials)), python_from)
               for p in packages]
    shelf = hashlib.sha256("".join(sorted(p.sha256 for p in packages)).encode()).hexdigest()
    try:
        import asyncio  # py-rattler is async; asyncio loads when it runs
        asyncio.run(
            rattler_install(
                [_record(p) for p in checked],
                target_prefix=prefix.resolve(),
                cache_dir=cache_dir("pkgs", shelf[:16]),
                show_progress=False,
                execute_link_scripts=False,
                reporter=_Downloads(reporter, sum(p.size for p in packages))
                if reporter is not None else None,
            )
        )
    except Exception as exc:
        size = sum(p.size for p in packages)
        full = no_space_error(str(exc), needed=f"the {len(packages)} conda packages need more "
                              f"than their {size / 1e6:.0f} MB download once installed"
                              if size else None)
        if full is not None:
            raise full from exc
        raise BuildError(
            "installing the locked conda packages failed",
            hint="a package may have changed on its channel (sha256) or be unreachable; "
            "re-lock with tritonpack lock",
            detail=str(exc),
        ) from exc
    _record_locked_origins(packages, prefix)


def _record_locked_origins(packages: Sequence[CondaPackage], prefix: Path) -> None:
    """conda-meta names where each package came from as the lock does, not the machine's
    download or channel path (the env, and the archive, must not depend on the cache path)."""
    for pkg in packages:
        meta = prefix / "conda-meta" / f"{pkg.name}-{pkg.version}-{pkg.build}.json"
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        data.update(url=strip(pkg.url), channel=strip(pkg.channel))  # shipped: no credentials
        meta.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

