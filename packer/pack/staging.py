"""What goes in: conda-pack stages the built prefix into a relocated directory.

conda-pack is the authority on what a relocatable environment holds (its file list, prefix
rewriting, activate scripts); how that directory is then written (tar, gzip, stamp) and
compiled is ``pack.py``'s and ``pyc.py``'s business, as conda-pack splits ``core`` from
``formats``.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

from conda_pack.core import CondaEnv, CondaPackException, Packer
from conda_pack.formats import NoArchive

from ..build.prefix import Prefix
from ..core.errors import PackError


class _LinkUnchanged(NoArchive):  # type: ignore[misc]  # conda-pack ships no type hints
    """conda-pack's ``no-archive`` writer, linking what conda-pack hands back unchanged."""

    def _add(self, source: str, target: str) -> None:
        """A hard link per file, else a copy. conda-pack 0.9 picks link-or-copy once, from
        its first file, then fails with EXDEV on its own activate scripts when tritonpack's
        install and $TMPDIR are on different file systems (a tmpfs /tmp: exit 70, seen)."""
        target_abspath = self._absolute_path(target)
        self._ensure_parent(target_abspath)
        if not (os.path.isfile(source) or os.path.islink(source)):
            os.mkdir(target_abspath)
            return
        try:
            os.link(source, target_abspath, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                raise
            shutil.copy2(source, target_abspath, follow_symlinks=False)

    def _add_bytes(self, source: str, sourcebytes: bytes, target: str) -> None:
        path = Path(source)
        st = path.lstat()
        if (stat.S_ISREG(st.st_mode) and st.st_size == len(sourcebytes)
                and path.read_bytes() == sourcebytes):
            self._add(source, target)  # a hard link on one device, else a copy
        else:
            super()._add_bytes(source, sourcebytes, target)


def stage(prefix: Prefix, work: Path) -> Path:
    """conda-pack the prefix into a relocated directory ``work/packed``.

    conda-pack's own file list, prefix handling and activate scripts, written by its
    ``Packer`` into a ``no-archive`` directory, with one change: a file conda-pack read and
    handed back unchanged (every pip-installed file: it reads them to look for the prefix)
    is hard-linked like its managed files, not copied (torch: 650 MB not written twice).
    """
    out = work / "packed"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    try:
        env = CondaEnv.from_prefix(str(prefix.path), on_missing_cache="ignore")
        env = env.exclude("CACHEDIR.TAG").exclude("conda-meta/history")
        packer = Packer(env.prefix, _LinkUnchanged(str(out), ""))
        for file in env.files:
            packer.add(file)
        packer.finish()
    except CondaPackException as exc:
        raise PackError(f"conda-pack refused the environment: {exc}", detail=str(exc)) from exc
    return out
