"""The conda side, through py-rattler: solve for a Python, install locked records (no re-solve)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import ResolveError, TargetError
from ..core.redact import strip
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


LOCAL_PYTHON = "tritonpack-local-python:"  # pychannel.SCHEME: a package made from a CPython
_SHA256 = re.compile(r"(?:[0-9a-f]{64})?")  # empty: refused at install, by name
_FILE_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+-]*")  # one name: no '/', no leading '.'
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCHEMES = ("https://", "http://", "file://", LOCAL_PYTHON)
