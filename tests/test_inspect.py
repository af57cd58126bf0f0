"""tritonpack inspect: every archive is checked before it ships; hostile archives never
crash it and are always refused."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import sysconfig
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packer.core.errors import ExitCode
from packer.envcheck.elf import ElfError, file_version_needs, version_needs
from packer.envcheck.inspect import inspect_env
from packer.resolve.recipebook import load
from packer.resolve.target import resolve_target

from .conftest import FIXTURES, error_line, run_cli

Copy = Callable[..., Path]
TARGET = resolve_target(load(), "24.10")
OLD_IMAGE = FIXTURES / "recipes_old_image"


def good_members(python: str = "3.10") -> list[tarfile.TarInfo]:
    names = ["bin/python3", "bin/activate", f"lib/libpython{python}.so.1.0",
             f"lib/python{python}/site-packages/numpy/__init__.py",
             f"lib/python{python}/site-packages/numpy-1.26.4.dist-info/METADATA"]
    return [tarfile.TarInfo(n) for n in names]


def write_tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for m in members:
            if m.type == tarfile.REGTYPE:
                m.size = 3
                tar.addfile(m, io.BytesIO(b"abc"))
            else:
                tar.addfile(m)
    return path


def test_a_minimal_good_layout_passes(tmp_path: Path) -> None:
    report = inspect_env(write_tar(tmp_path / "env.tar.gz", good_members()), TARGET)
    assert report.ok, report.findings
    assert (report.python, report.numpy) == ("3.10", "1.26.4")


def special(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


HOSTILE = {
    "traversal": (tarfile.TarInfo("../../etc/cron.d/x"), "unsafe entry: path with '..': "
                                                         "../../etc/cron.d/x"),
    "absolute": (tarfile.TarInfo("/etc/passwd"), "unsafe entry: absolute path /etc/passwd"),
    "symlink": (special("lib/evil", tarfile.SYMTYPE, "../../../etc"),
                "unsafe entry: symlink lib/evil -> ../../../etc leaves the environment"),
    "hardlink": (special("lib/hl", tarfile.LNKTYPE, "/etc/shadow"),
                 "unsafe entry: hard link lib/hl -> /etc/shadow leaves the environment"),
    "device": (special("dev/sda", tarfile.BLKTYPE), "unsafe entry: device entry dev/sda"),
    # tarfile reads a directory named "/" back as "": it is still the absolute root
    "root": (special("/", tarfile.DIRTYPE), "unsafe entry: absolute path /"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_entries_are_refused(tmp_path: Path, case: str) -> None:
    member, message = HOSTILE[case]
    archive = write_tar(tmp_path / "env.tar.gz", [*good_members(), member])
    res = run_cli("inspect", archive, "--triton", "24.10")
    assert res.exit_code == 1
    assert f"  error    {message} (Triton 26.06+ refuses it)" in res.stdout


def test_not_gzip_and_truncated(tmp_path: Path) -> None:
    plain = tmp_path / "env.tar"
    with tarfile.open(plain, "w") as tar:
        tar.addfile(tarfile.TarInfo("bin/python3"))
    report = inspect_env(plain, TARGET)
    assert report.errors() == ["env.tar is not gzip'd: Triton reads gzip'd tar archives only"]
    good = write_tar(tmp_path / "env.tar.gz", good_members())
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[:60])
    assert any("truncated or corrupted" in e for e in inspect_env(cut, TARGET).errors())


REAL_ELFS = [Path(sys.executable).resolve(),
             *sorted(Path(sysconfig.get_config_var("LIBDIR") or "/").glob("libpython3*.so*"))]


@pytest.mark.parametrize("elf", REAL_ELFS, ids=lambda p: p.name)
def test_mapped_elf_reads_the_same_needs_as_the_whole_file(elf: Path) -> None:
    whole = version_needs(elf.read_bytes())
    assert any(v.startswith("GLIBC_2.") for v in whole), whole
    assert file_version_needs(elf) == whole


def test_not_an_elf_needs_nothing_but_a_broken_elf_is_an_error(tmp_path: Path) -> None:
    """A file with the ELF magic that does not parse would not load: it fails, it does not
    pass as 'needs nothing'."""
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "text").write_bytes(b"#!/bin/sh\n")
    assert [file_version_needs(tmp_path / n) for n in ("empty", "text")] == [set()] * 2
    (tmp_path / "magic").write_bytes(b"\x7fELF")
    (tmp_path / "cut").write_bytes(REAL_ELFS[0].read_bytes()[:200])
    for name, why in (("magic", "shorter than an ELF header"),
                      ("cut", "the section table lies beyond the end of the file")):
        with pytest.raises(ElfError, match=why):
            file_version_needs(tmp_path / name)


def elf_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def test_an_archive_member_that_is_not_elf_fails_the_check(tmp_path: Path) -> None:
    path = tmp_path / "env.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for m in good_members():
            m.size = 3
            tar.addfile(m, io.BytesIO(b"abc"))
        info, data = elf_member("lib/libbroken.so", b"\x7fELF" + b"\0" * 200)
        tar.addfile(info, io.BytesIO(data))
    report = inspect_env(path, TARGET)
    assert report.errors() == ["cannot read ELF file lib/libbroken.so: unknown ELF class 0"]


def test_a_compressed_elf_bomb_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """A 200 MB member of an ELF header and zeros (a few hundred KB gzip'd) used to be read
    whole into memory; it is streamed, spooled to disk, and fails as not parseable."""
    import resource

    path = tmp_path / "bomb.tar.gz"
    size = 200 << 20
    header = bytearray(REAL_ELFS[0].read_bytes()[:64])
    header[0x28:0x30] = (size - 64).to_bytes(8, "little")  # a section table at the end
    header[0x3C:0x3E] = (4).to_bytes(2, "little")
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("lib/libbomb.so")
        info.size = size
        zeros = io.BytesIO(bytes(header) + b"\0" * (size - 64))
        tar.addfile(info, zeros)
    assert path.stat().st_size < 2 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = inspect_env(path, TARGET)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 64, grown_mb
    assert "cannot read ELF file lib/libbomb.so: " in "\n".join(report.errors())



def shifted(elf: bytes, pad: int) -> bytes:
    """A 64-bit ``elf`` with ``pad`` zero bytes inserted after its ELF header: the section
    table and every section move to the end (as patchelf moves a string table there), their
    offsets with them."""
    out = bytearray(elf)
    shoff = int.from_bytes(elf[0x28:0x30], "little")
    shentsize = int.from_bytes(elf[0x3A:0x3C], "little")
    for i in range(int.from_bytes(elf[0x3C:0x3E], "little")):
        at = shoff + i * shentsize + 0x18  # sh_offset
        offset = int.from_bytes(elf[at:at + 8], "little")
        if offset >= 64:
            out[at:at + 8] = (offset + pad).to_bytes(8, "little")
    out[0x28:0x30] = (shoff + pad).to_bytes(8, "little")
    return bytes(out[:64]) + bytes(pad) + bytes(out[64:])


def large_elfs(window: int) -> dict[str, bytes]:
    """A real ELF made larger than two windows: its tables in the first, in the last, in
    neither."""
    elf = REAL_ELFS[0].read_bytes()
    return {"first": elf + bytes(4 * window), "last": shifted(elf, 4 * window),
            "middle": shifted(elf, 4 * window) + bytes(4 * window)}


@pytest.mark.parametrize("where", ["first", "last", "middle"])
def test_a_large_member_is_read_from_its_ends_without_a_spool(
        where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A member larger than two windows keeps its first and last bytes only, never written to
    disk (writing 400 MB of libtorch_cpu.so to read 7 MB of it was most of a pull's check):
    the same needs as the whole file. Tables in its middle are read from the member once
    more (``again``), spooled; without ``again`` that is an error, never a silent 'needs
    nothing'."""
    import io as _io

    from packer.envcheck import elf as elfmod

    window = 1 << 16
    monkeypatch.setattr(elfmod, "WINDOW", window)
    spools: list[int] = []
    spool = elfmod.tempfile.TemporaryFile

    def counted() -> object:
        spools.append(1)
        return spool()

    monkeypatch.setattr(elfmod.tempfile, "TemporaryFile", counted)
    data = large_elfs(window)[where]
    whole = version_needs(data)
    assert any(v.startswith("GLIBC_2.") for v in whole)
    opened: list[int] = []

    def again() -> _io.BytesIO:
        opened.append(1)
        return _io.BytesIO(data)

    rest = _io.BytesIO(data[4:])
    assert elfmod.stream_version_needs(data[:4], rest, len(data), again) == whole
    assert (len(spools), len(opened)) == ((1, 1) if where == "middle" else (0, 0))
    if where == "middle":
        with pytest.raises(ElfError, match="version tables lie in the middle of the file"):
            elfmod.stream_version_needs(data[:4], _io.BytesIO(data[4:]), len(data))


def test_an_archive_reads_a_few_members_again_then_refuses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a member again seeks the gzip stream back (decompressing from its first
    byte): an archive gets REREADS of them; beyond, the file is an error (a crafted archive
    of many would take hours), and the ones read again report their needs."""
    from packer.envcheck import elf as elfmod
    from packer.envcheck import inspect as inspectmod

    window = 1 << 16
    monkeypatch.setattr(elfmod, "WINDOW", window)
    middle = large_elfs(window)["middle"]
    path = tmp_path / "env.tar.gz"
    count = inspectmod.REREADS + 1
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for m in good_members():
            m.size = 3
            tar.addfile(m, io.BytesIO(b"abc"))
        for i in range(count):
            info, data = elf_member(f"lib/libmid{i}.so", middle)
            tar.addfile(info, io.BytesIO(data))
    report = inspect_env(path, TARGET)
    assert report.errors() == [f"cannot read ELF file lib/libmid{count - 1}.so: more than "
                               f"{inspectmod.REREADS} large ELF files keep their version "
                               "tables in their middle: not read again"]
    assert report.glibc is not None and report.glibc.endswith("(lib/libmid0.so)")

def test_inspect_of_a_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "env.tar.gz"
    os.mkfifo(fifo)
    res = run_cli("inspect", fifo, "--triton", "24.10")
    assert (res.exit_code, error_line(res.stderr)) == (
        ExitCode.PACK, f"error: {fifo}: is a FIFO (named pipe), not an environment archive or "
                       "directory")


def test_a_directory_and_its_archive_report_the_same_glibc(tmp_path: Path) -> None:
    env = tmp_path / "env"
    for m in good_members():
        (env / m.name).parent.mkdir(parents=True, exist_ok=True)
        (env / m.name).write_bytes(b"abc")
    shutil.copyfile(REAL_ELFS[0], env / "bin" / "python3")
    archive = tmp_path / "env.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(env, arcname=".")
    as_dir, as_tar = inspect_env(env, TARGET), inspect_env(archive, TARGET)
    assert as_dir.glibc is not None and as_dir.glibc.endswith("(bin/python3)")
    assert (as_dir.glibc, as_dir.glibcxx) == (as_tar.glibc, as_tar.glibcxx)



def test_an_archive_is_read_once_front_to_back(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Each member is read from where the stream stands: a member read twice (its first bytes
    for the ELF magic, then again for a package's RECORD) seeks a gzip stream back, which
    decompresses it again from its first byte (seconds per RECORD in a pulled env). The
    RECORD is still read whole: the hook it owns is no finding."""
    import gzip

    rewinds: list[int] = []
    rewind = gzip._GzipReader._rewind  # type: ignore[attr-defined]

    def counted(self: object) -> None:
        rewinds.append(1)
        rewind(self)

    monkeypatch.setattr(gzip._GzipReader, "_rewind", counted)  # type: ignore[attr-defined]
    site = "lib/python3.10/site-packages/"
    record = b"hooked.pth,,\n" + b"".join(  # larger than the readers' buffers
        b"hooked/m%05d.py,,\n" % i for i in range(8000))
    archive = tmp_path / "env.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for m in good_members():
            m.size = 3
            tar.addfile(m, io.BytesIO(b"abc"))
        shutil.copyfile(REAL_ELFS[0], tmp_path / "python3")
        tar.add(tmp_path / "python3", arcname="lib/native.so")
        for name, data in ((site + "hooked-1.0.dist-info/RECORD", record),
                           (site + "hooked.pth", b"import os\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    report = inspect_env(archive, TARGET)
    assert report.ok, report.findings
    assert report.glibc is not None and report.glibc.endswith("(lib/native.so)")
    assert rewinds == []

names = st.one_of(
    st.sampled_from(["../x", "/abs", "a/../../b", "./ok", "lib/x", "bin/python3"]),
    st.text(alphabet="ab./", min_size=1, max_size=12),
)
kinds = st.sampled_from([tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE,
                         tarfile.CHRTYPE, tarfile.FIFOTYPE])


@given(st.lists(st.tuples(names, kinds, names), min_size=1, max_size=8),
       st.integers(min_value=0, max_value=4000))
@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzz_inspect_never_crashes_and_refuses_hostile(tmp_path: Path, entries: list[tuple[str, bytes, str]],
                                                        cut: int) -> None:
    members = []
    for name, kind, link in entries:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        members.append(info)
    path = tmp_path / "fuzz.tar.gz"
    write_tar(path, [*good_members(), *members])
    whole = path.read_bytes()
    cut = cut if cut < len(whole) else 0
    if cut:
        path.write_bytes(whole[:cut])
    report = inspect_env(path, TARGET)  # never raises
    hostile = any(n.startswith("/") or ".." in Path(n).parts or k in (tarfile.CHRTYPE,
                  tarfile.FIFOTYPE) for n, k, _ in entries)
    if hostile or cut:
        assert not report.ok


@pytest.mark.slow
def test_env_built_on_a_newer_os_is_flagged(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    res = run_cli(model, "--triton", "21.03", "--recipes", OLD_IMAGE, "--python-from", "auto")
    assert res.exit_code == ExitCode.PACK
    assert error_line(res.stderr).startswith("error: the environment would fail in Triton 21.03: ")
    assert "needs GLIBC_2.3" in error_line(res.stderr)
    assert "the Triton 21.03 image has GLIBC_2.31" in error_line(res.stderr)
    assert not (model / "tritonpack-env.tar.gz").exists()

    res = run_cli(model, "--triton", "21.03", "--recipes", OLD_IMAGE, "--python-from", "auto",
                  "--allow-incompatible")
    assert res.exit_code == 0, res.stderr
    assert "image has GLIBC_2.31" in res.stderr  # a warning now
    out = run_cli("inspect", model / "tritonpack-env.tar.gz", "--triton", "21.03", "--recipes",
                  OLD_IMAGE, "--json")
    assert out.exit_code == 1
    data = json.loads(out.stdout)
    assert not data["ok"] and data["glibc"].startswith("2.3")
    ok = run_cli("inspect", model / "tritonpack-env.tar.gz", "--triton", "24.10")
    assert ok.exit_code == 0, ok.stdout
