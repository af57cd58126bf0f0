"""Tiny real wheels made in a test: a package of a few files, installable by uv and pip."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(dest: Path, name: str, files: dict[str, str], requires: tuple[str, ...] = (),
               version: str = "1.0") -> Path:
    """A py3-none-any wheel of ``files`` (path -> text) in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    meta = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                    *(f"Requires-Dist: {r}\n" for r in requires)])
    entries = {**{p: t.encode() for p, t in files.items()},
               f"{info}/METADATA": meta.encode(),
               f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tritonpack-tests\n"
                                b"Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{p},{_digest(d)},{len(d)}\n" for p, d in entries.items())
    entries[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    wheel = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in entries.items():
            zf.writestr(zipfile.ZipInfo(path, (1980, 1, 1, 0, 0, 0)), data)
    return wheel


def make_sdist(dest: Path, name: str) -> Path:
    """``NAME-1.0.tar.gz`` in ``dest``: a pure-Python sdist (setuptools builds it) holding an
    empty package ``NAME``."""
    import io
    import tarfile

    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{name}-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, text in {
            "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
            "pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n'
                              'build-backend = "setuptools.build_meta"\n'
                              f'[project]\nname = "{name}"\nversion = "1.0"\n',
            f"{name}/__init__.py": "",
        }.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-1.0/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
