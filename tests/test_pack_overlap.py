"""Work a pack overlaps with what it does anyway: the environment's size for the summary,
walked while it packs."""

from __future__ import annotations

from pathlib import Path


def test_the_environments_size_walked_meanwhile_is_its_size(tmp_path: Path) -> None:
    """The pack's summary rate: the prefix's megabytes, walked on a thread while it packs."""
    from packer.pack.stage import du_mb, du_mb_meanwhile

    (tmp_path / "env" / "lib").mkdir(parents=True)
    (tmp_path / "env" / "lib" / "a.so").write_bytes(b"x" * 300_000)
    (tmp_path / "env" / "b.py").write_bytes(b"y" * 200_000)
    walked = du_mb_meanwhile(tmp_path / "env")
    assert walked() == du_mb(tmp_path / "env") == 0.5
    assert du_mb_meanwhile(tmp_path / "gone")() == 0.0  # nothing there: no size, no error
