"""Symlink chains: every path of an archive is resolved through every link defined before it
(and through the finished tree), in inspect, verify, check and pack. Each hostile archive
here passed `tritonpack inspect` when links were judged one at a time."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from packer.archive.writer import check_tree
from packer.archive.writer import entries as _entries
from packer.core.errors import PackError
from packer.envcheck.inspect import inspect_env

from .conftest import run_cli
from .test_inspect import TARGET, good_members, special, write_tar


def chain(n: int) -> list[tarfile.TarInfo]:
    """``n`` links, each harmless on its own, ending in one that climbs out, and a file
    written through it: lib/l1 -> .. (the root), lib/lK -> l(K-1), lib/esc -> lN/.."""
    members = [special("lib/l1", tarfile.SYMTYPE, "..")]
    members += [special(f"lib/l{k}", tarfile.SYMTYPE, f"l{k - 1}") for k in range(2, n + 1)]
    members.append(special("lib/esc", tarfile.SYMTYPE, f"l{n}/.."))
    return members


@pytest.mark.parametrize("n", range(1, 11))
def test_a_chain_of_links_that_climbs_out_is_refused(tmp_path: Path, n: int) -> None:
    archive = write_tar(tmp_path / "env.tar.gz", [*good_members(), *chain(n)])
    report = inspect_env(archive, TARGET)
    assert f"unsafe entry: symlink lib/esc -> l{n}/.. leaves the environment (Triton 26.06+ " \
           "refuses it)" in report.errors()


def test_a_file_written_through_an_escaping_chain_is_refused_by_the_cli(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "env.tar.gz",
                        [*good_members(), *chain(2), tarfile.TarInfo("lib/esc/x")])
    res = run_cli("inspect", archive, "--triton", "24.10")
    assert res.exit_code == 1
    assert ("  error    unsafe entry: lib/esc/x is written through a symlink that leaves the "
            "environment (Triton 26.06+ refuses it)") in res.stdout


def test_a_link_retargeted_by_a_later_entry_is_judged_in_the_finished_tree(tmp_path: Path) -> None:
    # d/p -> q/../.. is the root while q does not exist; once d/q -> ../e it climbs out
    members = [tarfile.TarInfo("e/f"), special("d/p", tarfile.SYMTYPE, "q/../.."),
               special("d/q", tarfile.SYMTYPE, "../e")]
    report = inspect_env(write_tar(tmp_path / "env.tar.gz", [*good_members(), *members]), TARGET)
    assert ("unsafe entry: symlink d/p -> q/../.. leaves the environment (Triton 26.06+ refuses "
            "it)") in report.errors()


def test_a_directory_replaced_by_a_link_is_not_written_through(tmp_path: Path) -> None:
    members = [special("lib/d", tarfile.DIRTYPE), special("lib/d", tarfile.SYMTYPE, ".."),
               tarfile.TarInfo("lib/d/x")]
    report = inspect_env(write_tar(tmp_path / "env.tar.gz", [*good_members(), *members]), TARGET)
    assert report.errors() == ["unsafe entry: lib/d/x is written through a symlink (lib/d) "
                               "(Triton 26.06+ refuses it)"]


def test_a_hard_link_through_a_symlink_or_to_nothing_is_refused(tmp_path: Path) -> None:
    members = [special("lib/up", tarfile.SYMTYPE, ".."),
               special("lib/h", tarfile.LNKTYPE, "lib/up/bin/python3"),
               special("lib/g", tarfile.LNKTYPE, "lib/nothing")]
    report = inspect_env(write_tar(tmp_path / "env.tar.gz", [*good_members(), *members]), TARGET)
    assert report.errors() == [
        "unsafe entry: hard link lib/h -> lib/up/bin/python3 passes through a symlink "
        "(Triton 26.06+ refuses it)",
        "unsafe entry: hard link lib/g -> lib/nothing names no file earlier in the archive "
        "(Triton 26.06+ refuses it)"]


def test_a_link_loop_is_refused(tmp_path: Path) -> None:
    members = [special("a", tarfile.SYMTYPE, "b"), special("b", tarfile.SYMTYPE, "a/x")]
    report = inspect_env(write_tar(tmp_path / "env.tar.gz", [*good_members(), *members]), TARGET)
    assert not report.ok


def test_links_to_links_inside_the_env_pass(tmp_path: Path) -> None:
    members = [tarfile.TarInfo("lib/libz.so.1.3"), special("lib/libz.so.1", tarfile.SYMTYPE,
                                                           "libz.so.1.3"),
               special("lib/libz.so", tarfile.SYMTYPE, "libz.so.1"),
               special("bin/lib", tarfile.SYMTYPE, "../lib"),
               special("bin/z", tarfile.SYMTYPE, "lib/libz.so"),
               special("lib/z2", tarfile.LNKTYPE, "lib/libz.so.1.3")]
    report = inspect_env(write_tar(tmp_path / "env.tar.gz", [*good_members(), *members]), TARGET)
    assert report.ok, report.findings


def _tree(root: Path, n: int) -> None:
    (root / "lib").mkdir(parents=True)
    os.symlink("..", root / "lib" / "l1")
    for k in range(2, n + 1):
        os.symlink(f"l{k - 1}", root / "lib" / f"l{k}")
    os.symlink(f"l{n}/..", root / "lib" / "esc")


@pytest.mark.parametrize("n", [1, 5, 10])
def test_pack_refuses_a_tree_with_an_escaping_chain(tmp_path: Path, n: int) -> None:
    _tree(tmp_path / "env", n)
    with pytest.raises(PackError, match=rf"^unsafe entry: symlink to l{n}/\.\. leaves|"
                                        rf"^unsafe entry lib/esc: symlink to l{n}/\.\. leaves"):
        check_tree(tmp_path / "env", _entries(tmp_path / "env"))


def test_a_directory_env_is_judged_by_real_path(tmp_path: Path) -> None:
    _tree(tmp_path / "env", 3)
    report = inspect_env(tmp_path / "env", TARGET)
    assert ("unsafe entry: symlink lib/esc -> l3/.. leaves the environment (Triton 26.06+ "
            "refuses it)") in report.errors()


def test_verify_refuses_the_escaping_archive_before_any_server(tmp_path: Path) -> None:
    """The issue's attack: a real tritonserver extracted this archive and wrote lib/esc/x
    outside its extraction dir, while verify said the model loads and answers."""
    from packer.core.errors import ExitCode
    from packer.patch.config import env_value, patch_config

    from .conftest import copy_model, error_line

    model = copy_model("plain_numpy", tmp_path)
    members = [special("lib/up", tarfile.SYMTYPE, ".."), special("lib/esc", tarfile.SYMTYPE,
                                                                 "up/.."),
               tarfile.TarInfo("lib/esc/x")]
    write_tar(model / "tritonpack-env.tar.gz", [*good_members(), *members])
    patch_config(model / "config.pbtxt", env_value("tritonpack-env.tar.gz"))
    res = run_cli("verify", model, "--triton", "24.10")
    assert res.exit_code == ExitCode.VERIFY_LOAD
    assert error_line(res.stderr) == ("error: tritonpack-env.tar.gz: unsafe entry: symlink "
                                      "lib/esc -> up/.. leaves the environment (Triton 26.06+ "
                                      "refuses it)")
