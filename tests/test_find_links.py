"""A --find-links location a lock remembers is named when it cannot be used (uv would say
only "No such file or directory"), before any resolver runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from packer.core.errors import ResolveError
from packer.lock.backend import Indexes
from packer.lock.pypi import check_find_links


def _said(link: str) -> str:
    with pytest.raises(ResolveError) as caught:
        check_find_links(Indexes(find_links=(link,)))
    assert caught.value.hint == "give a directory of wheels or a URL"
    return str(caught.value)


def test_a_find_links_path_that_is_a_file_now_is_said_so(tmp_path: Path) -> None:
    (tmp_path / "wheels").write_text("")
    assert _said(str(tmp_path / "wheels")) == f"--find-links {tmp_path}/wheels: not a directory"
    assert _said(f"file://{tmp_path}/gone") == \
        f"--find-links file://{tmp_path}/gone: no such directory"


def test_a_relative_find_links_says_where_it_was_looked_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock made with --find-links wheels in another directory remembers 'wheels': run from
    here, it is looked for here, and the message says so."""
    monkeypatch.chdir(tmp_path)
    assert _said("wheels") == (
        f"--find-links wheels: no such directory (looked for from the current directory, "
        f"{tmp_path})")
    (tmp_path / "wheels").mkdir()
    check_find_links(Indexes(find_links=("wheels", "https://example.com/wheels/")))


def test_a_find_links_wheel_passed_over_for_a_newer_version_is_said(tmp_path: Path) -> None:
    """The newest version wins wherever it is: a --find-links directory's wheel of another
    version than the one taken (a CPU torch against PyPI's newer CUDA build: gigabytes) is
    said, with the pin that takes it; a distribution taken from the directory, or one it
    does not hold, says nothing."""
    from packer.lock.pypi import Pin, passed_over

    from .wheels import make_wheel

    wheels = tmp_path / "wheels"
    make_wheel(wheels, "tp_local", {"tp_local/__init__.py": ""}, version="1.0")
    make_wheel(wheels, "tp_local", {"tp_local/__init__.py": ""}, version="1.1")
    make_wheel(wheels, "tp_taken", {"tp_taken/__init__.py": ""}, version="2.0")
    (wheels / "not-a-wheel-name.whl").write_text("")
    indexes = Indexes(find_links=(str(tmp_path / "gone"), f"file://{wheels}"))
    pins = (Pin("tp-local", "3.0"), Pin("tp_taken", "2.0"), Pin("other", "1.0"))
    assert passed_over(pins, indexes) == [
        "tp-local 3.0 comes from an index, not from the 1.0, 1.1 wheel in --find-links (the "
        "newest version wins wherever it is): pin tp-local==1.1 to take the directory's"]


@pytest.mark.slow
def test_lock_says_when_an_index_wins_over_the_find_links_wheel(tmp_path: Path) -> None:
    """A real lock: attrs 1.0 in the directory, PyPI's newest taken; the note is printed."""
    import shutil

    from .conftest import MODELS, run_cli
    from .wheels import make_wheel

    wheels = tmp_path / "wheels"
    make_wheel(wheels, "attrs", {"attr/__init__.py": ""}, version="1.0")
    model = shutil.copytree(MODELS / "plain_numpy", tmp_path / "plain_numpy")
    (model / "requirements.txt").write_text("attrs\n")
    res = run_cli("lock", model, "--triton", "24.10", "--find-links", wheels)
    assert res.exit_code == 0, res.stderr
    assert "not from the 1.0 wheel in --find-links (the newest version wins wherever it is): " \
           "pin attrs==1.0 to take the directory's" in res.stderr + res.stdout
