"""What a pack keeps for the next one (compiled bytecode, the gzip members of large files)
changes no byte of the archive, and a damaged entry is redone, never shipped; conda-pack's
text-or-binary decision is taken from a read that stops early, with the same answer."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import marshal
import os
import sys
import tarfile
from pathlib import Path

import pytest
from conda_pack.core import is_binary_file

from packer.archive.targz import BLOCK, IDENTITY, ParallelGzipWriter, member
from packer.archive.writer import LARGE, entries, write_targz
from packer.core.cachehome import cache_dir, distrusted
from packer.core.errors import ExitCode, PackError
from packer.core.storefile import SIGNED
from packer.lock.pychannel import find_python
from packer.pack import bytecode
from packer.pack.staging import is_text

from .conftest import error_line, run_cli, snapshot

PY = f"{sys.version_info.major}.{sys.version_info.minor}"
MINOR = sys.version_info.minor


def env_root(tmp_path: Path) -> Path:
    root = tmp_path / "env"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / f"python{PY}").symlink_to(sys.executable)
    pkg = root / "lib" / f"python{PY}" / "site-packages" / "pkg"
    pkg.mkdir(parents=True)
    for i in range(6):
        (pkg / f"m{i}.py").write_text(f"def f(x):\n    return x in {{'a{i}', 'b{i}'}}\n")
    if sys.version_info < (3, 12):
        (pkg / "future.py").write_text("def f[T](a: T) -> T:\n    return a\n")  # 3.12 syntax
    return root


def pycs(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.pyc")}


def test_reused_bytecode_is_the_bytecode_compiled(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root, store = env_root(tmp_path), tmp_path / "store"
    chosen = bytecode.targets(root, PY, "all", ())
    first = bytecode.compile_bytecode(root, PY, chosen, store)
    compiled = pycs(root)
    assert len(compiled) == 6
    code = marshal.loads(compiled[  # noqa: S302  # the bytes this test compiled
                                  f"lib/python{PY}/site-packages/pkg/__pycache__/"
                                  f"m0.cpython-{PY.replace('.', '')}.pyc"][16:])
    assert code.co_filename == f"lib/python{PY}/site-packages/pkg/m0.py"  # not the build dir

    calls: list[list[Path]] = []
    real = bytecode._compile
    monkeypatch.setattr(bytecode, "_compile",
                        lambda r, p, files: calls.append(files) or real(r, p, files))
    for cache in root.rglob("__pycache__"):
        for f in cache.iterdir():
            f.unlink()
    assert bytecode.compile_bytecode(root, PY, chosen, store) == first  # source-only kept too
    assert calls == [] and pycs(root) == compiled

    entry = next(p for p in store.rglob("*") if p.is_file() and p.stat().st_size > 100)
    entry.write_bytes(entry.read_bytes()[:-3])  # a torn write
    assert bytecode.compile_bytecode(root, PY, chosen, store) == first
    assert len(calls) == 1 and len(calls[0]) == 1 and pycs(root) == compiled


def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "big.so").write_bytes(os.urandom(LARGE // 2) * 3 + b"tail")
    (root / "lib" / "small.py").write_text("X = 1\n")
    (root / "lib" / "empty").write_bytes(b"")
    (root / "lib" / "link.so").symlink_to("big.so")
    (root / "bin").mkdir()
    (root / "bin" / "run").write_text("#!/bin/sh\n")
    (root / "bin" / "run").chmod(0o755)
    return root


def tarfile_stream(root: Path, out: Path) -> bytes:
    """The same tree written by the standard library's tarfile (the reference stream)."""
    from packer.archive.writer import _tarinfo

    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in entries(root):
            info = _tarinfo(root, path)
            if info.type == tarfile.REGTYPE:
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    return out.read_bytes()


def members(store: Path, pattern: str = "*") -> list[Path]:
    """A gzip store's entries (one folder down), without the signatures that vouch for them."""
    return sorted(p for p in store.glob(f"*/{pattern}")
                  if p.is_file() and not p.name.endswith(SIGNED))


def test_large_files_reuse_their_compressed_members(tmp_path: Path) -> None:
    root, store = tree(tmp_path), tmp_path / "store"
    reference = tarfile_stream(root, tmp_path / "ref.tar")
    shas = []
    for n, where in enumerate((None, store, store)):  # no cache, empty cache, warm cache
        out = tmp_path / f"out{n}.tar.gz"
        sha, size, _ = write_targz(root, out, 4, 2, store=where)
        assert hashlib.sha256(out.read_bytes()).hexdigest() == sha and size == out.stat().st_size
        assert gzip.decompress(out.read_bytes()) == reference
        shas.append(sha)
        if n == 1:
            [made] = members(store)
            inode = made.stat().st_ino
    assert len(set(shas)) == 1
    [entry] = members(store)  # the one large file's members
    assert entry.stat().st_ino == inode  # the warm pack appended it: a hit, not a redo
    entry.write_bytes(b"\x1f\x8b" + entry.read_bytes()[2:-1])  # damaged: never appended
    sha, _, _ = write_targz(root, tmp_path / "out3.tar.gz", 4, 2, store=store)
    assert sha == shas[0]
    assert [p.name for p in members(store)] == [entry.name]  # redone


def test_a_signed_entry_is_appended_without_inflating_it(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The store vouches for the entries it wrote (its own key's HMAC of the entry's name
    and length, in a sidecar): a warm pack checks such an entry's digest and appends it,
    never inflating it again; one signed with another key is checked in full and then
    signed with this store's; a signed entry whose bytes changed is a miss, redone."""
    from packer.archive import writer as archive

    root, store = tree(tmp_path), tmp_path / "store"
    want = write_targz(root, tmp_path / "cold.tar.gz", 4, 2, store=store)[0]
    [entry] = members(store)
    sig = entry.with_name(entry.name + SIGNED)
    assert len(sig.read_bytes()) == 32 and (store / "gzip.key").stat().st_mode & 0o077 == 0
    inode, full = entry.stat().st_ino, []
    real = archive._holds

    def counted(*args: object) -> bool:
        full.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(archive, "_holds", counted)
    assert write_targz(root, tmp_path / "warm.tar.gz", 4, 2, store=store)[0] == want
    assert full == [] and entry.stat().st_ino == inode  # appended on its signature
    sig.write_bytes(bytes(32))  # another cache's, or forged
    assert write_targz(root, tmp_path / "other.tar.gz", 4, 2, store=store)[0] == want
    assert full == [1] and entry.stat().st_ino == inode and sig.read_bytes() != bytes(32)
    damaged = entry.read_bytes()[:-1] + b"\xff"  # its length field: another digest
    entry.write_bytes(damaged)
    assert write_targz(root, tmp_path / "damaged.tar.gz", 4, 2, store=store)[0] == want
    assert full == [1] and [p.name for p in members(store)] == [entry.name]
    assert entry.read_bytes() != damaged and len(sig.read_bytes()) == 32


def test_members_of_another_encoding_are_a_miss_and_replaced(tmp_path: Path) -> None:
    """Someone who can write the store puts in members that decompress to the same file but
    carry a comment (a payload riding in the archive) or come from another level: the first
    is a miss; whatever the pack compresses again is the only entry left for that file."""
    root, store = tree(tmp_path), tmp_path / "store"
    sha, _, _ = write_targz(root, tmp_path / "ref.tar.gz", 4, 2, store=store)
    [entry] = members(store)
    plain = gzip.decompress(entry.read_bytes())
    forged = bytearray(gzip.compress(plain, compresslevel=4, mtime=0))
    forged[3] |= 0x10  # FCOMMENT
    forged[10:10] = b"ATTACKER-PAYLOAD\0"
    forged_name = entry.name.rpartition(".")[0] + "." + hashlib.sha256(forged).hexdigest()
    (entry.parent / forged_name).write_bytes(bytes(forged))
    entry.unlink()
    again, _, _ = write_targz(root, tmp_path / "out.tar.gz", 4, 2, store=store)
    assert again == sha and b"ATTACKER-PAYLOAD" not in (tmp_path / "out.tar.gz").read_bytes()
    assert [p.name for p in members(store)] == [entry.name]


@pytest.mark.parametrize("data", [
    b"", b"plain ascii\n", "é".encode() * 40_000,  # a 2-byte character across a 64 KiB read
    b"a" * 65_535 + "€".encode(), b"a" * 70_000 + b"\xff", b"\x7fELF\x02\x01" + b"\0" * 99,
    b"a" * 65_535 + b"\xe2\x82",  # a character cut off by the end of the file
])
def test_text_or_binary_is_conda_packs_answer(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "f"
    path.write_bytes(data)
    assert is_text(path) == (not is_binary_file(data))


def test_an_interrupted_write_keeps_nothing(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A large file whose read fails half-way (a disk error) leaves no entry that a later
    pack could take for the whole file's members."""
    from packer.archive import writer as archive

    root, store = tree(tmp_path), tmp_path / "store"
    real = archive._stream

    def fails_half_way(gz: object, path: Path, size: int, padded: int) -> None:
        gz.write(path.read_bytes()[: size // 2])  # type: ignore[attr-defined]
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(archive, "_stream", fails_half_way)
    with pytest.raises(OSError, match="Input/output error"):
        write_targz(root, tmp_path / "out.tar.gz", 4, 2, store=store)
    assert members(store) == []
    monkeypatch.setattr(archive, "_stream", real)
    sha, _, _ = write_targz(root, tmp_path / "out.tar.gz", 4, 2, store=store)
    assert sha == write_targz(root, tmp_path / "again.tar.gz", 4, 2, store=None)[0]


def test_a_gzip_entry_must_decompress_to_the_file_packed(tmp_path: Path) -> None:
    """An entry of the store is used only if its members decompress to the very bytes being
    packed: another file's valid entry renamed under this file's key, or a symlink named
    with its target's digest (``/etc/passwd``), is a miss: compressed again and replaced."""
    root, store = tree(tmp_path), tmp_path / "store"
    (root / "lib" / "other.so").write_bytes(b"B" * (2 * LARGE))
    want = write_targz(root, tmp_path / "ref.tar.gz", 4, 2, store=None)[0]
    assert write_targz(root, tmp_path / "cold.tar.gz", 4, 2, store=store)[0] == want
    big, other = (hashlib.sha256(f"{IDENTITY} level 4\0".encode()
                                 + (root / "lib" / n).read_bytes()).hexdigest()
                  for n in ("big.so", "other.so"))
    [kept_big] = members(store, f"{big}.*")
    [kept_other] = members(store, f"{other}.*")
    swapped = kept_big.parent / f"{big}.{kept_other.name.rpartition('.')[2]}"
    kept_big.unlink()
    swapped.write_bytes(kept_other.read_bytes())  # a valid entry, of the other file
    assert write_targz(root, tmp_path / "swap.tar.gz", 4, 2, store=store)[0] == want
    assert not swapped.exists() and [p.name for p in members(store, f"{big}.*")] == [kept_big.name]

    secret = tmp_path / "secret"
    secret.write_bytes(b"root:x:0:0::/root:/bin/sh\n")
    kept_big.unlink()
    link = kept_big.parent / f"{big}.{hashlib.sha256(secret.read_bytes()).hexdigest()}"
    link.symlink_to(secret)
    out = tmp_path / "link.tar.gz"
    assert write_targz(root, out, 4, 2, store=store)[0] == want
    assert b"root:x" not in gzip.decompress(out.read_bytes())
    assert not link.is_symlink() and secret.read_bytes().startswith(b"root:x")  # link dropped

    data = (root / "lib" / "big.so").read_bytes()
    longer = gzip.compress(data + bytes(-len(data) % 512 + (64 << 20)), mtime=0)  # 64 MiB more
    kept_big.unlink()
    bomb = kept_big.parent / f"{big}.{hashlib.sha256(longer).hexdigest()}"
    bomb.write_bytes(longer)  # the file, then zeros past its padding: inflated no further
    assert write_targz(root, tmp_path / "bomb.tar.gz", 4, 2, store=store)[0] == want
    assert not bomb.exists()

    kept_big.unlink()
    fifo = kept_big.parent / f"{big}.{'0' * 64}"
    os.mkfifo(fifo)  # a read would block forever: never opened so
    assert write_targz(root, tmp_path / "fifo.tar.gz", 4, 2, store=store)[0] == want


def test_members_changed_after_their_check_stop_the_pack(tmp_path: Path) -> None:
    members = tmp_path / "members"
    members.write_bytes(gzip.compress(b"x" * 100, mtime=0))
    with (tmp_path / "out.gz").open("wb") as raw:
        gz = ParallelGzipWriter(raw, 4, 1)
        gz.append_members(members.open("rb"), 100, "0" * 64)  # not these bytes' digest
        with pytest.raises(PackError, match=r"^the cache entry 000000000000 changed while it "
                                            r"was being appended$"):
            gz.close()
        gz.abort()


def entry_of(store: Path, root: Path, rel: str, python: str = PY) -> Path:
    key = hashlib.sha256(bytecode.interpreter_key(root, python) + rel.encode() + b"\0"
                         + (root / rel).read_bytes()).hexdigest()
    return store / key[:2] / key


def test_a_huge_bytecode_entry_is_a_miss_not_a_memory_error(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A planted entry of a terabyte (a sparse file) is never read whole."""
    monkeypatch.setattr(bytecode, "MAX_ENTRY", 1 << 20)
    store = tmp_path / "bytecode"
    (store / "ab").mkdir(parents=True)
    with (store / "ab" / ("ab" + "0" * 62)).open("wb") as fh:
        fh.truncate(1 << 40)
    assert bytecode._lookup(store, "ab" + "0" * 62) is None


@pytest.mark.parametrize("python", ["3.10", PY])
def test_a_bytecode_entry_must_belong_to_its_source(tmp_path: Path, python: str) -> None:
    """A cached .pyc is placed only if its header says this interpreter's magic,
    unchecked-hash, and the source hash of the file being packed (computed by the env's own
    Python: 3.10's differs from 3.11's), and, where tritonpack's Python can read it, if its
    code names this file. Another file's entry (swapped), another path's (same source), or a
    symlink out of the store is compiled again, and the entry replaced."""
    exe = Path(sys.executable) if python == PY else find_python(python).prefix / "bin" / \
        f"python{python}"
    root, store = tmp_path / "env", tmp_path / "store"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / f"python{python}").symlink_to(exe)
    site = f"lib/python{python}/site-packages/pkg"
    (root / site).mkdir(parents=True)
    (root / site / "good.py").write_text("def f():\n    return 'GOOD'\n")
    (root / site / "evil.py").write_text("def f():\n    return 'EVIL'\n")
    (root / site / "twin.py").write_text("def f():\n    return 'GOOD'\n")  # good's bytes
    chosen = bytecode.targets(root, python, "all", ())
    bytecode.compile_bytecode(root, python, chosen, store)
    compiled = pycs(root)
    assert compiled[f"{site}/__pycache__/good.cpython-{python.replace('.', '')}.pyc"][4:8] \
        == b"\1\0\0\0"

    def again() -> None:
        for f in (root / site / "__pycache__").iterdir():
            f.unlink()
        bytecode.compile_bytecode(root, python, chosen, store)
        assert pycs(root) == compiled

    again()  # a warm cache is used: the header checks pass for the env's own compile
    good, evil, twin = (entry_of(store, root, f"{site}/{n}.py", python)
                        for n in ("good", "evil", "twin"))
    kept = good.read_bytes()
    good.write_bytes(evil.read_bytes())  # swapped: evil's source hash
    again()
    assert good.read_bytes() == kept
    outside = tmp_path / "outside"
    outside.write_bytes(kept)
    good.unlink()
    good.symlink_to(outside)  # never followed
    again()
    assert not good.is_symlink() and good.read_bytes() == kept
    if python == PY:  # same source, other path: only the code's recorded name tells them apart
        twin.write_bytes(kept)
        again()
        assert twin.read_bytes() != kept


def test_a_signed_bytecode_entry_is_placed_without_the_vet(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What this cache's own compile kept is signed (its HMAC of the entry's key and bytes):
    the next pack places it with no vetting process (a second interpreter reading every
    source: 0.6 s of the medium bench model's warm pack). An entry vetted once is signed
    then. A changed byte of a signed entry, a signed entry under another key (another
    source's bytes) or signed by another cache's key is a miss: compiled again, replaced."""
    root, store = env_root(tmp_path), tmp_path / "store"
    chosen = bytecode.targets(root, PY, "all", ())
    first = bytecode.compile_bytecode(root, PY, chosen, store)
    compiled = pycs(root)
    rel = f"lib/python{PY}/site-packages/pkg/m0.py"
    entry = entry_of(store, root, rel)
    assert entry.read_bytes()[:32] != hashlib.sha256(entry.read_bytes()[32:]).digest()
    vets: list[int] = []
    compiles: list[list[Path]] = []
    real_vet, real_compile = bytecode._vet, bytecode._compile
    monkeypatch.setattr(bytecode, "_vet", lambda r, p, e: vets.append(len(e)) or real_vet(r, p, e))
    monkeypatch.setattr(bytecode, "_compile",
                        lambda r, p, files: compiles.append(files) or real_compile(r, p, files))

    def again() -> dict[str, bytes]:
        for f in root.rglob("*.pyc"):
            f.unlink()
        assert bytecode.compile_bytecode(root, PY, chosen, store) == first
        return pycs(root)

    assert again() == compiled and vets == [] and compiles == []
    signed = entry.read_bytes()
    entry.write_bytes(hashlib.sha256(signed[32:]).digest() + signed[32:])  # unsigned: vetted
    assert again() == compiled and vets == [1] and compiles == []
    assert entry.read_bytes() == signed  # vetted once: signed again
    assert again() == compiled and vets == [1]
    entry.write_bytes(signed[:-1] + bytes([signed[-1] ^ 1]))  # one byte changed
    assert again() == compiled and vets == [1] and len(compiles) == 1
    assert entry.read_bytes() == signed
    other = entry_of(store, root, f"lib/python{PY}/site-packages/pkg/m1.py")
    other.write_bytes(signed)  # m0's signed entry under m1's key
    assert again() == compiled and len(compiles) == 2 and other.read_bytes() != signed
    (store / bytecode.KEY_FILE).write_bytes(os.urandom(32))  # another cache's key
    assert again() == compiled and len(compiles) == 3 and vets == [1]


def test_a_forged_pyc_is_undetectable_until_no_cache_replaces_it(tmp_path: Path) -> None:
    """The limit of the checks (README): an entry with this file's header and other code is
    placed. ``--no-cache`` (``distrusted``) reads no entry: it compiles, and its work
    replaces the forged entry, so the next pack is clean again."""
    root, store = env_root(tmp_path), tmp_path / "store"
    chosen = bytecode.targets(root, PY, "all", ())
    first = bytecode.compile_bytecode(root, PY, chosen, store)
    compiled = pycs(root)
    rel = f"lib/python{PY}/site-packages/pkg/m0.py"
    out = f"lib/python{PY}/site-packages/pkg/__pycache__/m0.cpython-{PY.replace('.', '')}.pyc"
    entry = entry_of(store, root, rel)
    forged = compiled[out][:16] + marshal.dumps(compile("def f(x):\n    return 'EVIL'\n",
                                                        rel, "exec"))
    entry.write_bytes(hashlib.sha256(forged).digest() + forged)

    def again() -> dict[str, bytes]:
        for f in root.rglob("*.pyc"):
            f.unlink()
        assert bytecode.compile_bytecode(root, PY, chosen, store) == first
        return pycs(root)

    assert again()[out] == forged  # right header, right name: nothing short of compiling tells
    with distrusted():
        assert again() == compiled
    assert entry.read_bytes()[32:] == compiled[out] and again() == compiled


def test_a_packed_env_entry_is_never_read_through_a_symlink(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``envs/KEY/env.tar.gz -> a secret`` with a matching sha256 would copy the secret into
    the model directory: an entry, its meta.json and its archive must be the cache's own."""
    from packer.caches import envs as envcache
    from packer.caches.meta import EntryMeta

    monkeypatch.setenv("TRITONPACK_CACHE", str(tmp_path / "cache"))
    secret = tmp_path / "secret"
    secret.write_bytes(b"root:$6$hash\n")
    meta = EntryMeta("tar.gz", 13, 1, hashlib.sha256(secret.read_bytes()).hexdigest(),
                     "3.10").render().decode()
    base = tmp_path / "cache" / "envs" / ("a" * 64)
    base.mkdir(parents=True)
    (base / "meta.json").write_text(meta)
    (base / "env.tar.gz").write_bytes(secret.read_bytes())
    assert envcache.lookup("a" * 64) is not None  # the cache's own file: found
    (base / "env.tar.gz").unlink()
    (base / "env.tar.gz").symlink_to(secret)
    assert envcache.lookup("a" * 64) is None
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text(meta)
    (base / "env.tar.gz").unlink()
    (base / "env.tar.gz").write_bytes(secret.read_bytes())
    (base / "meta.json").unlink()
    (base / "meta.json").symlink_to(elsewhere)
    assert envcache.lookup("a" * 64) is None


def test_an_env_python_that_cannot_hash_the_sources_is_an_error(tmp_path: Path) -> None:
    """The checks of a warm cache's entries that are not signed (an older tritonpack's, or
    another cache's) run the env's Python once: if it fails, the pack fails (named), it does
    not ship unchecked entries."""
    root, store = env_root(tmp_path), tmp_path / "store"
    python = root / "bin" / f"python{PY}"
    python.unlink()
    broken = tmp_path / "broken"
    python.write_text(f'#!/bin/sh\n[ -e {broken} ] && exit 3\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)  # the same bytes (so the same cache keys) either way
    chosen = bytecode.targets(root, PY, "all", ())
    bytecode.compile_bytecode(root, PY, chosen, store)
    for entry in store.glob("*/*"):
        data = entry.read_bytes()[32:]
        entry.write_bytes(hashlib.sha256(data).digest() + data)  # unsigned
    broken.write_text("")
    with pytest.raises(PackError, match=r"^hashing the sources with the environment's Python "
                                        r"failed$"):
        bytecode.compile_bytecode(root, PY, chosen, store)


@pytest.mark.parametrize("content", ['[]', '"x"', '{"transfers": [{"ref": 1, "key": 2}]}',
                                     '{"transfers": [{"ref": 1, "key": null, "result": 3}]}',
                                     "fifo", "symlink"])
def test_a_malformed_last_run_record_shows_no_transfers(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        content: str) -> None:
    """`cache info` reads remote-last-run.json: anything but what `record` writes (another
    shape, a FIFO that would block, a symlink) is no transfers, never a traceback or a hang."""
    from packer.caches import remote

    monkeypatch.setenv("TRITONPACK_CACHE", str(tmp_path / "cache"))
    stats = tmp_path / "cache" / "remote-last-run.json"
    stats.parent.mkdir()
    if content == "fifo":
        os.mkfifo(stats)
    elif content == "symlink":
        target = tmp_path / "elsewhere.json"
        target.write_text('{"transfers": [{"ref": "r", "key": "k", "result": "hit"}]}')
        stats.symlink_to(target)
    else:
        stats.write_text(content)
    assert remote.last_run() == []
    remote.record([remote.Transfer("oci://r/x", "k", "hit")])  # replaces it, link or not
    assert [t.result for t in remote.last_run()] == ["hit"]
    if content == "symlink":
        assert "hit" in target.read_text() and not stats.is_symlink()


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_cached_env_swapped_after_its_lookup_is_not_copied(tmp_path: Path, kind: str) -> None:
    """Between lookup (which opened the entry without following links) and the copy, the
    entry's archive is swapped for a link to a secret or a FIFO: the copy refuses it (the
    pipeline then drops the entry and rebuilds), never copying the secret, never blocking."""
    from packer.caches import envs as envcache

    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2\n")
    src = tmp_path / "env.tar.gz"
    if kind == "symlink":
        src.symlink_to(secret)
    else:
        os.mkfifo(src)
    tmp = tmp_path / "placed.tar.gz"
    tmp.touch()
    assert envcache.place(src, tmp, "tar.gz") is False
    assert not tmp.exists() or b"hunter2" not in tmp.read_bytes()


@pytest.mark.parametrize("everything", [False, True])
def test_prune_empties_only_a_cache_tritonpack_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, everything: bool) -> None:
    """TRITONPACK_CACHE=~/.cache by mistake: `cache prune --all` would empty uv's cache and
    others' files there. A root tritonpack did not make (no CACHEDIR.TAG of its own) is
    refused in one sentence, every byte kept."""
    shared = tmp_path / "dot-cache"
    for rel in ("uv/wheels/w.whl", "pip-tools/x", "tmp/y", "envs/z/meta.json", "pip/http/h"):
        (shared / rel).parent.mkdir(parents=True, exist_ok=True)
        (shared / rel).write_text("theirs\n")
        os.utime(shared / rel, (0, 0))
    before = snapshot(shared)
    monkeypatch.setenv("TRITONPACK_CACHE", str(shared))
    res = run_cli("cache", "prune", *(["--all"] if everything else ["--days", "0"]))
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.CACHE, f"error: {shared} is not a cache tritonpack made (no CACHEDIR.TAG from "
        "tritonpack in it): tritonpack prunes only its own cache")
    assert snapshot(shared) == before
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("TRITONPACK_CACHE", str(fresh))
    assert run_cli("cache", "prune", "--all").exit_code == 0  # nothing there: nothing to do
    cache_dir()  # made by tritonpack: tagged
    assert run_cli("cache", "prune", "--all").exit_code == 0
    assert (fresh / "CACHEDIR.TAG").read_bytes().startswith(
        b"Signature: 8a477f597d28d172789f06886806bc55")
    older = tmp_path / "older"  # made by a tritonpack before the tag: only its own names
    for rel in ("envs/k/meta.json", "uv/x", "remote-last-run.json"):
        (older / rel).parent.mkdir(parents=True, exist_ok=True)
        (older / rel).write_text("{}\n")
    monkeypatch.setenv("TRITONPACK_CACHE", str(older))
    assert run_cli("cache", "prune", "--all").exit_code == 0
    assert not (older / "envs").exists()


@pytest.mark.parametrize("everything", [False, True])
def test_prune_counts_only_the_bytes_it_frees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             everything: bool) -> None:
    """A --format dir entry's files are the packed models' files too (hard links): removing
    the entry frees none of their bytes, and the model keeps every one of them."""
    monkeypatch.setenv("TRITONPACK_CACHE", str(tmp_path / "cache"))
    entry = cache_dir("envs", "0" * 64)
    (entry / "env").mkdir()
    (entry / "env" / "libpython.so").write_bytes(b"\x7f" * 300_000)  # linked into a model
    (entry / "env" / "only-here.py").write_bytes(b"#" * 1_000)
    (entry / "meta.json").write_text("{}\n")
    os.utime(entry / "meta.json", (0, 0))
    model_env = tmp_path / "model" / "tritonpack-env"
    model_env.mkdir(parents=True)
    os.link(entry / "env" / "libpython.so", model_env / "libpython.so")
    argv = ["cache", "prune", "--json"] + (["--all"] if everything else ["--days", "0"])
    res = run_cli(*argv)
    assert res.exit_code == 0 and json.loads(res.stdout)["bytes"] == 1_003
    assert not entry.exists()
    assert (model_env / "libpython.so").read_bytes() == b"\x7f" * 300_000


@pytest.mark.parametrize(("days", "message"), [
    ("nan", "Invalid value for '--days': nan is not a number of days"),
    ("-1", "Invalid value for '--days': -1.0 is not in the range x>=0."),
])
def test_prune_days_must_be_a_number_of_days(days: str, message: str) -> None:
    """--days nan would remove nothing (no age compares with nan) and -1 everything: both
    are typos, refused as usage errors."""
    res = run_cli("cache", "prune", "--days", days)
    assert res.exit_code == 2 and res.stderr.strip().endswith(message)


@pytest.mark.parametrize("size", [LARGE, 4 << 20, (4 << 20) + 1, (8 << 20) - 100, 3 * LARGE + 7])
def test_members_compressed_ahead_are_the_ones_the_write_keeps(tmp_path: Path, size: int) -> None:
    """The large files compressed while the pack imports and compiles are the very entries
    the write would keep (blocks cut where the writer cuts them, the padding in the last):
    the write appends them, and the archive is the one written without them."""
    import threading

    from packer.archive.writer import compress_ahead

    root = tmp_path / "tree"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "big.so").write_bytes(os.urandom(size))
    early, kept = tmp_path / "early", tmp_path / "kept"
    compress_ahead(root, 4, early, threading.Event())
    want = write_targz(root, tmp_path / "plain.tar.gz", 4, 2, store=kept)[0]

    def entries_of(store: Path) -> dict[str, bytes]:
        return {p.relative_to(store).as_posix(): p.read_bytes()
                for p in members(store)}

    assert entries_of(early) == entries_of(kept) != {}
    [entry] = members(early)
    inode = entry.stat().st_ino
    assert write_targz(root, tmp_path / "ahead.tar.gz", 4, 2, store=early)[0] == want
    assert entry.stat().st_ino == inode  # appended: a hit
    python = tmp_path / "python"
    (python / "lib").mkdir(parents=True)
    (python / "lib" / "big.py").write_bytes(b"#" * LARGE)  # may yet be zipped: the write's
    compress_ahead(python, 4, tmp_path / "py", threading.Event())
    assert not (tmp_path / "py").exists()


def test_a_stop_leaves_nothing_half_compressed(tmp_path: Path) -> None:
    import threading

    from packer.archive.writer import ahead, compress_ahead

    root = tree(tmp_path)
    stop = threading.Event()
    stop.set()
    compress_ahead(root, 4, tmp_path / "store", stop)
    assert not (tmp_path / "store").exists()
    ahead(root, 4, None).halt()  # no store: nothing to do, nothing to stop


def test_members_cut_otherwise_are_a_miss(tmp_path: Path) -> None:
    """The same file's bytes, tritonpack's header and level, but cut into members elsewhere
    than every BLOCK bytes, or with an empty member more (planted in the store): appended,
    they made other archive bytes than the same tree packed without the cache."""
    root, store = tree(tmp_path), tmp_path / "store"
    (root / "lib" / "huge.so").write_bytes(os.urandom(BLOCK + 4096))  # two members
    want = write_targz(root, tmp_path / "ref.tar.gz", 4, 2, store=None)[0]
    assert write_targz(root, tmp_path / "cold.tar.gz", 4, 2, store=store)[0] == want
    for entry in members(store):
        plain = gzip.decompress(entry.read_bytes())
        for cuts in ((100,), (BLOCK - 512,), (BLOCK, BLOCK + 512), (0,), (BLOCK, BLOCK),
                     (len(plain),)):  # the empty members: first, between, last
            bounds = [0, *[c for c in cuts if c <= len(plain)], len(plain)]
            if bounds == [*range(0, len(plain), BLOCK), len(plain)]:
                continue  # the cut tritonpack makes
            forged = b"".join(member(plain[a:b], 4) for a, b in itertools.pairwise(bounds))
            for old in members(store, entry.name.rpartition(".")[0] + ".*"):
                old.unlink()
                Path(f"{old}{SIGNED}").unlink(missing_ok=True)
            planted = entry.parent / (entry.name.rpartition(".")[0] + "."
                                      + hashlib.sha256(forged).hexdigest())
            planted.write_bytes(forged)
            assert write_targz(root, tmp_path / "out.tar.gz", 4, 2, store=store)[0] == want
            assert not planted.exists()


def test_an_archive_another_deflate_wrote_is_not_this_packs_cache_entry(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached archive (local or pulled) written by zlib, or another zlib-ng, holds the same
    files in other bytes: a hit on it made the pack's sha256 depend on the cache's history.
    A directory env has no deflate: its key stays."""
    from packer.archive import targz
    from packer.caches.envs import cache_key
    from packer.pack.stage import PackOptions

    archive, folder = PackOptions(), PackOptions(format="dir")
    before = [cache_key("lock", o, "src") for o in (archive, folder)]
    monkeypatch.setattr(targz, "IDENTITY", targz.IDENTITY.replace("zlib-ng", "zlib-ng 0.0 +"))
    after = [cache_key("lock", o, "src") for o in (archive, folder)]
    assert after[0] != before[0] and after[1] == before[1]
