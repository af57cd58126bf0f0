"""Locks made with the local-Python fallback hold anywhere: the package is reproducible, the
lock names it logically (no machine path), and it is made again (and checked) when missing."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.core.errors import ExitCode
from packer.lock.conda import CondaPackage
from packer.lock.lockfile import read_lock, write_lock
from packer.lock.pychannel import BUILD, SCHEME, find_python, local_channel

from .conftest import error_line, run_cli
from .freshcache import fresh_cache

Copy = Callable[..., Path]
pytestmark = pytest.mark.slow


def test_the_same_cpython_gives_the_same_package_whatever_the_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install = find_python("3.10")
    made = []
    for n in (1, 2):
        monkeypatch.setenv("TRITONPACK_CACHE", str(tmp_path.joinpath(f"cache-{n}", *["d"] * n)))
        channel = local_channel(install, "linux-64")
        made.append(sorted((p.relative_to(channel).as_posix(), p.read_bytes())
                           for p in channel.rglob("*.conda")))
    assert [name for name, _ in made[0]] == [name for name, _ in made[1]]
    assert len(made[0]) == 2 and made[0] == made[1]  # python and pip


def forge_conda(model: Path, name: str,
                change: Callable[[CondaPackage], dict[str, str]]) -> CondaPackage:
    """Lock ``model``, then rewrite its conda package ``name`` with ``change``'s fields, the
    lock's hashes made again (as anyone can): the package as it was locked."""
    assert run_cli("lock", model, "--triton", "24.10", "--python-from", "auto").exit_code == 0
    lock = read_lock(model / "tritonpack.lock")
    locked = next(p for p in lock.conda if p.name == name)
    forged = dataclasses.replace(locked, **change(locked))
    write_lock(model / "tritonpack.lock", dataclasses.replace(
        lock, conda=tuple(forged if p is locked else p for p in lock.conda)))
    return locked


def test_the_lock_names_no_machine_path_and_builds_with_the_channel_gone(
        model_copy: Copy, session_cache: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = model_copy("plain_numpy")
    assert run_cli("lock", model, "--triton", "24.10", "--python-from", "auto").exit_code == 0
    text = (model / "tritonpack.lock").read_text()
    assert "file://" not in text and str(session_cache) not in text
    python = next(p for p in read_lock(model / "tritonpack.lock").conda if p.name == "python")
    assert python.url.startswith(f"{SCHEME}:{python.version}/linux-64/python-")
    # a colleague's machine, CI, `cache prune --all`: no channel (the session's is not moved
    # aside: other xdist workers use it), the session's downloads
    cache = fresh_cache(tmp_path / "cache", session_cache, ("pkgs", "uv"))
    monkeypatch.setenv("TRITONPACK_CACHE", str(cache))
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--frozen", "--no-cache")
    assert res.exit_code == 0, res.stderr
    assert (cache / "channels").is_dir()  # made again here
    assert run_cli("check", model).exit_code == 0
    with tarfile.open(model / "tritonpack-env.tar.gz") as tar:  # nor does the env
        metas = [tar.extractfile(m).read() for m in tar  # type: ignore[union-attr]
                 if m.name.startswith("conda-meta/") and m.name.endswith(".json")]
    assert metas and not [m for m in metas if str(session_cache).encode() in m
                          or str(cache).encode() in m]


def test_no_matching_cpython_says_which_to_install(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    forge_conda(model, "python", lambda python: {
        "version": "3.10.99", "file_name": f"python-3.10.99-{BUILD}.conda",
        "url": f"{SCHEME}:3.10.99/linux-64/python-3.10.99-{BUILD}.conda"})
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--frozen", "--no-cache")
    assert (res.exit_code, error_line(res.stderr)) == (ExitCode.TARGET, (
        "error: the lock's Python package was made from a shared-library CPython 3.10.99, and "
        "none is on this machine: install CPython 3.10.99 with --enable-shared (e.g. "
        "PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install 3.10.99), or re-lock with the "
        "Python 3.10 you have"))


def test_a_lock_of_an_older_local_package_format_is_stale_and_made_again(
        model_copy: Copy) -> None:
    """Locks made before the local packages became .conda name a .tar.bz2 no tritonpack
    makes any more: stale (--frozen says why), and a plain run locks again and packs."""
    model = model_copy("plain_numpy")
    def older(python: CondaPackage) -> dict[str, str]:
        name = f"python-{python.version}-tritonpack_3.tar.bz2"
        return {"file_name": name, "url": f"{SCHEME}:{python.version}/linux-64/{name}"}

    python = forge_conda(model, "python", older)
    old_name = older(python)["file_name"]
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--frozen")
    assert (res.exit_code, error_line(res.stderr)) == (ExitCode.LOCK, (
        f"error: tritonpack.lock is stale (--frozen): the local Python package {old_name} is "
        f"of an older format ({BUILD} now)"))
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "-q")
    assert res.exit_code == 0, res.stderr
    again = next(p for p in read_lock(model / "tritonpack.lock").conda if p.name == "python")
    assert again.file_name == f"python-{python.version}-{BUILD}.conda"


def test_a_raw_zstd_frame_is_the_bytes_in_stored_blocks() -> None:
    """Frame header (magic, descriptor 0, a 128 KiB window), then blocks of at most 128 KiB,
    each a 3-byte header (size << 3, raw type 0, the last one flagged) and the bytes: what
    rattler (any zstd reader) reads back; every local package's install proves it."""
    import io

    from packer.lock.pychannel import ZSTD_RAW_BLOCK, zstd_raw

    data = bytes(range(256)) * 1200  # 307,200 bytes: 128 KiB, 128 KiB, 45,056
    out = io.BytesIO()
    zstd_raw(io.BytesIO(data), out)
    frame = out.getvalue()
    assert frame[:6] == b"\x28\xb5\x2f\xfd\x00\x38"
    pos, blocks, back = 6, [], b""
    while pos < len(frame):
        head = int.from_bytes(frame[pos:pos + 3], "little")
        size, kind, last = head >> 3, (head >> 1) & 3, head & 1
        blocks.append((size, kind, last))
        back += frame[pos + 3:pos + 3 + size]
        pos += 3 + size
    assert blocks == [(ZSTD_RAW_BLOCK, 0, 0), (ZSTD_RAW_BLOCK, 0, 0), (45056, 0, 1)]
    assert back == data
    empty = io.BytesIO()
    zstd_raw(io.BytesIO(b""), empty)
    assert empty.getvalue() == b"\x28\xb5\x2f\xfd\x00\x38" + (1).to_bytes(3, "little")


@pytest.mark.parametrize(("field", "value", "says"), [
    ("file_name", "../../escape.conda", "file_name is not a package file's name"),
    ("sha256", "../../" + "p" * 58, "sha256 is not 64 hex digits"),
    ("url", "FILE:///etc/passwd", "url is not an http(s), file or tritonpack-local-python URL"),
])
def test_a_lock_whose_package_fields_no_solve_gives_is_refused(
        model_copy: Copy, field: str, value: str, says: str) -> None:
    """Anyone can recompute a lock's content hash: a sha256, file name or URL that could
    never come from a solve (a path, another scheme) is refused before anything is fetched."""
    model = model_copy("plain_numpy")
    forge_conda(model, "pip", lambda pip: {field: value})
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--frozen")
    assert (res.exit_code, error_line(res.stderr)) == (ExitCode.LOCK, (
        f"error: {model / 'tritonpack.lock'}: corrupted: missing or malformed conda package "
        f"'pip': {says}"))


@pytest.mark.parametrize("caches", ["one cache", "two caches sharing their channels"])
def test_two_runs_at_once_make_the_channel_once_and_both_install_from_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caches: str) -> None:
    """Two runs that both find the channel missing: one makes it, the other waits and takes
    it. Before, each made its own and the later one replaced the channel under the first
    one's install (exit 8 with the test suite's workers, whose caches share one channels
    folder by a link: the lock lies beside the channel, not in each cache's own folder)."""
    install = find_python("3.10")
    code = ("import os, sys; from packer.lock.pychannel import find_python, local_channel; "
            "c = local_channel(find_python('3.10'), 'linux-64'); "
            "print(*sorted(f'{p.name}:{p.stat().st_ino}' for p in c.rglob('*.conda')))")
    shared = tmp_path / "channels"
    shared.mkdir()
    homes = [tmp_path / "cache"] * 2 if caches == "one cache" else [
        tmp_path / "cache1", tmp_path / "cache2"]
    for home in set(homes):
        home.mkdir()
        (home / "channels").symlink_to(shared)
    runs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "TRITONPACK_CACHE": str(home)})
            for home in homes]
    seen = [run.communicate(timeout=300)[0].split() for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert seen[0] == seen[1] and len(seen[0]) == 2  # the same files: python and pip
    monkeypatch.setenv("TRITONPACK_CACHE", str(homes[0]))
    channel = local_channel(install, "linux-64")
    now = sorted(f"{p.name}:{p.stat().st_ino}" for p in channel.rglob("*.conda"))
    assert now == seen[0]  # nothing replaced the channel after either run took it
