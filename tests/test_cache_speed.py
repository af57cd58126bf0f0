"""The cache, reproducible archives and pruning (speed itself is measured in bench/)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.archive.targz import BLOCK, ParallelGzipWriter
from packer.build import prefix as env_mod

from .conftest import SRC, run_cli
from .freshcache import fresh_cache

pytestmark = pytest.mark.slow
Copy = Callable[..., Path]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rerun_with_unchanged_lock_builds_nothing(model_copy: Copy,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = model_copy("plain_numpy", "first"), model_copy("plain_numpy", "second")
    res = run_cli(first, "--triton", "24.10", "--python-from", "auto", "--json")
    assert res.exit_code == 0, res.stderr

    def no_build(*args: object, **kw: object) -> None:
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr("packer.pipeline.build", no_build)
    again = json.loads(run_cli(first, "--triton", "24.10", "--python-from", "auto", "--json").stdout)
    assert again["cached"] is True
    # a second model with an identical lock shares the entry
    res = run_cli(second, "--triton", "24.10", "--python-from", "auto", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["cached"] is True
    assert sha(first / "tritonpack-env.tar.gz") == sha(second / "tritonpack-env.tar.gz")



def test_an_unchanged_rerun_writes_no_archive_and_a_changed_one_is_replaced(
        model_copy: Copy) -> None:
    """A re-run on an unchanged lock whose archive is already the cache entry's bytes (hashed,
    not taken from the record) leaves that file as it is: same inode, same mtime. An archive
    with one changed byte is replaced by the entry's copy."""
    model = model_copy("plain_numpy")
    args = ("--triton", "24.10", "--python-from", "auto")
    assert run_cli(model, *args, "-q").exit_code == 0
    archive = model / "tritonpack-env.tar.gz"
    good, before = sha(archive), archive.stat()
    again = run_cli(model, *args)
    assert again.exit_code == 0, again.stderr
    assert "; tritonpack-env.tar.gz already held it" in again.stderr
    after = archive.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert run_cli("check", model).exit_code == 0
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    archive.write_bytes(bytes(raw))
    fixed = run_cli(model, *args)
    assert fixed.exit_code == 0, fixed.stderr
    assert "reused the environment for this lock" in fixed.stderr
    assert "already held it" not in fixed.stderr
    assert sha(archive) == good

def fingerprint(root: Path, entries: set[str] | None = None) -> dict[str, str]:
    """Every file under ``root`` with its sha256; with ``entries``, under those of its
    entries only (uv's cache is shared with other xdist workers, who add unpacked wheels)."""
    tops = [root / e for e in sorted(entries)] if entries is not None else [root]
    return {str(p.relative_to(root)): sha(p) for top in tops for p in sorted(top.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def test_builds_never_write_into_uv_cache(model_copy: Copy, session_cache: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """PyPI packages are hard-linked from uv's cache: every later step (bundling, conda-pack,
    pruning, bytecode, --format dir) must leave the shared files as they were."""
    model = model_copy("with_src")
    # fills uv's cache (and the session's env cache: test_pack_e2e packs this model too)
    res = run_cli(model, "--src", SRC, "--python-from", "auto", "-q")
    assert res.exit_code == 0, res.stderr
    uv_cache = Path(os.environ["TRITONPACK_CACHE"]) / "uv" / "archive-v0"  # unpacked wheels
    before = fingerprint(uv_cache)
    # the two builds' environments (unpruned, with bytecode: no other test's) go to a cache of
    # this test's own, removed with its tmp_path, sharing the session's uv cache (a link)
    monkeypatch.setenv("TRITONPACK_CACHE", str(fresh_cache(tmp_path / "cache", session_cache)))
    assert any(name.endswith(".py") for name in before)  # unpacked wheels live there
    for fmt in ("tar.gz", "dir"):
        res = run_cli(model, "--src", SRC, "--python-from", "auto", "-q", "--no-cache", "--bytecode",
                      "--no-prune", "--format", fmt)
        assert res.exit_code == 0, res.stderr
    assert fingerprint(uv_cache, {name.split("/")[0] for name in before}) == before


def test_two_builds_are_byte_identical(model_copy: Copy, packed_once: Callable[..., Path]) -> None:
    """The session's build of this lock (made once for every test that starts from it) and a
    build from scratch here: the same bytes."""
    first = packed_once("plain_numpy", "--triton", "24.10", "--python-from", "auto")
    model = model_copy("plain_numpy")
    shutil.copy2(first / "tritonpack.lock", model / "tritonpack.lock")
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--frozen", "--no-cache", "-q")
    assert res.exit_code == 0, res.stderr
    assert sha(first / "tritonpack-env.tar.gz") == sha(model / "tritonpack-env.tar.gz")
    with tarfile.open(model / "tritonpack-env.tar.gz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[0] == "tritonpack.json"  # the stamp first, so `check` reads one entry
    assert names[1:] == sorted(names[1:])
    assert {m.mtime for m in members} == {315532800}
    assert "lib/python310.zip" in names  # with the stdlib zipped (packer/pack/stdlibzip.py)


def test_pruned_env_keeps_what_models_import(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--json")
    out = json.loads(res.stdout)
    assert out["pruned"]["files"] > 1000
    assert {"bytecode caches", "static libraries", "headers"} <= set(out["pruned"]["rules"])
    with tarfile.open(model / "tritonpack-env.tar.gz") as tar:
        names = tar.getnames()
        pyc = [n for n in names if n.endswith(".pyc")]
        header = tar.extractfile("lib/python3.10/__pycache__/os.cpython-310.pyc").read(8)  # type: ignore[union-attr]
    assert not [n for n in names if n.endswith(".a")]
    assert not [n for n in names if n.startswith("include/")]
    assert "lib/python3.10/site-packages/numpy/__init__.py" in names
    # bytecode (compiled here, hash-checked) for the stdlib and what the model imports only
    site = "lib/python3.10/site-packages/"
    assert [n for n in pyc if n.startswith(site + "numpy/")]
    assert not [n for n in pyc if n.startswith(site) and not n.startswith(site + "numpy/")]
    assert int.from_bytes(header[4:8], "little") == 0b01  # PEP 552: unchecked hash

    none = json.loads(run_cli(model, "--triton", "24.10", "--python-from", "auto", "--json",
                              "--no-bytecode").stdout)
    with tarfile.open(none["archive"]["path"]) as tar:
        assert not [n for n in tar.getnames() if "__pycache__" in n]

    kept = json.loads(run_cli(model, "--triton", "24.10", "--python-from", "auto", "--json", "--keep",
                              "include").stdout)
    assert "headers" not in kept["pruned"]["rules"] and kept["pruned"]["kept"] == ["include"]


def test_parallel_gzip_is_one_valid_stream_and_deterministic(tmp_path: Path) -> None:
    import gzip
    import os

    data = os.urandom(BLOCK // 2) * 5  # several members, compressible
    outs = []
    for threads in (1, 4):
        path = tmp_path / f"out{threads}.gz"
        with path.open("wb") as raw:
            gz = ParallelGzipWriter(raw, 6, threads)
            for i in range(0, len(data), 100_000):
                gz.write(data[i:i + 100_000])
            gz.close()
        assert gzip.decompress(path.read_bytes()) == data
        outs.append(path.read_bytes())
    assert outs[0] == outs[1]


def test_cache_info_and_prune(model_copy: Copy) -> None:
    info = json.loads(run_cli("cache", "info", "--json").stdout)
    assert set(info["sections"]) == {"envs", "channels", "pkgs", "uv", "pip-tools",
                                     "sdist-wheels", "bytecode", "gzip"}
    res = run_cli("cache", "prune", "--days", "100000", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["removed"] == 0


def test_fixed_build_path_is_refused_when_owned_by_someone_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "tritonpack-build"
    root.mkdir()
    monkeypatch.setattr(env_mod, "BUILD_ROOT", root)
    monkeypatch.setattr(env_mod.os, "getuid", lambda: 12345)
    work = env_mod.new_build_dir("a" * 64)
    assert root not in work.parents  # fell back to a private temporary dir
    work.rmdir()


@pytest.mark.parametrize("everything", [False, True])
def test_prune_never_follows_a_symlink_out_of_the_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, everything: bool) -> None:
    """Whoever can write the cache plants links into a victim's files; prune removes the
    links (debris), never what they point to, in every section."""
    victim = tmp_path / "victim"
    (victim / "aa").mkdir(parents=True)
    (victim / "aa" / "old").write_text("keep\n")
    (victim / "old").write_text("keep\n")
    (victim / "meta.json").write_text("{}\n")
    for f in (victim / "aa" / "old", victim / "old", victim / "meta.json", victim / "aa"):
        os.utime(f, (0, 0))
    cache = tmp_path / "cache"
    monkeypatch.setenv("TRITONPACK_CACHE", str(cache))
    from packer.core.cachehome import cache_dir

    cache_dir()  # a cache tritonpack made (tagged), then written by someone else
    links = [cache / "envs" / ("0" * 64), cache / "bytecode" / "zz", cache / "gzip" / "ab" / "cd",
             cache / "sdist-wheels", cache / "pkgs"]
    for link in links:
        link.parent.mkdir(parents=True, exist_ok=True)
    (cache / "gzip" / "ab" / "cd").symlink_to(victim / "old")
    for link in links:
        if not link.is_symlink():
            link.symlink_to(victim)
    (cache / "uv").symlink_to(victim)  # a whole section, as a link
    argv = ["cache", "prune", "--json"] + (["--all"] if everything else ["--days", "0"])
    res = run_cli(*argv)
    assert res.exit_code == 0
    assert sorted(p.relative_to(victim).as_posix() for p in victim.rglob("*")) == [
        "aa", "aa/old", "meta.json", "old"]
    gone = [*links, cache / "uv"] if everything else links[:3]
    assert [link for link in gone if link.is_symlink()] == []



def test_what_a_pack_reuses_never_changes_the_archive(model_copy: Copy, tmp_path: Path,
                                                      session_cache: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A pack with empty stores (its large files compressed ahead while it imports and
    compiles) and one with every store warm (bytecode, gzip members, and the hint of what
    the import check loaded last time) write the same bytes; a hint naming a file the check
    does not load gives that file no bytecode."""
    model = model_copy("plain_numpy")
    cache = fresh_cache(tmp_path / "cache", session_cache)  # empty stores, downloads shared
    monkeypatch.setenv("TRITONPACK_CACHE", str(cache))
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "-q")
    assert res.exit_code == 0, res.stderr
    first = sha(model / "tritonpack-env.tar.gz")
    assert any((cache / "gzip").rglob("*.*"))
    hints = 0
    for entry in (cache / "bytecode").rglob("*"):
        data = entry.read_bytes()[32:] if entry.is_file() else b""
        if data.startswith(b"["):  # a list of loaded files: one more, never loaded
            listed = [*json.loads(data), "lib/python3.10/site-packages/numpy/f2py/__init__.py"]
            new = json.dumps(listed).encode()
            entry.write_bytes(hashlib.sha256(new).digest() + new)
            hints += 1
    assert hints == 1
    for built in (cache / "envs").iterdir():  # built again, with every store warm
        if built.is_dir() and not built.is_symlink():
            shutil.rmtree(built)
        else:
            built.unlink()
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "-q")
    assert res.exit_code == 0, res.stderr
    assert sha(model / "tritonpack-env.tar.gz") == first
    with tarfile.open(model / "tritonpack-env.tar.gz") as tar:
        names = set(tar.getnames())
    assert "lib/python3.10/site-packages/numpy/f2py/__pycache__/__init__.cpython-310.pyc" \
        not in names
