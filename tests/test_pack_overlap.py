"""Work a pack overlaps with what it does anyway: the environment's size for the summary,
walked while it packs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def test_the_environments_size_walked_meanwhile_is_its_size(tmp_path: Path) -> None:
    """The pack's summary rate: the prefix's megabytes, walked on a thread while it packs."""
    from packer.pack.stage import du_mb, du_mb_meanwhile

    (tmp_path / "env" / "lib").mkdir(parents=True)
    (tmp_path / "env" / "lib" / "a.so").write_bytes(b"x" * 300_000)
    (tmp_path / "env" / "b.py").write_bytes(b"y" * 200_000)
    walked = du_mb_meanwhile(tmp_path / "env")
    assert walked() == du_mb(tmp_path / "env") == 0.5
    assert du_mb_meanwhile(tmp_path / "gone")() == 0.0  # nothing there: no size, no error


def test_a_native_library_is_its_own_members_kept_and_appended(tmp_path: Path) -> None:
    """A ``.so`` of NATIVE bytes or more (numpy's, scipy's: 64 KiB to 1 MiB) is written as
    gzip members of its own, kept in the store and appended by the next write, as a large
    file is; another file of that size is not. The archive is the one written without a
    store, and tarfile reads it."""
    import tarfile

    from packer.archive.writer import LARGE, NATIVE, own_members, write_targz

    root = tmp_path / "tree"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "_ext.cpython-310-x86_64-linux-gnu.so").write_bytes(os.urandom(NATIVE + 5))
    (root / "lib" / "libz.so.1.3").write_bytes(os.urandom(NATIVE * 2))
    (root / "lib" / "data.bin").write_bytes(os.urandom(NATIVE * 3))
    (root / "lib" / "tiny.so").write_bytes(os.urandom(NATIVE - 1))
    assert [own_members(n, s) for n, s in (("a.so", NATIVE), ("a.so.1", NATIVE),
                                           ("a.bin", LARGE - 1), ("a.bin", LARGE),
                                           ("a.so", NATIVE - 1))] == [True, True, False, True,
                                                                      False]
    plain = write_targz(root, tmp_path / "plain.tar.gz", 4, 2)[0]
    store = tmp_path / "store"
    assert write_targz(root, tmp_path / "first.tar.gz", 4, 2, store=store)[0] == plain
    kept = sorted(p.name for p in store.glob("*/*") if not p.name.endswith(".sig"))
    assert len(kept) == 2  # the two libraries, not data.bin nor tiny.so
    inodes = {p: p.stat().st_ino for p in store.glob("*/*")}
    assert write_targz(root, tmp_path / "again.tar.gz", 4, 2, store=store)[0] == plain
    assert {p: p.stat().st_ino for p in store.glob("*/*")} == inodes  # appended: hits
    with tarfile.open(tmp_path / "again.tar.gz") as tar:
        member = tar.extractfile("lib/libz.so.1.3")
        assert member is not None
        assert member.read() == (root / "lib" / "libz.so.1.3").read_bytes()


def test_the_write_waits_for_the_file_compressed_ahead_and_takes_the_rest(
        tmp_path: Path) -> None:
    """``Ahead`` and the write share the files: one the write reached first is never started
    ahead; one ahead is on is waited for (then appended from the store), never dropped
    half done nor compressed twice."""
    import threading

    from packer.archive.writer import Ahead

    early = Ahead()
    first, second = tmp_path / "a.so", tmp_path / "b.so"
    early.claim(first)
    assert early.take(first) is None  # the write's
    busy = early.take(second)
    assert busy is not None
    waited: list[str] = []
    writer = threading.Thread(target=lambda: (early.claim(second), waited.append("done")))
    writer.start()
    writer.join(0.2)
    assert writer.is_alive() and waited == []  # waits while ahead is on it
    early.release(second, busy)
    writer.join(5)
    assert waited == ["done"] and early.take(second) is None


def test_compressing_ahead_through_the_write_is_the_archive_without_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ahead`` started on a tree and left running into the write (as a pack does): the
    archive is byte for byte the one written with no store, every own-member file has one
    entry and is read for its key once (what ahead hashed, unchanged since, is not hashed
    again by the write), and the thread is done when the write is."""
    import time

    from packer.archive import writer
    from packer.archive.writer import LARGE, NATIVE, ahead, write_targz

    hashed: list[Path] = []
    real = writer._content_key
    monkeypatch.setattr(writer, "_content_key",
                        lambda path, *a: hashed.append(path) or real(path, *a))

    root = tmp_path / "tree"
    for n in range(12):
        folder = root / "lib" / f"p{n:02}"
        folder.mkdir(parents=True)
        (folder / "_m.so").write_bytes(os.urandom(NATIVE + n * 1000))
        (folder / "big.dat").write_bytes(os.urandom(LARGE + n))
    plain = write_targz(root, tmp_path / "plain.tar.gz", 4, 2)[0]
    store = tmp_path / "store"
    time.sleep(0.2)  # the files' times settled: they vouch for the bytes read
    early = ahead(root, 4, store)
    try:
        assert write_targz(root, tmp_path / "out.tar.gz", 4, 2, store=store,
                           early=early)[0] == plain
    finally:
        early.halt()
    assert len([p for p in store.glob("*/*") if not p.name.endswith(".sig")]) == 24
    assert not list(store.rglob("*.tmp"))
    assert len(hashed) == len(set(hashed)) == 24


def test_two_copies_of_one_library_are_not_reused_from_an_empty_store(tmp_path: Path) -> None:
    """Two wheels may vendor the same library (numpy's and scipy's ``.libs``): the second
    copy's members come from the entry the first one's wrote in this very pack. The reuse
    report said "reused" for it on an empty store once that entry was in place before the
    second copy's turn (here: 30 MB of other files between them); a second pack
    reuses both."""
    from packer.archive.writer import write_targz
    from packer.core import reused

    root = tmp_path / "env"
    data = os.urandom(3 << 20)
    for folder in ("numpy.libs", "scipy.libs"):
        (root / folder).mkdir(parents=True)
        (root / folder / "libgfortran.so.5").write_bytes(data)
    for i in range(150):  # written between the two copies: the first one's entry is kept
        (root / "numpy.libs" / f"z{i:02}.txt").write_bytes(os.urandom(200_000))
    store = tmp_path / "store"
    counts = []
    for n in range(2):
        with reused.counting() as counted:
            write_targz(root, tmp_path / f"{n}.tar.gz", 4, 2, store=store)
        counts.append(counted.frozen())
    assert (counts[0].members_reused, counts[0].members_compressed) == (0, 2)
    assert counts[0].members_compressed_bytes == 2 * len(data)
    assert (counts[1].members_reused, counts[1].members_compressed) == (2, 0)


def test_entries_written_ahead_count_as_this_packs_when_the_write_finds_them(
        tmp_path: Path) -> None:
    """A file ahead compressed whose times are too fresh to vouch for its bytes is hashed
    again by the write, which finds the entry ahead wrote: this pack compressed it (the
    thread runs in the pack's context, where its entries are counted as made), not reused;
    a second pack reuses it."""
    import time

    from packer.archive.writer import NATIVE, ahead, write_targz
    from packer.core import reused

    root = tmp_path / "tree"
    (root / "lib").mkdir(parents=True)
    store = tmp_path / "store"
    counts = []
    for n in range(2):
        (root / "lib" / "_m.so").write_bytes(b"\1" * NATIVE)  # written now: not settled
        with reused.counting() as counted:
            early = ahead(root, 4, store)
            deadline = time.monotonic() + 30
            while not list(store.glob("*/*.sig")) and time.monotonic() < deadline:
                time.sleep(0.01)  # its entry is kept before the write reaches the file
            try:
                write_targz(root, tmp_path / f"{n}.tar.gz", 4, 2, store=store, early=early)
            finally:
                early.halt()
        counts.append(counted.frozen())
    assert (counts[0].members_reused, counts[0].members_compressed) == (0, 1)
    assert (counts[1].members_reused, counts[1].members_compressed) == (1, 0)
