"""The locked wheels fetched into uv's cache while the conda packages install.

The PyPI install needs the environment's interpreter, which the conda install makes, so the
two ran one after the other; but most of a cold PyPI install is uv downloading and unpacking
the wheels into its cache, which needs no environment (small model: 1.1 s of its 1.3 s; the
conda install meanwhile: 3 s, extracting the Python package). Here uv installs the same locked
pins, hash-checked (``--require-hashes``: a file that is not the locked one is refused, as in
the real install), into a scratch ``--target`` for the interpreter's version and this machine's
platform, on a thread beside the conda install: the real install then finds every wheel in
the cache and only links it.

It is only a shortcut: its failures (an index that is down, a platform uv does not know, a
hash that does not match) are logged and left to the real install, which reports them as it
always did. Nothing it writes ships: the scratch target is removed. Pins built from source are
left to the real install (their wheel is built with the environment's interpreter).
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shutil
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from ..core import deadlines, network, proc
from ..core.cachehome import cache_dir
from ..core.errors import BuildError, CacheError, ProcessError
from ..lock.backend import Indexes, check_find_links, uv_bin
from ..lock.lockfile import Lockfile, requirements_txt

log = logging.getLogger("tritonpack.wheelsahead")

# the manylinux tags uv names a platform by (``--python-platform``): the host's glibc, within
_MANYLINUX = (17, 40)
_ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def uv_platform() -> str | None:
    """This machine as uv's ``--python-platform`` names it (``x86_64-manylinux_2_36``): the
    wheels the environment's interpreter, running here, would be given. None where there is
    no glibc (uv then picks for itself in the real install)."""
    arch = _ARCHES.get(platform.machine().lower())
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError, AttributeError):
        return None
    name, _, version = libc.partition(" ")
    parts = version.split(".")
    if arch is None or name != "glibc" or len(parts) < 2 or not parts[1].isdigit():
        return None
    if parts[0] != "2" or int(parts[1]) < _MANYLINUX[0]:
        return None
    return f"{arch}-manylinux_2_{min(int(parts[1]), _MANYLINUX[1])}"


def argv(lock: Lockfile, requirements: Path, target: Path, indexes: Indexes) -> list[str] | None:
    """uv's command filling its cache with the lock's wheels (None: nothing to fetch, or no
    platform to name)."""
    where = uv_platform()
    if where is None or not any(not p.sdist for p in lock.pypi):
        return None
    return [uv_bin(), "pip", "install", "--no-config", "--no-python-downloads", "--quiet",
            "--python", sys.executable, "--python-version", lock.python_version(),
            "--python-platform", where, "--target", str(target),
            "--require-hashes", "--no-deps", "--only-binary", ":all:",
            # links into uv's cache, never copies (a cache on another file system than the
            # build: hard links fall back to copying numpy's 70 MB); the scratch is removed,
            # its links only (shutil.rmtree follows none)
            "--link-mode", "symlink", "--cache-dir", str(cache_dir("uv")),
            *network.uv_args(), *indexes.args(), "-r", str(requirements)]


@contextlib.contextmanager
def fetched(lock: Lockfile, work: Path, indexes: Indexes) -> Iterator[None]:
    """While the block runs, uv fetches the lock's wheels (not those built from source) into
    its cache, under ``work``; the block's end waits for it, whatever happened in the block."""
    scratch = work / "wheels-ahead"
    requirements = work / "wheels-ahead.txt"
    try:
        check_find_links(indexes, BuildError)  # a FIFO there would hold uv: the install says so
        command = argv(lock, requirements, scratch / "target", indexes)
        if command is not None:
            requirements.write_text(requirements_txt(tuple(
                replace(p, build_requires=()) for p in lock.pypi if not p.sdist)),
                encoding="utf-8")
    except (OSError, CacheError, BuildError) as exc:  # the real install says what is wrong
        log.debug("no wheels fetched ahead: %s", exc)
        command = None
    if command is None:
        yield
        return
    worker = threading.Thread(target=_fetch, args=(command,), name="tritonpack-wheels-ahead",
                              daemon=True)
    worker.start()
    try:
        yield
    finally:
        worker.join()
        shutil.rmtree(scratch, ignore_errors=True)
        requirements.unlink(missing_ok=True)


def _fetch(command: list[str]) -> None:
    try:
        proc.run(command, timeout=deadlines.INSTALL)
    except ProcessError as exc:  # the real install meets the same problem and reports it
        log.debug("fetching the wheels ahead failed (the install fetches them): %s",
                  exc.output.strip()[-500:])
    except Exception as exc:  # a shortcut only: never a traceback from its thread
        log.debug("fetching the wheels ahead failed: %s", exc)
