"""--strip: debug sections out of the ELF files of unsigned wheels, written as new files (the
installed file a tree entry is linked to keeps its bytes), RECORD rows rewritten; conda
packages' files and signed wheels left alone; no binutils: one sentence, exit PACK."""

from __future__ import annotations

import base64
import csv
import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from packer.core.errors import ExitCode, PackError
from packer.lock.lockfile import read_lock
from packer.pack import strip

from .conftest import run_cli

PY = f"{sys.version_info.major}.{sys.version_info.minor}"
C_SOURCE = "int answer(void) { return 42; }\n"


def elf_with_debug(dest: Path) -> Path:
    src = dest.with_suffix(".c")
    src.write_text(C_SOURCE)
    subprocess.run(["gcc", "-g", "-O0", "-shared", "-fPIC", "-o", dest, src], check=True)
    src.unlink()
    return dest


def wheel_dist(site: Path, name: str, signed: bool = False) -> Path:
    pkg = site / name
    pkg.mkdir(parents=True)
    lib = elf_with_debug(pkg / "_ext.so")
    (pkg / "__init__.py").write_text("")
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    rows = [[f"{name}/__init__.py", "sha256=x", "0"], [f"{name}/_ext.so", "sha256=y", "1"],
            [f"{name}-1.0.dist-info/RECORD", "", ""]]
    with (info / "RECORD").open("w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    if signed:
        (info / "RECORD.jws").write_text("{}")
    return lib


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("strip") is None,
                    reason="needs gcc and binutils to make and strip an ELF file")
def test_strip_takes_debug_sections_out_of_unsigned_wheels_only(tmp_path: Path) -> None:
    root = tmp_path / "env"
    site = root / "lib" / f"python{PY}" / "site-packages"
    lib = wheel_dist(site, "plain")
    installed = tmp_path / "installed.so"  # what the tree entry is a hard link of
    os.link(lib, installed)
    original = installed.read_bytes()
    signed = wheel_dist(site, "signed", signed=True)
    conda_lib = elf_with_debug(root / "lib" / "libconda.so")  # a conda package's: no RECORD
    assert strip.debug_bytes(lib) > 0 and strip.debug_bytes(site / "plain" / "__init__.py") == 0

    report = strip.strip_tree(root, PY)

    assert report.files == (f"lib/python{PY}/site-packages/plain/_ext.so",)
    assert report.signed == ("signed-1.0.dist-info",) and report.saved > 0
    assert strip.debug_bytes(lib) == 0 and ctypes.CDLL(str(lib)).answer() == 42  # still loads
    assert installed.read_bytes() == original and not os.path.samefile(lib, installed)
    assert strip.debug_bytes(signed) > 0 and strip.debug_bytes(conda_lib) > 0
    rows = {r[0]: r for r in csv.reader(
        (site / "plain-1.0.dist-info" / "RECORD").read_text().splitlines())}
    digest = base64.urlsafe_b64encode(hashlib.sha256(lib.read_bytes()).digest()).rstrip(b"=")
    assert rows["plain/_ext.so"] == ["plain/_ext.so", f"sha256={digest.decode()}",
                                     str(lib.stat().st_size)]
    assert rows["plain/__init__.py"] == ["plain/__init__.py", "sha256=x", "0"]  # untouched
    assert strip.strip_tree(root, PY).files == ()  # nothing left to strip


def test_no_binutils_is_one_sentence_and_exit_pack(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PackError) as info:
        strip.tool()
    assert str(info.value) == "--strip needs binutils' strip on PATH, and none is installed"
    assert info.value.exit_code == ExitCode.PACK


def test_not_elf_or_a_truncated_header_has_no_debug_sections(tmp_path: Path) -> None:
    for i, data in enumerate([b"", b"\x7fELF", b"\x7fELF\x02\x01" + b"\xff" * 58, b"#!/bin/sh"]):
        (tmp_path / f"f{i}").write_bytes(data)
        assert strip.debug_bytes(tmp_path / f"f{i}") == 0


@pytest.mark.slow
def test_strip_is_remembered_by_the_lock_and_said_in_the_sbom(model_copy: object) -> None:
    model = model_copy("plain_numpy")  # type: ignore[operator]
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--strip", "--sbom")
    assert res.exit_code == 0, res.stderr
    assert "--strip: debug sections out of" in res.stderr
    lock = read_lock(model / "tritonpack.lock")
    assert lock.inputs["pack_options"] == {"strip": True}
    sbom = json.loads((model / "tritonpack-env.cdx.json").read_text())
    assert [p["name"] for p in sbom["metadata"]["properties"]] == [
        "tritonpack:triton", "tritonpack:lock", "tritonpack:strip"]
    again = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--frozen")  # the lock's choice
    assert again.exit_code == 0, again.stderr
    assert read_lock(model / "tritonpack.lock").content_hash == lock.content_hash
