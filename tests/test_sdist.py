"""Packages published only as source: locked by their sdist and its pinned build tools, built
once into a cached wheel.

``sdist_only`` imports langdetect (PyPI publishes an sdist and a py2-only wheel); ``sdist_cext``
requires a local sdist (in its own find-links dir) whose setup.py compiles a C extension;
``sdist_hostile`` one whose pyproject.toml declares ``requires`` as a string, ``sdist_traversal``
one with a member ``../x``, ``sdist_dynamic`` one whose setup.py asks for six at build time,
``sdist_native`` one whose setup.py writes an ELF file into its package (no compiler run),
``sdist_envprobe`` one whose setup.py records (and refuses) the environment it is built in.
tests/fixtures/bad_sdists/ holds small archives read without building them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.core import proc
from packer.core.cachehome import distrusted
from packer.core.errors import BuildError, ExitCode, LockError, ProcessError
from packer.lock import sdist as sdist_module
from packer.lock.backend import Indexes, PipToolsBackend, UvBackend, build_env
from packer.lock.lockfile import Lockfile, read_lock, requirements_txt, write_lock
from packer.lock.pypi import Pin, _python3_wheel, offers, pin_sdist
from packer.lock.sdist import (
    LEGACY_BUILD_REQUIRES,
    Sdist,
    _entry_dir,
    cached_wheel,
    declared_build_requires,
    fetch,
    find_sdist,
    native_member,
    needs,
)

from .conftest import FIXTURES, MODELS, error_line, run_cli, snapshot
from .wheels import make_wheel

Copy = Callable[..., Path]
LANGDETECT_SDIST = ("sha256:cbc1fef89f8d062739774bd51eda3da3274006b3661d199c2655f6b3f6d605a0")
LANGDETECT_URL = ("https://files.pythonhosted.org/packages/0e/72/a3add0e4eec4eb9e2569554f7c70f4a3"
                  "c27712f40e3284d483e88094cc0e/langdetect-1.0.9.tar.gz")
SETUPTOOLS = "setuptools==80.9.0 --hash=sha256:" + "a" * 64 + " --hash=sha256:" + "b" * 64
BAD_SDISTS = FIXTURES / "bad_sdists"


def _lock(pins: tuple[Pin, ...]) -> Lockfile:
    return Lockfile(inputs={"requirements": []}, target={"python": "3.10"}, resolver="uv",
                    conda=(), pypi=pins)


def test_a_lock_without_sdists_keeps_format_1(tmp_path: Path) -> None:
    """Existing locks stay valid and byte-identical: format 2 only once a pin needs it."""
    lock = _lock((Pin("numpy", "1.26.4", ("sha256:" + "1" * 64,)),))
    assert lock.version == 1 and "version = 1\n" in lock.render()
    assert "sdist" not in lock.render()


def test_a_pin_built_from_source_makes_format_2_and_reads_back(tmp_path: Path) -> None:
    """Format 2: the sdist's entry carries its pinned build requirements."""
    pin = Pin("langdetect", "1.0.9", (LANGDETECT_SDIST,), LANGDETECT_URL, (SETUPTOOLS,))
    lock = _lock((pin,))
    path = tmp_path / "tritonpack.lock"
    write_lock(path, lock)
    text = path.read_text()
    assert "version = 2\n" in text
    assert f'sdist = "{LANGDETECT_URL}"\nbuild_requires = [\n  "{SETUPTOOLS}",\n]\n' in text
    again = read_lock(path)
    assert again.pypi == (pin,) and again.version == 2
    assert requirements_txt(again.pypi) == (
        f"langdetect==1.0.9 \\\n    --hash={LANGDETECT_SDIST}\n")


def test_an_sdist_entry_in_a_format_1_lock_is_refused(tmp_path: Path) -> None:
    """A format-1 reader would ignore ``sdist`` and install the wrong thing: not readable."""
    path = tmp_path / "tritonpack.lock"
    write_lock(path, _lock((Pin("langdetect", "1.0.9", (LANGDETECT_SDIST,), LANGDETECT_URL),)))
    text = path.read_text()
    path.write_text(text.replace("version = 2\n", "version = 1\n").replace(
        "build_requires = []\n", ""))
    with pytest.raises(LockError, match=r"corrupted: missing or malformed 'sdist' \(format 2"):
        read_lock(path)


@pytest.mark.parametrize("edit", [
    'build_requires = [\n  "setuptools>=40.8.0",\n]',  # not pinned with a hash
    'build_requires = "setuptools==80.9.0"',  # not a list
    "",  # missing beside sdist
])
def test_a_malformed_build_requires_is_refused(tmp_path: Path, edit: str) -> None:
    """Read as written: the hash is recomputed over the edit, so only the shape can fail."""
    pin = Pin("langdetect", "1.0.9", (LANGDETECT_SDIST,), LANGDETECT_URL, (SETUPTOOLS,))
    path = tmp_path / "tritonpack.lock"
    write_lock(path, _lock((pin,)))
    text = path.read_text()
    text = text.replace(f'build_requires = [\n  "{SETUPTOOLS}",\n]', edit)
    path.write_text(text)
    with pytest.raises(LockError) as refused:
        read_lock(path)
    assert str(refused.value).startswith(
        f"{path}: corrupted: missing or malformed 'build_requires' (format 2, with 'sdist': "
        '"name==V --hash=sha256:H" lines)')


def test_build_requires_without_an_sdist_is_refused(tmp_path: Path) -> None:
    """Build tools pinned for a wheel nobody builds: a hand edit, not a lock tritonpack wrote."""
    path = tmp_path / "tritonpack.lock"
    write_lock(path, _lock((Pin("langdetect", "1.0.9", (LANGDETECT_SDIST,), LANGDETECT_URL,
                                (SETUPTOOLS,)),)))
    path.write_text(path.read_text().replace(f'sdist = "{LANGDETECT_URL}"\n', ""))
    with pytest.raises(LockError, match=r"corrupted: missing or malformed 'build_requires' "
                                        r"\(format 2, with 'sdist'"):
        read_lock(path)


# --- build requirements read from the archive, never run ---------------------------------


@pytest.mark.parametrize(("archive", "requires"), [
    ("legacy-1.0.tar.gz", LEGACY_BUILD_REQUIRES),  # no pyproject.toml: PEP 517's fallback
    ("no_build_system-1.0.tar.gz", LEGACY_BUILD_REQUIRES),  # pyproject.toml, no [build-system]
    ("declared-1.0.tar.gz", ("flit_core >=3.2,<4", "tomli; python_version < '3.11'")),
])
def test_declared_build_requirements(archive: str, requires: tuple[str, ...]) -> None:
    assert declared_build_requires(BAD_SDISTS / archive, "p", "1.0") == requires
    assert LEGACY_BUILD_REQUIRES == ("setuptools>=40.8.0",)  # what uv's frontend installs


_NOT_BUILT = ", so tritonpack does not build it"


@pytest.mark.parametrize(("archive", "problem"), [
    ("traversal-1.0.tar.gz", "holds a member outside its directory ('../x')" + _NOT_BUILT),
    ("absolute-1.0.tar.gz", "holds a member outside its directory ('/tmp/x')" + _NOT_BUILT),
    ("zip_traversal-1.0.zip",
     "holds a member outside its directory ('zip_traversal-1.0/../../x')" + _NOT_BUILT),
    ("link_out-1.0.tar.gz", "holds a link outside its directory ('link_out-1.0/setup.cfg' -> "
                            "'../../etc/passwd')" + _NOT_BUILT),
    ("huge_member-1.0.tar.gz", "unpacks to more than 512 MiB" + _NOT_BUILT),
    ("huge_pyproject-1.0.tar.gz", "has a pyproject.toml larger than 1 MiB" + _NOT_BUILT),
    ("not_a_tar-1.0.tar.gz",
     "is not a readable .tar.gz or .zip archive (truncated header)" + _NOT_BUILT),
    ("requires_not_list-1.0.tar.gz", "cannot be built: its pyproject.toml declares "
                                     "[build-system] requires that is not a list of strings"),
    ("bad_requirement-1.0.tar.gz", "cannot be built: its pyproject.toml declares the build "
                                   "requirement 'setuptools >= = 61', which is no valid "
                                   "requirement"),
    ("no_requires-1.0.tar.gz",
     "cannot be built: its pyproject.toml has a [build-system] table without requires"),
    ("bad_toml-1.0.tar.gz", "cannot be built: its pyproject.toml is not valid TOML (Expected "
                            "']' at the end of a table declaration (at line 1, column 14))"),
    ("deep_toml-1.0.tar.gz", "cannot be built: its pyproject.toml has arrays or tables nested "
                             "too deeply to read"),  # 5000 arrays: tomllib's RecursionError
])
def test_a_hostile_sdist_is_refused_in_one_sentence(archive: str, problem: str) -> None:
    """Only headers and the one member are read, bounded: the 8 GiB member is a 110-byte
    file whose header lies, refused before any data is read."""
    with pytest.raises(BuildError) as refused:
        declared_build_requires(BAD_SDISTS / archive, "p", "1.0")
    assert refused.value.message == f"the sdist of p==1.0 {problem}"


def test_the_cached_wheel_is_keyed_by_the_build_pins(tmp_path: Path) -> None:
    """A wheel built with other build tools is another wheel: not found under other pins."""
    sdist = pin_sdist(Pin("langdetect", "1.0.9", (LANGDETECT_SDIST,), LANGDETECT_URL))
    other = SETUPTOOLS.replace("80.9.0", "80.8.0")
    assert _entry_dir(sdist, "3.10", (SETUPTOOLS,)) != _entry_dir(sdist, "3.10", (other,))
    assert _entry_dir(sdist, "3.10", ()) != _entry_dir(sdist, "3.10", (SETUPTOOLS,))  # none
    entry_dir = _entry_dir(sdist, "3.10", (SETUPTOOLS,))
    entry_dir.mkdir(parents=True)
    wheel = make_wheel(entry_dir, "langdetect", {"langdetect/__init__.py": ""})
    sha = "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest()
    (entry_dir / "entry.json").write_text(json.dumps({
        "sdist_sha256": LANGDETECT_SDIST, "wheel": wheel.name, "wheel_sha256": sha,
        "build_requires": [SETUPTOOLS]}))
    try:
        found = cached_wheel(sdist, "3.10", (SETUPTOOLS,))
        assert found is not None and found.sha256 == sha
        with distrusted():  # --no-cache: the entry vouches for itself, so it is not read
            assert cached_wheel(sdist, "3.10", (SETUPTOOLS,)) is None
        assert cached_wheel(sdist, "3.10", (other,)) is None
        assert cached_wheel(sdist, "3.10", ()) is None
    finally:
        shutil.rmtree(entry_dir)


PLATFORM = "x86_64-manylinux_2_35"  # Triton 24.10's, as the resolver gets it


@pytest.mark.parametrize(("name", "python3"), [
    ("langdetect-1.0.9-py2-none-any.whl", False),
    ("six-1.17.0-py2.py3-none-any.whl", True),
    ("numpy-1.26.4-cp310-cp310-manylinux_2_17_x86_64.whl", True),
    ("numpy-1.26.4-cp310-cp310-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", True),
    ("x-1.0-cp39-cp39-manylinux1_x86_64.whl", True),  # another Python: said elsewhere
    ("x-1.0-cp310-cp310-linux_x86_64.whl", True),
    ("langdetect-1.0.9.tar.gz", False),
    # fasttext 0.9.3's only wheel: a macOS arm64 one is no wheel for the target
    ("fasttext-0.9.3-cp39-cp39-macosx_11_0_arm64.whl", False),
    ("x-1.0-cp310-cp310-win_amd64.whl", False),
    ("x-1.0-cp310-cp310-manylinux_2_17_aarch64.whl", False),  # another architecture
    ("x-1.0-cp310-cp310-musllinux_1_1_x86_64.whl", False),  # not glibc
    ("x-1.0-cp310-cp310-manylinux_2_39_x86_64.whl", False),  # a newer glibc than the image's
])
def test_a_wheel_is_one_only_for_python_3_on_the_target_platform(name: str,
                                                                 python3: bool) -> None:
    assert _python3_wheel(name, PLATFORM) is python3


def test_what_a_find_links_dir_offers(tmp_path: Path) -> None:
    """A hyphenated legacy sdist name is its project's; a py2-only wheel offers nothing."""
    for name in ("my-pkg-1.0.tar.gz", "other-1.0-py3-none-any.whl", "old-1.0-py2-none-any.whl",
                 "old-1.0.zip", "mac-0.9.3.tar.gz", "mac-0.9.3-cp39-cp39-macosx_11_0_arm64.whl"):
        (tmp_path / name).write_bytes(b"")
    indexes = Indexes((tmp_path / "no-index").as_uri(), (), (str(tmp_path),))
    assert offers("my-pkg", indexes, PLATFORM) == (False, True)
    assert offers("other", indexes, PLATFORM) == (True, False)
    assert offers("old", indexes, PLATFORM) == (False, True)
    assert offers("mac", indexes, PLATFORM) == (False, True)  # built from source, or refused
    assert offers("absent", indexes, PLATFORM) == (False, False)


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


@pytest.mark.slow
@pytest.mark.parametrize("resolver", ["uv", "pip-tools"])
def test_lock_builds_an_sdist_only_package_once(model_copy: Copy, resolver: str) -> None:
    """Both resolvers: uv says wheels are required, pip finds no version (``offers`` then
    sees an sdist and no Python 3 wheel); the lock-only path, no pack."""
    model = model_copy("sdist_only")
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto", "--resolver", resolver)
    assert res.exit_code == 0, res.stderr
    lock = read_lock(model / "tritonpack.lock")
    assert lock.version == 2
    pin = next(p for p in lock.pypi if p.name == "langdetect")
    assert (pin.version, pin.hashes, pin.sdist) == ("1.0.9", (LANGDETECT_SDIST,), LANGDETECT_URL)
    # no pyproject.toml: PEP 517's fallback, setuptools>=40.8.0, resolved and hashed
    assert len(pin.build_requires) == 1
    tool, *hashes = pin.build_requires[0].split(" ")
    assert tool.startswith("setuptools==") and hashes
    assert all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", h) for h in hashes)
    assert (f"note  langdetect==1.0.9 has no wheel: built from source ({LANGDETECT_URL}) "
            f"with {tool}\n") in res.stderr
    assert "langdetect==1.0.9 (built from source)" in res.stdout
    assert {p.name for p in lock.pypi} >= {"six", "numpy"}  # its dependency: a wheel
    assert all(not p.sdist for p in lock.pypi if p.name != "langdetect")
    entry_dir = _entry_dir(pin_sdist(pin), "3.10", pin.build_requires)
    entry = json.loads((entry_dir / "entry.json").read_text())
    wheel = entry_dir / entry["wheel"]
    assert entry["wheel"] == "langdetect-1.0.9-py3-none-any.whl"
    assert entry["wheel_sha256"] == "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert entry["build_requires"] == list(pin.build_requires)
    with zipfile.ZipFile(wheel) as built:  # built by the pinned setuptools, no other
        generator = built.read("langdetect-1.0.9.dist-info/WHEEL").decode()
    assert f"Generator: setuptools ({tool.removeprefix('setuptools==')})\n" in generator

    first = (model / "tritonpack.lock").read_bytes()
    (model / "tritonpack.lock").unlink()
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto", "--resolver", resolver, "-q")
    assert res.exit_code == 0, res.stderr
    assert (model / "tritonpack.lock").read_bytes() == first  # byte-identical on a re-run


@pytest.mark.slow
def test_pack_installs_the_built_wheel_and_the_model_imports_it(model_copy: Copy,
                                                               tmp_path: Path) -> None:
    """The archive holds langdetect, importable in Triton 24.10 (verify's probe imports it);
    a cached wheel whose bytes changed is not used: it is rebuilt from the hash-checked sdist,
    and the archive is byte-identical."""
    model = model_copy("sdist_only")
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--verify", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["verify"]["passed"]
    assert out["verify"]["probe"]["imports"]["langdetect"] == "ok"
    archive = model / "tritonpack-env.tar.gz"
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()

    pin = next(p for p in read_lock(model / "tritonpack.lock").pypi if p.sdist)
    entry_dir = _entry_dir(pin_sdist(pin), "3.10", pin.build_requires)
    wheel = entry_dir / "langdetect-1.0.9-py3-none-any.whl"
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    archive.unlink()
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--frozen", "--no-cache", "-q")
    assert res.exit_code == 0, res.stderr
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == digest
    entry = json.loads((entry_dir / "entry.json").read_text())
    assert entry["wheel_sha256"] == "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_locked_sdist_whose_bytes_changed_is_refused(model_copy: Copy) -> None:
    """The sdist's hash is checked before anything of it runs (here: a lock re-signed with
    another hash, and no cached wheel for it)."""
    model = model_copy("sdist_only")
    assert run_cli("lock", model, "--triton", "24.10", "--python-from", "auto", "-q").exit_code == 0
    lock = read_lock(model / "tritonpack.lock")
    bad = "sha256:" + "0" * 64
    write_lock(model / "tritonpack.lock", Lockfile(
        inputs=lock.inputs, target=lock.target, resolver=lock.resolver, conda=lock.conda,
        pypi=tuple(Pin(p.name, p.version, (bad,), p.sdist, p.build_requires) if p.sdist else p
                   for p in lock.pypi)))
    res = run_cli(model, "--python-from", "auto", "--frozen", "--no-cache")
    assert res.exit_code == ExitCode.BUILD
    assert error_line(res.stderr) == (
        f"error: hash mismatch for the sdist of langdetect==1.0.9: locked {bad}, got "
        f"{LANGDETECT_SDIST}")


@pytest.mark.slow
def test_an_sdist_that_compiles_c_is_refused_naming_what_it_needs(tmp_path: Path) -> None:
    model = tmp_path / "sdist_cext"
    shutil.copytree(MODELS / "sdist_cext", model)
    before = snapshot(model)
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == ExitCode.BUILD == 8
    assert error_line(res.stderr) == (
        "error: tritonpack-cext-probe==1.0 is published only as source and its build needs a C "
        "compiler (it compiles a C extension), which tritonpack's isolated pure-Python build "
        "does not provide")
    assert snapshot(model) == before  # no lock written


@pytest.mark.slow
def test_a_build_requirement_whose_hash_changed_is_refused(model_copy: Copy) -> None:
    """The build tools are hash-checked too: a lock whose setuptools hash differs from the
    file on the index (re-signed, so it reads) builds nothing; the cache has no wheel for
    these pins (the key includes them), and uv checks the hash before installing it."""
    model = model_copy("sdist_only")
    assert run_cli("lock", model, "--triton", "24.10", "--python-from", "auto", "-q").exit_code == 0
    lock = read_lock(model / "tritonpack.lock")
    pin = next(p for p in lock.pypi if p.sdist)
    tool = pin.build_requires[0].split(" ")[0]
    altered = tool + " --hash=sha256:" + "0" * 64
    write_lock(model / "tritonpack.lock", Lockfile(
        inputs=lock.inputs, target=lock.target, resolver=lock.resolver, conda=lock.conda,
        pypi=tuple(Pin(p.name, p.version, p.hashes, p.sdist, (altered,)) if p.sdist else p
                   for p in lock.pypi)))
    res = run_cli(model, "--python-from", "auto", "--frozen", "--no-cache")
    assert res.exit_code == ExitCode.BUILD == 8
    assert error_line(res.stderr) == (
        f"error: hash mismatch for {tool}, a build requirement of langdetect==1.0.9 pinned in "
        "the lock: the file on the index differs from the one locked")
    assert not (model / "tritonpack-env.tar.gz").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("fixture", "problem"), [
    ("sdist_hostile", "the sdist of tritonpack-hostile-probe==1.0 cannot be built: its "
                      "pyproject.toml declares [build-system] requires that is not a list of "
                      "strings"),
    ("sdist_traversal", "the sdist of tritonpack-hostile-probe==1.0 holds a member outside its "
                        "directory ('../x'), so tritonpack does not build it"),
    ("sdist_dynamic", "the build of tritonpack-dynamic-probe==1.0 asks for six beyond the "
                      "build requirements its sdist declares, which tritonpack cannot pin "
                      "without running its code"),
])
def test_an_sdist_tritonpack_cannot_pin_is_refused_in_one_sentence(
        tmp_path: Path, fixture: str, problem: str) -> None:
    """A hostile pyproject.toml or archive is read, never run (sdist_traversal: uv refuses to
    extract it while resolving, and the sentence says why); a tool the backend asks for at
    build time is refused by --require-hashes instead of fetched unpinned. No lock written."""
    model = tmp_path / fixture
    shutil.copytree(MODELS / fixture, model)
    before = snapshot(model)
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == ExitCode.BUILD
    assert error_line(res.stderr) == f"error: {problem}"
    assert "Traceback" not in res.stderr
    assert snapshot(model) == before
    assert not (tmp_path / "x").exists()


# --- the lock's sdist URL is untrusted: fetched only from where an sdist can be, bounded ---


def _fetched(url: str, dest: Path, sha: str = "sha256:" + "0" * 64) -> str:
    with pytest.raises(BuildError) as refused:
        fetch(Sdist("p", "1.0", url, sha), dest)
    assert not any(dest.iterdir())  # nothing left behind
    return refused.value.message


NOT_FETCHED = ("the sdist of p==1.0 is locked at {url}, which is neither an https or http URL "
               "nor a file:// URL of this machine, so tritonpack does not fetch it")


@pytest.mark.parametrize("url", ["data:application/gzip;base64,AAAA",
                                 "ftp://example.org/p-1.0.tar.gz",
                                 "file://otherhost/tmp/p-1.0.tar.gz",
                                 "file://localhost/tmp/p-1.0.tar.gz"])
def test_a_locked_sdist_url_of_another_scheme_or_host_is_refused(tmp_path: Path,
                                                                 url: str) -> None:
    assert _fetched(url, tmp_path) == NOT_FETCHED.format(url=url)


@pytest.mark.parametrize("url", ["file:///dev/zero", "file:///etc/passwd",
                                 "https://example.org/simple/p/"])
def test_a_locked_sdist_url_that_names_no_archive_is_refused(tmp_path: Path, url: str) -> None:
    assert _fetched(url, tmp_path) == (f"the sdist of p==1.0 is locked at {url}, which names no "
                                       ".tar.gz or .zip file, so tritonpack does not fetch it")


def test_a_locked_sdist_that_is_a_device_or_fifo_is_not_read(tmp_path: Path) -> None:
    """/dev/zero under an sdist's name would fill the disk; a FIFO would block forever."""
    (tmp_path / "zero-1.0.tar.gz").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "fifo-1.0.tar.gz")
    dest = tmp_path / "dest"
    dest.mkdir()
    for name, kind in (("zero-1.0.tar.gz", "a character device"),
                       ("fifo-1.0.tar.gz", "a FIFO (named pipe)")):
        url = (tmp_path / name).as_uri()
        assert _fetched(url, dest) == (f"the sdist of p==1.0 is locked at {url}, which is "
                                       f"{kind}, not a file, so tritonpack does not read it")


def test_a_locked_sdist_larger_than_the_bound_is_not_fetched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamed and counted (the bound is 512 MiB; lowered here to keep the test small)."""
    assert sdist_module.MAX_SDIST == sdist_module.MAX_UNPACKED == 512 * 2**20
    monkeypatch.setattr(sdist_module, "MAX_SDIST", 2**20)
    big = tmp_path / "big-1.0.tar.gz"
    big.write_bytes(b"\0" * (2**20 + 1))
    dest = tmp_path / "dest"
    dest.mkdir()
    assert _fetched(big.as_uri(), dest) == (
        f"the sdist of p==1.0 at {big.as_uri()} is larger than 1 MiB, so tritonpack does not "
        "fetch it")


def test_a_local_sdist_that_differs_is_refused_without_its_hash(tmp_path: Path) -> None:
    """The computed hash of a local file is not echoed (the lock could name any file the
    user can read); a matching one is fetched."""
    local = tmp_path / "p-1.0.tar.gz"
    local.write_bytes(b"secret")
    dest = tmp_path / "dest"
    dest.mkdir()
    message = _fetched(local.as_uri(), dest)
    assert message == (f"hash mismatch for the sdist of p==1.0: locked sha256:{'0' * 64}, and "
                       f"the file at {local.as_uri()} differs")
    assert hashlib.sha256(b"secret").hexdigest() not in message
    good = "sha256:" + hashlib.sha256(b"secret").hexdigest()
    assert fetch(Sdist("p", "1.0", local.as_uri(), good), dest).read_bytes() == b"secret"


# --- a FIFO in --find-links is never opened --------------------------------------------


def test_a_fifo_in_find_links_is_skipped_by_the_sdist_lookup(tmp_path: Path) -> None:
    """find_sdist hashes regular files only (a plain read of a FIFO waits for a writer)."""
    links = tmp_path / "links"
    links.mkdir()
    os.mkfifo(links / "evilprobe-1.0.tar.gz")
    indexes = Indexes((tmp_path / "no-index").as_uri(), (), (str(links),))
    with pytest.raises(BuildError, match=r"evilprobe==1\.0 is published only as source, and no "):
        find_sdist("evilprobe", "1.0", ("sha256:" + "0" * 64,), indexes)
    with pytest.raises(BuildError) as refused:
        declared_build_requires(links / "evilprobe-1.0.tar.gz", "evilprobe", "1.0")
    assert refused.value.message == ("the sdist of evilprobe==1.0 is a FIFO (named pipe), not an "
                                     "archive, so tritonpack does not build it")


def test_lock_refuses_a_fifo_in_find_links_instead_of_hanging(tmp_path: Path) -> None:
    """uv would open it too: every backend refuses it before running (a subprocess, so a
    hang fails the test by its timeout instead of blocking the run)."""
    model = shutil.copytree(MODELS / "sdist_native", tmp_path / "m")
    links = model / "links"
    os.mkfifo(links / "Evilprobe-1.0.tar.gz")
    (model / "requirements.txt").write_text("--find-links links\nevilprobe==1.0\n")
    (model / "1" / "model.py").write_text("import evilprobe\n\n\nclass TritonPythonModel:\n"
                                          "    pass\n")
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run([sys.executable, "-m", "packer", "lock", str(model), "--triton",
                           "24.10", "--python-from", "auto"], capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == ExitCode.RESOLVE, done.stderr
    assert error_line(done.stderr) == (
        f"error: --find-links {links}: Evilprobe-1.0.tar.gz is a FIFO (named pipe), not a "
        "package file")


# --- the build: tritonpack's environment kept out, native binaries refused --------------


def test_the_build_environment_holds_nothing_of_tritonpacks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in (("TRITONPACK_REGISTRY_PASSWORD", "secret"), ("XDG_CACHE_HOME", "/x"),
                       ("PIP_INDEX_URL", "https://evil.example"), ("UV_INDEX_URL", "x"),
                       ("HTTPS_PROXY", "http://proxy.example:3128")):
        monkeypatch.setenv(key, value)
    env = build_env(tmp_path)
    assert env["HOME"] == env["TMPDIR"] == str(tmp_path)
    assert env["HTTPS_PROXY"] == "http://proxy.example:3128"  # how uv reaches the index
    assert not [k for k in env if k.startswith(("TRITONPACK_", "XDG_"))]
    assert {k for k in env if k.startswith(("PIP_", "UV_"))} == {"PIP_CONFIG_FILE",
                                                                 "UV_NO_CONFIG"}


def _wheel_with(tmp_path: Path, data: bytes) -> Path:
    wheel = make_wheel(tmp_path, "probe", {"probe/__init__.py": ""})
    with zipfile.ZipFile(wheel, "a") as zipped:
        zipped.writestr("probe/lib.bin", data)
    return wheel


@pytest.mark.parametrize(("data", "native"), [
    (b"\x7fELF\x02\x01\x01" + bytes(57), True),
    (b"\xcf\xfa\xed\xfe" + bytes(60), True),  # Mach-O 64-bit
    (b"\xca\xfe\xba\xbe\x00\x00\x00\x02" + bytes(56), True),  # universal Mach-O, 2 archs
    (b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + bytes(56), False),  # a Java class file
    (b"MZ" + bytes(58) + (64).to_bytes(4, "little") + b"PE\0\0" + bytes(16), True),
    (b"MZ is how this text file begins", False),
    (b"# plain text\n", False),
], ids=["elf", "macho", "universal", "java", "pe", "mz-text", "text"])
def test_a_native_binary_in_a_wheel_is_found_by_its_magic(tmp_path: Path, data: bytes,
                                                          native: bool) -> None:
    assert native_member(_wheel_with(tmp_path, data)) == ("probe/lib.bin" if native else None)


@pytest.mark.slow
def test_an_sdist_that_ships_a_native_library_without_cc_is_refused(tmp_path: Path) -> None:
    """setup.py writes an ELF file itself (as one running /usr/bin/gcc would): the wheel is
    py3-none-any, but its members say what it is."""
    model = shutil.copytree(MODELS / "sdist_native", tmp_path / "sdist_native")
    before = snapshot(model)
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == ExitCode.BUILD == 8
    assert error_line(res.stderr) == (
        "error: tritonpack-native-probe==1.0 is published only as source and its build needs a "
        "C compiler (its wheel holds the native binary tritonpack_native_probe/_speedups.so), "
        "which tritonpack's isolated pure-Python build does not provide")
    assert snapshot(model) == before


@pytest.mark.slow
def test_the_sdist_build_gets_a_throwaway_home_and_none_of_tritonpacks_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe's setup.py exits non-zero when it sees TRITONPACK_*/XDG_* or the user's
    HOME, in the resolver's metadata run and in the build; the wheel records what it saw."""
    monkeypatch.setenv("TRITONPACK_REGISTRY_PASSWORD", "secret")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    model = shutil.copytree(MODELS / "sdist_envprobe", tmp_path / "sdist_envprobe")
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == 0, res.stderr
    pin = next(p for p in read_lock(model / "tritonpack.lock").pypi if p.sdist)
    built = cached_wheel(pin_sdist(pin), "3.10", pin.build_requires)
    assert built is not None
    with zipfile.ZipFile(built.path) as wheel:
        seen = json.loads(wheel.read("tritonpack_env_probe/env.json"))
    assert seen["home"] != str(Path.home()) and not Path(seen["home"]).exists()  # thrown away
    assert "TRITONPACK_CACHE" not in seen["keys"]
    uv_own = {"UV", "VIRTUAL_ENV", "PYTHONIOENCODING"}  # what uv sets for the backend
    allowed = {*build_env(tmp_path), *uv_own, proc.MARK}  # the mark: how it is found again
    assert {k for k in seen["keys"] if not k.startswith("UV_INTERNAL__")} <= allowed


@pytest.mark.slow
@pytest.mark.parametrize(("url", "message"), [
    ("data:application/gzip;base64,AAAA", NOT_FETCHED.replace("p==1.0", "tritonpack-env-probe==1.0")),
    ("file:///dev/zero", "the sdist of tritonpack-env-probe==1.0 is locked at {url}, which names "
                         "no .tar.gz or .zip file, so tritonpack does not fetch it"),
])
def test_pack_refuses_a_re_signed_lock_whose_sdist_url_is_not_an_sdist(
        tmp_path: Path, url: str, message: str) -> None:
    """A lock re-signed with another URL (and hash, so no cached wheel answers): nothing is
    read from it, the build stops with exit 8."""
    model = shutil.copytree(MODELS / "sdist_envprobe", tmp_path / "sdist_envprobe")
    assert run_cli("lock", model, "--triton", "24.10", "--python-from", "auto", "-q").exit_code == 0
    lock = read_lock(model / "tritonpack.lock")
    bad = "sha256:" + "0" * 64
    write_lock(model / "tritonpack.lock", Lockfile(
        inputs=lock.inputs, target=lock.target, resolver=lock.resolver, conda=lock.conda,
        pypi=tuple(Pin(p.name, p.version, (bad,), url, p.build_requires) if p.sdist else p
                   for p in lock.pypi)))
    res = run_cli(model, "--python-from", "auto", "--frozen", "--no-cache")
    assert res.exit_code == ExitCode.BUILD
    assert error_line(res.stderr) == "error: " + message.format(url=url)
    assert not (model / "tritonpack-env.tar.gz").exists()


def test_a_lock_nested_too_deeply_is_corrupted_not_a_crash(tmp_path: Path) -> None:
    """A 3000-deep array: tomllib's RecursionError (exit 70) is the lock's corrupted sentence:
    ``lock --check`` exits 6, ``check`` reports the model (exit 1)
    (tests/fixtures/bad/lock_nested_too_deep; test_bad_inputs runs it for every command)."""
    model = shutil.copytree(FIXTURES / "bad" / "lock_nested_too_deep", tmp_path / "deep")
    sentence = f"{model}/tritonpack.lock: corrupted: arrays or tables nested too deeply to read"
    res = run_cli("lock", model, "--check", "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == ExitCode.LOCK, res.stderr
    assert error_line(res.stderr) == f"error: {sentence}"
    res = run_cli("check", model)
    assert res.exit_code == 1, res.stderr
    assert f"  lock_nested_too_deep: {sentence}\n" in res.stdout


@pytest.mark.slow
def test_a_package_whose_only_wheel_is_for_macos_is_built_from_source(tmp_path: Path) -> None:
    """PyPI's fasttext 0.9.3: an sdist and a cp39 macOS arm64 wheel. That wheel is none for
    Linux, so the sdist is built, and refused as it compiles C++ (not "relax the pin")."""
    model = shutil.copytree(MODELS / "sdist_native", tmp_path / "ft")
    shutil.rmtree(model / "links")
    (model / "requirements.txt").write_text("fasttext==0.9.3\n")
    (model / "1" / "model.py").write_text("import fasttext\n\n\nclass TritonPythonModel:\n"
                                          "    pass\n")
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == ExitCode.BUILD == 8, res.stderr
    assert error_line(res.stderr) == (
        "error: fasttext==0.9.3 is published only as source and its build needs a C compiler "
        "(it compiles a C extension), which tritonpack's isolated pure-Python build does not "
        "provide")
    assert not (model / "tritonpack.lock").exists()
