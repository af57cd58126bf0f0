"""Why Triton could not unpack an environment archive: most often, a full disk.

The Python backend unpacks ``EXECUTION_ENV_PATH`` archives into /tmp with libarchive, whose
complaint on a full disk is only "Write failed"; by the time verify reads the log the partial
copy is gone and /tmp has room again. So the sentence compares what the archive holds with what
/tmp has free, counting the archive's members only until they exceed it.
"""

from __future__ import annotations

import re
import tarfile
import zlib
from pathlib import Path

from ..archive.inflate import read_targz

_UNPACK = re.compile(r"(?P<call>archive_\w+\(\)) failed with error code = -?\d+, error message "
                     r"is (?P<why>[^\"\\\n]*)|(?P<mkdir>Failed to create (?:temporary|"
                     r"environment) directory)")
_MB = 1 << 20


def unpacked_exceeds(archive: Path, free: int) -> int | None:
    """The archive's unpacked size once it exceeds ``free`` (the count stops there), or None
    when it fits (or cannot be read: then nothing is claimed)."""
    total = 0
    try:
        with read_targz(archive) as tar:
            for member in tar:
                total += member.size
                if total > free:
                    return total
    except (OSError, tarfile.TarError, EOFError, zlib.error):
        return None
    return None


def unpack_failure(log: str, archive: Path | None, free: int, where: str) -> str:
    """One sentence when ``log`` says the environment could not be unpacked, else ""."""
    m = _UNPACK.search(log)
    if not m:
        return ""
    said = m.group("mkdir") or f"{m.group('call')}: {m.group('why').strip()}"
    if archive is None or not archive.is_file():
        return f"Triton could not unpack the environment into {where} ({said})"
    if unpacked_exceeds(archive, free) is not None:
        return (f"Triton could not unpack the environment into {where}: the disk is full "
                f"({archive.name} unpacks to more than the {free // _MB} MB free there)")
    return (f"Triton could not unpack the environment into {where} ({said}) though it has room "
            f"({free // _MB} MB free): check that {where} is writable")
