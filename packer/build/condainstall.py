"""Install locked conda records into a prefix with py-rattler, each archive checked against
the lock's sha256 first (no re-solve). Here, not in ``packer.lock.conda``: a local Python
package is made again by ``packer.lock.pychannel``, which builds on the lock's records, so the
installer sits after both and neither imports the other back."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core import deadlines, network
from ..core.cachehome import cache_dir
from ..core.diskfull import no_space_error
from ..core.errors import BuildError
from ..core.integrity import sha256_file
from ..core.progress import Reporter
from ..core.redact import restore, strip
from ..lock.conda import LOCAL_PYTHON, CondaPackage
from ..lock.pychannel import materialize
from . import shelves


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


def _fetch(pkg: CondaPackage, python_from: str | None = None) -> Path:
    """The package archive on disk: a file:// URL as it is, a local Python package made again
    from this machine's CPython when missing, anything else downloaded once into the cache
    under its locked sha256."""
    if pkg.url.startswith(LOCAL_PYTHON):
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
    extracted packages are kept in a shelf where each name-version-build has had only ever
    one sha256, ``shelves``). A lock's URLs carry no
    credentials: those of the channel URLs given (``credentials``) are put back for the
    download (``packer.core.redact.restore``)."""
    from rattler import install as rattler_install

    _offline_check(packages)
    checked = [verified(dataclasses.replace(p, url=restore(p.url, credentials)), python_from)
               for p in packages]
    shelf = shelves.assign(packages)
    try:
        import asyncio  # py-rattler is async; asyncio loads when it runs
        with shelves.shelf_lock(shelf, None if reporter is None else lambda: reporter.note(
                "waiting for another tritonpack run's install into the conda package cache")):
            asyncio.run(
                rattler_install(
                    [_record(p) for p in checked],
                    target_prefix=prefix.resolve(),
                    cache_dir=cache_dir("pkgs", shelf),
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

