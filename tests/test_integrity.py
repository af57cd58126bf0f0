"""What ships is what was packed: the archive's sha256 is recorded and checked (`check`, the
cache); no model's archive shares an inode with the cache, and a directory env's files, which
do (hard links: one environment on disk per lock), are read-only and checked before reuse."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.core.integrity import record_path, render_record, sha256_file

from .conftest import run_cli
from .freshcache import DOWNLOADS, fresh_cache

Copy = Callable[..., Path]
pytestmark = pytest.mark.slow
ARCHIVE = "tritonpack-env.tar.gz"


def _pack(model: Path, *extra: str) -> None:
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", *extra)
    assert res.exit_code == 0, res.stderr


def _cache_entries(cache: Path) -> list[Path]:
    return sorted((cache / "envs").glob("*/env.tar.gz"))


def test_no_model_archive_shares_an_inode_with_the_cache(model_copy: Copy,
                                                         session_cache: Path) -> None:
    a, b = model_copy("plain_numpy", "model_a"), model_copy("plain_numpy", "model_b")
    _pack(a)
    _pack(b)  # same lock: the cache entry is reused
    shipped = sha256_file(b / ARCHIVE)
    cached = {os.stat(p).st_ino for p in _cache_entries(session_cache)}
    for model in (a, b):
        assert os.stat(model / ARCHIVE).st_ino not in cached
    # damage model a's archive: model b, packed again from the cache, is not damaged
    with (a / ARCHIVE).open("r+b") as fh:
        fh.truncate(1000)
    (a / ARCHIVE).chmod(0o600)
    (b / ARCHIVE).unlink()
    _pack(b)
    assert sha256_file(b / ARCHIVE) == shipped
    assert oct((b / ARCHIVE).stat().st_mode & 0o777) == "0o644"


def test_a_damaged_cache_entry_is_dropped_and_rebuilt(model_copy: Copy, session_cache: Path,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    a = model_copy("plain_numpy", "model_c")
    _pack(a)
    # the entry this pack used, copied into a cache of this test's own (other xdist workers
    # use the session's entries while this one is damaged)
    cache = fresh_cache(tmp_path / "cache", session_cache, (*DOWNLOADS, "bytecode", "gzip"))
    shipped = sha256_file(a / ARCHIVE)
    entry = next(e for e in _cache_entries(session_cache) if sha256_file(e) == shipped)
    shutil.copytree(entry.parent, cache / "envs" / entry.parent.name)
    monkeypatch.setenv("TRITONPACK_CACHE", str(cache))
    damaged = {}
    for entry in _cache_entries(cache):
        data = bytearray(entry.read_bytes())
        data[len(data) // 2] ^= 0x01
        entry.write_bytes(bytes(data))
        damaged[entry] = sha256_file(entry)
    (a / ARCHIVE).unlink()
    res = run_cli(a, "--triton", "24.10", "--python-from", "auto", "--verbose")
    assert res.exit_code == 0, res.stderr
    assert "differs from the sha256 recorded when it was made: dropped, rebuilding" in res.stderr
    assert sha256_file(a / ARCHIVE) not in damaged.values()
    assert run_cli("check", a).exit_code == 0  # what shipped is what was packed
    shipped = sha256_file(a / ARCHIVE)  # the entry made again holds what shipped
    assert shipped in {sha256_file(e) for e in _cache_entries(cache)}


VERSION_PY = "lib/python3.10/site-packages/numpy/version.py"


def test_dir_envs_of_one_lock_are_one_environment_on_disk(model_copy: Copy,
                                                          session_cache: Path) -> None:
    """--format dir: each model's files are hard links to the cache entry's, read-only."""
    a, b = model_copy("plain_numpy", "model_a"), model_copy("plain_numpy", "model_b")
    _pack(a, "--format", "dir")
    _pack(b, "--format", "dir")  # same lock: the entry is reused
    files = [p.relative_to(a / "tritonpack-env") for p in (a / "tritonpack-env").rglob("*")
             if p.is_file() and not p.is_symlink()]
    assert len(files) > 1000
    for rel in files:
        one, two = (a / "tritonpack-env" / rel).stat(), (b / "tritonpack-env" / rel).stat()
        assert one.st_ino == two.st_ino and one.st_nlink >= 3  # the cache's, a's and b's name
        assert stat.S_IMODE(one.st_mode) & 0o222 == 0, rel
    entry = next(p for p in (session_cache / "envs").glob(f"*/env/{VERSION_PY}")
                 if p.stat().st_ino == (a / "tritonpack-env" / VERSION_PY).stat().st_ino)
    assert entry.is_file()
    for model in (a, b):
        assert run_cli("check", model).exit_code == 0


def test_a_linked_file_written_in_place_never_reaches_another_model(
        model_copy: Copy, session_cache: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A user makes a linked file writable and edits it in place: the cache's entry changed
    with it. The next model of that lock gets the entry dropped and rebuilt, never the edit."""
    a = model_copy("plain_numpy", "model_a")
    _pack(a, "--format", "dir")
    linked = (a / "tritonpack-env" / VERSION_PY).stat().st_ino
    entry = next(p for p in (session_cache / "envs").glob(f"*/env/{VERSION_PY}")
                 if p.stat().st_ino == linked).parents[5]
    # that entry, copied into a cache of this test's own (other xdist workers reuse the
    # session's entry while this one is damaged)
    cache = fresh_cache(tmp_path / "cache", session_cache, (*DOWNLOADS, "bytecode", "gzip"))
    shutil.copytree(entry, cache / "envs" / entry.name, symlinks=True)
    monkeypatch.setenv("TRITONPACK_CACHE", str(cache))
    b = model_copy("plain_numpy", "model_b")
    _pack(b, "--format", "dir")  # a hit: linked from this test's cache
    edited = b / "tritonpack-env" / VERSION_PY
    assert edited.stat().st_ino == (cache / "envs" / entry.name / "env" / VERSION_PY).stat().st_ino
    shipped = edited.read_bytes()
    with pytest.raises(PermissionError) if os.geteuid() else contextlib.nullcontext():
        edited.open("r+b").close()  # read-only: refused to anyone but root
    edited.chmod(0o644)
    with edited.open("r+b") as fh:
        fh.write(b"# edited")
    c = model_copy("plain_numpy", "model_c")
    res = run_cli(c, "--triton", "24.10", "--python-from", "auto", "--format", "dir", "--verbose")
    assert res.exit_code == 0, res.stderr
    assert "differs from the sha256 recorded when it was made: dropped, rebuilding" in res.stderr
    assert (c / "tritonpack-env" / VERSION_PY).read_bytes() == shipped
    assert (c / "tritonpack-env" / VERSION_PY).stat().st_ino != edited.stat().st_ino
    assert run_cli("check", c).exit_code == 0
    assert _check_problems(b) == (1, [  # the edited model itself: `check` says so
        f"plain_numpy: tritonpack-env differs from what was packed: changed {VERSION_PY}"])


@pytest.fixture
def packed(packed_copy: Copy) -> Path:
    """plain_numpy packed for 24.10 once per session (conftest.packed_once), copied here."""
    model = packed_copy("plain_numpy", "--triton", "24.10", "--python-from", "auto")
    assert run_cli("check", model).exit_code == 0
    return model


def _check_problems(model: Path) -> tuple[int, list[str]]:
    res = run_cli("check", model)
    return res.exit_code, [ln.strip() for ln in res.stdout.splitlines()[1:]]


def test_check_refuses_a_truncated_archive(packed: Path) -> None:
    with (packed / ARCHIVE).open("r+b") as fh:
        fh.truncate((packed / ARCHIVE).stat().st_size // 2)
    assert _check_problems(packed) == (1, [
        "plain_numpy: tritonpack-env.tar.gz differs from what was packed (sha256 mismatch: "
        "truncated, corrupted or changed)"])


def test_check_refuses_a_flipped_bit(packed: Path) -> None:
    data = bytearray((packed / ARCHIVE).read_bytes())
    data[-100] ^= 0x04
    (packed / ARCHIVE).write_bytes(bytes(data))
    code, problems = _check_problems(packed)
    assert code == 1 and problems[0].endswith("(sha256 mismatch: truncated, corrupted or changed)")


def test_check_refuses_an_archive_without_its_record(packed: Path) -> None:
    record_path(packed / ARCHIVE).unlink()
    assert _check_problems(packed) == (1, [
        "plain_numpy: tritonpack-env.tar.gz has no readable sha256 record "
        "(tritonpack-env.tar.gz.sha256): re-pack it"])


def test_check_refuses_an_archive_without_python(packed: Path) -> None:
    src = packed / ARCHIVE
    out = io.BytesIO()
    # gzip level 1: rewriting the 36 MB archive at tarfile's default 9 took 25-40 s here
    with tarfile.open(src, "r:gz") as tin, \
            tarfile.open(fileobj=out, mode="w:gz", compresslevel=1) as tout:
        for m in tin:
            if m.name != "bin/python3":
                tout.addfile(m, tin.extractfile(m) if m.isreg() else None)
    src.write_bytes(out.getvalue())  # a valid archive, every entry but bin/python3
    assert _check_problems(packed) == (1, [
        "plain_numpy: tritonpack-env.tar.gz differs from what was packed (sha256 mismatch: "
        "truncated, corrupted or changed)"])


def test_check_refuses_a_changed_directory_env(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    _pack(model, "--format", "dir")
    env = model / "tritonpack-env"
    assert run_cli("check", model).exit_code == 0
    version = env / "lib" / "python3.10" / "site-packages" / "numpy" / "version.py"
    version.unlink()  # a new file: this env's files are linked to the session cache's entry
    version.write_text("x = 1\n")
    code, problems = _check_problems(model)
    assert code == 1
    assert problems == ["plain_numpy: tritonpack-env differs from what was packed: changed "
                        "lib/python3.10/site-packages/numpy/version.py"]
    shutil.rmtree(env / "bin")
    (env / "extra.txt").write_text("x\n")
    problem = _check_problems(model)[1][0]
    assert problem.startswith("plain_numpy: tritonpack-env differs from what was packed: changed "
                              "lib/python3.10/site-packages/numpy/version.py; missing bin/")
    assert problem.endswith("; added extra.txt")


def test_a_conda_package_that_differs_from_the_lock_is_not_installed(model_copy: Copy) -> None:
    import dataclasses

    from packer.core.errors import ExitCode
    from packer.lock.lockfile import read_lock, write_lock

    model = model_copy("plain_numpy")
    assert run_cli("lock", model, "--triton", "24.10", "--python-from", "auto").exit_code == 0
    lock = read_lock(model / "tritonpack.lock")
    python = next(p for p in lock.conda if p.name == "python")
    forged = dataclasses.replace(python, sha256="0" * 64)
    write_lock(model / "tritonpack.lock", dataclasses.replace(
        lock, conda=tuple(forged if p is python else p for p in lock.conda)))
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--frozen", "--no-cache")
    assert res.exit_code == ExitCode.BUILD
    assert next(ln for ln in res.stderr.splitlines() if ln.startswith("error:")) == (
        f"error: conda package {python.file_name} has sha256 {python.sha256[:16]}..., the lock "
        "says 0000000000000000...: refusing to install it")
    assert not (model / ARCHIVE).exists()


def test_check_deep_reads_the_entries_a_rewritten_record_vouches_for(packed: Path) -> None:
    """Whoever can replace the archive can replace its record: ``check`` then passes, and
    ``check --deep`` reads the entries again and finds the link that escapes."""
    src = packed / ARCHIVE
    out = io.BytesIO()
    # gzip level 1: rewriting the 36 MB archive at tarfile's default 9 took 25-40 s here
    with tarfile.open(src, "r:gz") as tin, \
            tarfile.open(fileobj=out, mode="w:gz", compresslevel=1) as tout:
        for m in tin:  # the stamp stays the first entry: it still says "packed from this lock"
            tout.addfile(m, tin.extractfile(m) if m.isreg() else None)
        evil = tarfile.TarInfo("lib/evil")
        evil.type, evil.linkname = tarfile.SYMTYPE, "../../../../etc/passwd"
        tout.addfile(evil)
    src.write_bytes(out.getvalue())
    record_path(src).write_bytes(render_record(ARCHIVE, sha256_file(src)))
    assert run_cli("check", packed).exit_code == 0
    res = run_cli("check", packed, "--deep")
    assert res.exit_code == 1
    assert [ln.strip() for ln in res.stdout.splitlines()[1:]] == [
        "plain_numpy: tritonpack-env.tar.gz: unsafe entry: symlink lib/evil -> "
        "../../../../etc/passwd leaves the environment (Triton 26.06+ refuses it)"]
