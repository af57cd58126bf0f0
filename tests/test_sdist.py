"""Packages published only as source: locked by their sdist, built once into a cached wheel.

``sdist_only`` imports langdetect (PyPI publishes an sdist and a py2-only wheel); ``sdist_cext``
requires a local sdist (in its own find-links dir) whose setup.py compiles a C extension.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.core.cache import cache_root
from packer.core.errors import ExitCode, LockError, ProcessError
from packer.lock.backend import Indexes, PipToolsBackend, UvBackend
from packer.lock.lockfile import Lockfile, read_lock, requirements_txt, write_lock
from packer.lock.pypi import Pin, _python3_wheel, offers
from packer.lock.sdist import needs

from .conftest import MODELS, error_line, run_cli, snapshot
from .wheels import make_wheel

Copy = Callable[..., Path]
LANGDETECT_SDIST = ("sha256:cbc1fef89f8d062739774bd51eda3da3274006b3661d199c2655f6b3f6d605a0")
LANGDETECT_URL = ("https://files.pythonhosted.org/packages/0e/72/a3add0e4eec4eb9e2569554f7c70f4a3"
                  "c27712f40e3284d483e88094cc0e/langdetect-1.0.9.tar.gz")


def _lock(pins: tuple[Pin, ...]) -> Lockfile:
    return Lockfile(inputs={"requirements": []}, target={"python": "3.10"}, resolver="uv",
                    conda=(), pypi=pins)


def test_a_lock_without_sdists_keeps_format_1(tmp_path: Path) -> None:
    """Existing locks stay valid and byte-identical: format 2 only once a pin needs it."""
    lock = _lock((Pin("numpy", "1.26.4", ("sha256:" + "1" * 64,)),))
    assert lock.version == 1 and "version = 1\n" in lock.render()
    assert "sdist" not in lock.render()


def test_a_pin_built_from_source_makes_format_2_and_reads_back(tmp_path: Path) -> None:
    pin = Pin("langdetect", "1.0.9", (LANGDETECT_SDIST,), LANGDETECT_URL)
    lock = _lock((pin,))
    path = tmp_path / "tritonpack.lock"
    write_lock(path, lock)
    text = path.read_text()
    assert "version = 2\n" in text
    assert f'sdist = "{LANGDETECT_URL}"' in text
    again = read_lock(path)
    assert again.pypi == (pin,) and again.version == 2
    assert requirements_txt(again.pypi) == (
        f"langdetect==1.0.9 \\\n    --hash={LANGDETECT_SDIST}\n")


def test_an_sdist_entry_in_a_format_1_lock_is_refused(tmp_path: Path) -> None:
    """A format-1 reader would ignore ``sdist`` and install the wrong thing: not readable."""
    path = tmp_path / "tritonpack.lock"
    write_lock(path, _lock((Pin("langdetect", "1.0.9", (LANGDETECT_SDIST,), LANGDETECT_URL),)))
    path.write_text(path.read_text().replace("version = 2\n", "version = 1\n"))
    with pytest.raises(LockError, match=r"corrupted: missing or malformed 'sdist' \(format 2"):
        read_lock(path)


@pytest.mark.parametrize(("name", "python3"), [
    ("langdetect-1.0.9-py2-none-any.whl", False),
    ("six-1.17.0-py2.py3-none-any.whl", True),
    ("numpy-1.26.4-cp310-cp310-manylinux_2_17_x86_64.whl", True),
    ("langdetect-1.0.9.tar.gz", False),
])
def test_a_py2_only_wheel_is_no_wheel(name: str, python3: bool) -> None:
    assert _python3_wheel(name) is python3


def test_what_a_find_links_dir_offers(tmp_path: Path) -> None:
    """A hyphenated legacy sdist name is its project's; a py2-only wheel offers nothing."""
    for name in ("my-pkg-1.0.tar.gz", "other-1.0-py3-none-any.whl", "old-1.0-py2-none-any.whl",
                 "old-1.0.zip"):
        (tmp_path / name).write_bytes(b"")
    indexes = Indexes((tmp_path / "no-index").as_uri(), (), (str(tmp_path),))
    assert offers("my-pkg", indexes) == (False, True)
    assert offers("other", indexes) == (True, False)
    assert offers("old", indexes) == (False, True)
    assert offers("absent", indexes) == (False, False)


@pytest.mark.parametrize(("output", "needed"), [
    ("error: command 'tritonpack-no-compiler' failed: No such file or directory",
     "a C compiler (it compiles a C extension)"),
    ("src/x.c:1:10: fatal error: libxml/parser.h: No such file or directory",
     "a C compiler and the system header libxml/parser.h"),
    ("/usr/bin/ld: cannot find -lssl: No such file or directory",
     "a C compiler and the system library libssl"),
    ("error: can't find Rust compiler", "a Rust compiler"),
    ("ModuleNotFoundError: No module named 'foo'", None),
])
def test_what_a_failed_build_needed(output: str, needed: str | None) -> None:
    assert needs(output) == needed


@pytest.mark.parametrize("backend", [UvBackend(), PipToolsBackend()], ids=lambda b: b.name)
def test_both_backends_install_hashed_wheels(tmp_path: Path, backend: UvBackend) -> None:
    """One interface: each backend installs a hashed requirements file, and refuses a hash
    that does not match."""
    wheel = make_wheel(tmp_path / "links", "tpbackendprobe", {"tpbackendprobe.py": "X = 1\n"})
    sha = "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "uv", "venv", "--quiet", "--no-config", "--python",
                    sys.executable, venv], check=True)
    python = venv / "bin" / "python"
    index = tmp_path / "simple"
    index.mkdir()
    indexes = Indexes(index.as_uri(), (), (str(tmp_path / "links"),))
    req = tmp_path / "requirements.txt"
    req.write_text(requirements_txt((Pin("tpbackendprobe", "1.0", ("sha256:" + "0" * 64,)),)))
    with pytest.raises(ProcessError) as failed:
        backend.install(req, python, indexes)
    assert "hash" in failed.value.output.lower()
    req.write_text(requirements_txt((Pin("tpbackendprobe", "1.0", (sha,)),)))
    backend.install(req, python, indexes)
    out = subprocess.run([python, "-c", "import tpbackendprobe; print(tpbackendprobe.X)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout == "1\n"


# --- for real: PyPI's langdetect, a local C-extension sdist --------------------------------


def _entries() -> dict[str, dict[str, str]]:
    root = cache_root() / "sdist-wheels"
    return {p.parent.parent.name: json.loads(p.read_text())
            for p in root.glob("*/python*/entry.json")}


@pytest.mark.slow
@pytest.mark.parametrize("resolver", ["uv", "pip-tools"])
def test_lock_builds_an_sdist_only_package_once(model_copy: Copy, resolver: str) -> None:
    """Both resolvers: uv says wheels are required, pip finds no version (``offers`` then
    sees an sdist and no Python 3 wheel); the lock-only path, no pack."""
    model = model_copy("sdist_only")
    res = run_cli("lock", model, "--triton", "24.10", "--offline", "--resolver", resolver)
    assert res.exit_code == 0, res.stderr
    assert f"note  langdetect==1.0.9 has no wheel: built from source ({LANGDETECT_URL})" \
        in res.stderr
    assert "langdetect==1.0.9 (built from source)" in res.stdout
    lock = read_lock(model / "tritonpack.lock")
    assert lock.version == 2
    pin = next(p for p in lock.pypi if p.name == "langdetect")
    assert (pin.version, pin.hashes, pin.sdist) == ("1.0.9", (LANGDETECT_SDIST,), LANGDETECT_URL)
    assert {p.name for p in lock.pypi} >= {"six", "numpy"}  # its dependency: a wheel
    assert all(not p.sdist for p in lock.pypi if p.name != "langdetect")
    entry = _entries()[LANGDETECT_SDIST.removeprefix("sha256:")]
    wheel = cache_root() / "sdist-wheels" / entry["sdist_sha256"][7:] / "python3.10" / \
        entry["wheel"]
    assert entry["wheel"] == "langdetect-1.0.9-py3-none-any.whl"
    assert entry["wheel_sha256"] == "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest()

    first = (model / "tritonpack.lock").read_bytes()
    (model / "tritonpack.lock").unlink()
    res = run_cli("lock", model, "--triton", "24.10", "--offline", "--resolver", resolver, "-q")
    assert res.exit_code == 0, res.stderr
    assert (model / "tritonpack.lock").read_bytes() == first  # byte-identical on a re-run


@pytest.mark.slow
def test_pack_installs_the_built_wheel_and_the_model_imports_it(model_copy: Copy,
                                                               tmp_path: Path) -> None:
    """The archive holds langdetect, importable in Triton 24.10 (verify's probe imports it);
    a cached wheel whose bytes changed is not used: it is rebuilt from the hash-checked sdist,
    and the archive is byte-identical."""
    model = model_copy("sdist_only")
    res = run_cli(model, "--triton", "24.10", "--offline", "--verify", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["verify"]["passed"]
    assert out["verify"]["probe"]["imports"]["langdetect"] == "ok"
    archive = model / "tritonpack-env.tar.gz"
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()

    entry_dir = cache_root() / "sdist-wheels" / LANGDETECT_SDIST[7:] / "python3.10"
    wheel = entry_dir / "langdetect-1.0.9-py3-none-any.whl"
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    archive.unlink()
    res = run_cli(model, "--triton", "24.10", "--offline", "--frozen", "--no-cache", "-q")
    assert res.exit_code == 0, res.stderr
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == digest
    entry = json.loads((entry_dir / "entry.json").read_text())
    assert entry["wheel_sha256"] == "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_locked_sdist_whose_bytes_changed_is_refused(model_copy: Copy) -> None:
    """The sdist's hash is checked before anything of it runs (here: a lock re-signed with
    another hash, and no cached wheel for it)."""
    model = model_copy("sdist_only")
    assert run_cli("lock", model, "--triton", "24.10", "--offline", "-q").exit_code == 0
    lock = read_lock(model / "tritonpack.lock")
    bad = "sha256:" + "0" * 64
    write_lock(model / "tritonpack.lock", Lockfile(
        inputs=lock.inputs, target=lock.target, resolver=lock.resolver, conda=lock.conda,
        pypi=tuple(Pin(p.name, p.version, (bad,), p.sdist) if p.sdist else p
                   for p in lock.pypi)))
    res = run_cli(model, "--offline", "--frozen", "--no-cache")
    assert res.exit_code == ExitCode.BUILD
    assert error_line(res.stderr) == (
        f"error: hash mismatch for the sdist of langdetect==1.0.9: locked {bad}, got "
        f"{LANGDETECT_SDIST}")


@pytest.mark.slow
def test_an_sdist_that_compiles_c_is_refused_naming_what_it_needs(tmp_path: Path) -> None:
    model = tmp_path / "sdist_cext"
    shutil.copytree(MODELS / "sdist_cext", model)
    before = snapshot(model)
    res = run_cli("lock", model, "--triton", "24.10", "--offline")
    assert res.exit_code == ExitCode.BUILD == 8
    assert error_line(res.stderr) == (
        "error: tritonpack-cext-probe==1.0 is published only as source and its build needs a C "
        "compiler (it compiles a C extension), which tritonpack's isolated pure-Python build "
        "does not provide")
    assert snapshot(model) == before  # no lock written
