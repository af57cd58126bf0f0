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
