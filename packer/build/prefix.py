"""Build the environment: conda prefix from the lock, PyPI pins with hashes, bundled user modules.

Everything happens in a temporary prefix outside the model directory; the model
directory is only touched once the archive is complete (pack.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..core import network
from ..core.cachehome import cache_dir
from ..core.errors import BuildError, ProcessError
from ..core.progress import NullReporter, Reporter, plural
from ..core.secrets import looks_secret, why_not_bundled
from ..lock.backend import Indexes, UvBackend
from ..lock.lockfile import Lockfile, requirements_txt
from ..lock.pypi import diagnose, offline_missing, pin_sdist
from ..lock.sdist import build_wheel, wheel_links
from ..resolve.target import host_platform
from ..scan.imports import ImportReport, LocalModule
from . import condainstall, dists, wheelrecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prefix:
    """A built environment on disk, ready for conda-pack."""

    path: Path
    python: str  # X.Y
    bundled: tuple[str, ...]
    skipped: tuple[str, ...]
    licenses: tuple[tuple[str, str], ...] = ()  # PyPI distribution -> license (for --sbom)
    bundled_files: tuple[tuple[str, str], ...] = ()  # (site-packages path, sha256), --src
    # the check of uv's files against their RECORD, running since the install (``verified``)
    records: wheelrecord.Pending | None = field(default=None, compare=False, repr=False)

    @property
    def site_packages(self) -> Path:
        return self.path / "lib" / f"python{self.python}" / "site-packages"

    def verified(self) -> None:
        """Wait for the RECORD check of what uv installed and stop the build if a file
        differs (``_refuse_changed``): the pack asks before it runs the installed code."""
        if self.records is not None:
            _refuse_changed(self.records.result())

    def settled(self) -> None:
        """Wait for the RECORD check, whatever it found: before the prefix is removed."""
        if self.records is not None:
            self.records.wait()


BUILD_ROOT = Path(tempfile.gettempdir()) / "tritonpack-build"


def fixed_build_root() -> Path | None:
    """``BUILD_ROOT`` when this user owns it (made if missing), else None (builds then go to a
    private temporary dir: not reproducible across machines, but never shared)."""
    try:
        BUILD_ROOT.mkdir(mode=0o755, exist_ok=True)
        st = BUILD_ROOT.lstat()
    except OSError:
        return None
    if st.st_uid != os.getuid() or not BUILD_ROOT.is_dir() or BUILD_ROOT.is_symlink():
        return None
    return BUILD_ROOT


def build_lock_path(key: str) -> Path | None:
    """The lock that makes the fixed build path of ``key`` one run's at a time: beside the
    build dir, not in a cache (two jobs with two caches share the build path, not a cache)."""
    root = fixed_build_root()
    return None if root is None else root / f"{key[:16]}.lock"


def new_build_dir(key: str | None = None) -> Path:
    """Where an environment is built. With a key, a fixed path: the build prefix ends up in
    shebangs, RECORD hashes and conda-meta, so a fixed path keeps archives byte-identical
    across runs and machines. The caller holds ``runlock.key_lock(key)``, whose file lies
    beside that path: builds of one key serialize whatever cache each run uses."""
    if key is not None and (root := fixed_build_root()) is not None:
        try:
            work = root / key[:16]
            if work.exists():
                shutil.rmtree(work)  # left by a killed run (the lock is ours)
            work.mkdir(mode=0o700)
            return work
        except OSError:
            pass
    return Path(tempfile.mkdtemp(prefix="build-", dir=cache_dir("tmp")))


def _pypi_install(lock: Lockfile, prefix: Path, python: str,
                  credentials: tuple[str, ...]) -> wheelrecord.Pending | None:
    """Install the locked pins with uv (whatever resolved them), hash-checked; a pin built
    from source is installed from its cached wheel, checked against the hash the cache
    recorded when it built the wheel (rebuilt from the locked, hash-checked sdist if gone,
    with the locked, hash-checked build requirements). Returns the check of the installed
    files against their RECORD, started (``wheelrecord.Pending``; ``Prefix.verified``)."""
    if not lock.pypi:
        return None
    interpreter = prefix / "bin" / f"python{python}"
    indexes = Indexes.from_dict(lock.inputs.get("indexes", {})).with_credentials(credentials)
    built = {p.name: build_wheel(pin_sdist(p), interpreter, python, indexes, p.build_requires)
             for p in lock.pypi if p.sdist}
    if built:
        links = wheel_links(list(built.values()), prefix.parent)
        indexes = replace(indexes, find_links=(*indexes.find_links, str(links)))
    req = prefix.parent / "requirements.txt"
    req.write_text(requirements_txt(tuple(
        replace(p, hashes=(built[p.name].sha256,), sdist="", build_requires=())
        if p.name in built else p
        for p in lock.pypi)), encoding="utf-8")
    try:
        UvBackend().install(req, interpreter, indexes)
    except ProcessError as exc:
        if network.offline() and network.UV_OFFLINE_MISS in exc.output:
            raise offline_missing(diagnose(exc.output).missing, "install the locked packages",
                                  exc, BuildError) from exc
        if "hash mismatch" in exc.output.lower():
            line = next(
                (ln.strip() for ln in exc.output.splitlines() if "mismatch" in ln.lower()), ""
            )
            raise BuildError(
                f"hash mismatch installing the locked PyPI packages: {line}",
                hint="the file on the index differs from the one locked; re-lock only if you "
                "trust the new file (tritonpack lock --upgrade)",
                detail=exc.detail,
            ) from exc
        raise BuildError("installing the locked PyPI packages failed", detail=exc.detail) from exc
    return wheelrecord.Pending(prefix / "lib" / f"python{python}" / "site-packages",
                               [p.name for p in lock.pypi])


def _refuse_changed(bad: list[str]) -> None:
    """uv checks the locked hash when it downloads a wheel, then links what it unpacked into
    its cache: a byte changed there since is caught here (``wheelrecord``)."""
    if bad:
        raise BuildError(
            f"{bad[0]} as installed differs from the sha256 its wheel's RECORD gives"
            + (f" (and {plural(len(bad) - 1, 'other file')})" if len(bad) > 1 else "")
            + f": uv's cache ({cache_dir('uv')}) holds a changed copy",
            hint="tritonpack cache prune --all (the wheels are downloaded and checked "
            "against the lock's hashes again); nothing was packed")


def _fresh_copy(src: Path, dest: Path) -> None:
    """Copy to a new inode: installed files may be hard links into uv's cache, never written."""
    dest.unlink(missing_ok=True)
    shutil.copy2(src, dest)


def _owner(site: Path, top: str) -> str | None:
    """The installed distribution providing module ``top``, if any."""
    candidates = [site / top, site / f"{top}.py", *site.glob(f"{top}.*.so")]
    if not any(c.exists() for c in candidates):
        return None
    for dist in dists.installed(site):
        if any(f.startswith((f"{top}/", f"{top}.py", f"{top}.")) for f in dist.files):
            return dist.name
    return "a conda package"


def check_shadowing(local: tuple[LocalModule, ...], site: Path) -> None:
    for top in sorted({m.name.split(".")[0] for m in local}):
        owner = _owner(site, top)
        if owner:
            mod = next(m for m in local if m.name.split(".")[0] == top)
            raise BuildError(
                f"your module {top!r} ({mod.path}) has the same name as a module installed by "
                f"{owner}: the installed one would be imported at run time",
                hint=f"rename your module {top!r} (or its package)",
            )


def _bundle_sources(report: ImportReport) -> list[tuple[str, Path]]:
    """(top-level name, file or dir) of every user module that is bundled."""
    out = []
    for top in sorted({m.name.split(".")[0] for m in report.bundled()}):
        mod = next(m for m in report.bundled() if m.name.split(".")[0] == top)
        src = mod.root / top
        out.append((top, src if src.is_dir() else src.with_name(f"{top}.py")))
    return out


@dataclass(frozen=True)
class BundlePlan:
    """Exactly what bundling copies (site-packages-relative name, source) and what it leaves
    out (name and why): one list for the cache key, the copy, --verbose and the SBOM."""

    files: tuple[tuple[str, Path], ...]
    skipped: tuple[str, ...]
    tops: tuple[str, ...]


def bundle_plan(report: ImportReport, allow: frozenset[str] = frozenset()) -> BundlePlan:
    """The imported modules and packages of each --src root, with their package data; never a
    dot-file, a dot-directory, a secret-like name or content, or a symlink (``secrets``),
    unless ``allow`` names the file (``--allow-secret``: its path as the skipped list shows)."""
    files: list[tuple[str, Path]] = []
    skipped: list[str] = []
    tops: list[str] = []
    for top, src in _bundle_sources(report):
        if src.is_symlink():  # it may lead anywhere outside the --src root
            skipped.append(f"{src.name} (symlink)")
            continue
        tops.append(top)
        if src.is_file():
            files.append((f"{top}.py", src))
            continue
        _plan_dir(src, (top,), files, skipped, allow)
    return BundlePlan(tuple(files), tuple(skipped), tuple(tops))


def _plan_dir(directory: Path, shown: tuple[str, ...], files: list[tuple[str, Path]],
              skipped: list[str], allow: frozenset[str]) -> None:
    for path in sorted(directory.iterdir()):
        name = "/".join((*shown, path.name))
        why = why_not_bundled((path.name,)) or ("symlink" if path.is_symlink() else None)
        if why == "dot-file" and path.is_dir():
            why = "dot-directory"
        if why == "secret-like name" and name in allow:
            why = None
        if why is None and path.is_file() and name not in allow and (
                what := looks_secret(path)) is not None:
            why = f"looks like {what}"
        if why is not None:
            if why != "bytecode cache":
                skipped.append(f"{name} ({why})")  # a directory left out: nothing under it read
        elif path.is_dir():
            _plan_dir(path, (*shown, path.name), files, skipped, allow)
        elif path.is_file():
            files.append((name, path))


def bundle_digest(report: ImportReport, allow: frozenset[str] = frozenset()) -> str:
    """A hash of exactly what would be bundled (names and bytes): part of the cache key."""
    h = hashlib.sha256()
    for rel, path in bundle_plan(report, allow).files:
        h.update(rel.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def bundle(report: ImportReport, site: Path, allow: frozenset[str] = frozenset()) -> tuple[
        tuple[str, ...], tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Copy user modules from --src roots into site-packages: (tops, skipped, (file, sha256))."""
    plan = bundle_plan(report, allow)
    files = []
    for rel, src in plan.files:
        dest = site / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        _fresh_copy(src, dest)
        files.append((rel, hashlib.sha256(dest.read_bytes()).hexdigest()))
    return plan.tops, plan.skipped, tuple(files)


def build(lock: Lockfile, report: ImportReport, reporter: Reporter | None = None,
          key: str | None = None, python_from: str | None = None,
          credentials: tuple[str, ...] = (), allow: frozenset[str] = frozenset()) -> Prefix:
    """Create the environment in a fresh temporary prefix (caller removes ``path.parent``)."""
    rep = reporter or NullReporter()
    plat = lock.target["platform"]
    if plat != host_platform():
        raise BuildError(
            f"cannot build a {plat} environment on {host_platform()}",
            hint="lock here, build on a machine of the target's platform",
        )
    python = ".".join(lock.python_version().split(".")[:2])
    work = new_build_dir(key)
    prefix = work / "env"
    records: wheelrecord.Pending | None = None
    try:
        t0 = time.monotonic()
        rep.start("install", f"installing {len(lock.conda)} conda packages")
        condainstall.install(lock.conda, prefix, rep, python_from, credentials)
        rep.start("install", f"installing {plural(len(lock.pypi), 'PyPI package')} (hash-checked)")
        records = _pypi_install(lock, prefix, python, credentials)
        site = prefix / "lib" / f"python{python}" / "site-packages"
        check_shadowing(report.local, site)
        bundled, skipped, files = bundle(report, site, allow)
        for rel, sha in files:
            log.info("bundled %s (sha256 %s)", rel, sha)  # shown with --verbose
        (prefix / "CACHEDIR.TAG").unlink(missing_ok=True)
        from_source = sum(1 for p in lock.pypi if p.sdist)
        rep.done("build", f"{len(lock.conda)} conda + {len(lock.pypi)} PyPI packages"
                 + (f" ({from_source} built from source)" if from_source else "")
                 + f", {plural(len(bundled), 'bundled module')}", time.monotonic() - t0)
    except BaseException:
        if records is not None:
            records.wait()  # it reads the files removed here
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Prefix(prefix, python, bundled, skipped,
                  pypi_licenses(prefix / "lib" / f"python{python}" / "site-packages"), files,
                  records)


def pypi_licenses(site: Path) -> tuple[tuple[str, str], ...]:
    """License of each installed distribution, from its METADATA (read, never imported)."""
    return tuple(sorted({d.key: d.license for d in dists.installed(site)}.items()))
