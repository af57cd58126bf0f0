"""Canonical .pyc bytes: marshal's FLAG_REF depends on reference counts at write time, so the
same source could compile to files differing in one flag bit (seen 1 build in 10 with 3.10).
packer.pack.pyc keeps the flag only where a back-reference uses it; the code object is the same."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from packer.lock.pychannel import find_python
from packer.pack import pyc

SOURCE = '''
import os
NAMES = ("alpha", "beta", "alpha", "gamma")
FROZEN = frozenset({"x", "y", "z"})
def f(a, b=("alpha", 1.5, 2j, 10**30)):
    return [a, b, "alpha", "beta", {"k": (1, 2)}]
class C:
    def m(self):
        return lambda q: (q, "gamma", NAMES)
'''


@pytest.fixture(params=["3.10", "3.11", "3.12", "3.13"])
def python(request: pytest.FixtureRequest) -> tuple[Path, int]:
    install = find_python(request.param)  # the machine's CPythons (the tests' Python channel)
    return install.prefix / "bin" / f"python{request.param}", int(request.param.split(".")[1])


def _compile(exe: Path, tmp: Path) -> bytes:
    src = tmp / "mod.py"
    src.write_text(SOURCE, encoding="utf-8")
    out = tmp / "mod.pyc"
    subprocess.run([str(exe), "-c", "import py_compile, sys; py_compile.compile(sys.argv[1], "
                    "sys.argv[2], doraise=True, invalidation_mode="
                    "py_compile.PycInvalidationMode.UNCHECKED_HASH)", str(src), str(out)],
                   check=True, timeout=60)
    return out.read_bytes()


def _same_code(exe: Path, a: bytes, b: bytes, tmp: Path) -> bool:
    (tmp / "a.bin").write_bytes(a)
    (tmp / "b.bin").write_bytes(b)
    res = subprocess.run([str(exe), "-c", "import marshal, sys; a, b = (marshal.loads(open(p, 'rb')"
                          ".read()) for p in sys.argv[1:]); sys.exit(0 if a == b else 1)",
                          str(tmp / "a.bin"), str(tmp / "b.bin")], timeout=60, check=False)
    return res.returncode == 0


def test_canonical_keeps_the_code_and_is_stable(python: tuple[Path, int], tmp_path: Path) -> None:
    exe, minor = python
    raw = _compile(exe, tmp_path)
    body = raw[pyc.HEADER:]
    canon = pyc.canonical(body, minor)
    assert canon != body  # CPython flags objects that no reference uses
    assert pyc.canonical(canon, minor) == canon
    assert _same_code(exe, body, canon, tmp_path)
    # a build where one more object happened to be shared at write time: same canonical bytes
    walker = pyc._Walker(bytearray(canon), minor)
    walker.obj()
    flagged = set(walker.flagged)
    variant = bytearray(canon)
    spot = next(i for i in walker.starts if variant[i] in b"zZa" and i not in flagged)
    variant[spot] |= pyc.FLAG_REF  # as CPython writes it: later references shift by one
    new_index = sum(1 for at in walker.flagged if at < spot)
    for at, index in walker.refs:
        if index >= new_index:
            variant[at:at + 4] = (index + 1).to_bytes(4, "little")
    assert bytes(variant) != canon
    assert _same_code(exe, bytes(variant), canon, tmp_path)
    assert pyc.canonical(bytes(variant), minor) == canon


def test_a_stream_it_cannot_read_is_refused() -> None:
    with pytest.raises(pyc.PycError):
        pyc.canonical(b"\xe3" + b"\x00" * 24 + b"Q", 10)
