"""The main command end to end: real solve, real PyPI, real conda-pack, then the env is used
from somewhere else with its own bin/python3."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.core.errors import ExitCode
from packer.pack import stage as pack_mod

from .conftest import SRC, error_line, run_cli, snapshot

pytestmark = pytest.mark.slow
Copy = Callable[..., Path]


def extract(archive: Path, dest: Path) -> Path:
    dest.mkdir()
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(dest, filter="data")
    return dest


def env_python(env: Path, code: str) -> str:
    """Run code with the environment's own interpreter, as Triton's stub would use it."""
    out = subprocess.run([env / "bin" / "python3", "-I", "-c", code], capture_output=True,
                         text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    return out.stdout.strip()


def test_pack_plain_model_archive_loads_elsewhere(model_copy: Copy, tmp_path: Path) -> None:
    model = model_copy("plain_numpy")
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    archive = model / "tritonpack-env.tar.gz"
    assert out["archive"]["path"] == str(archive)
    assert out["execution_env_path"] == "$$TRITON_MODEL_DIRECTORY/tritonpack-env.tar.gz"
    assert out["python"].startswith("3.10.")
    assert oct(archive.stat().st_mode & 0o777) == "0o644"

    with tarfile.open(archive, "r:gz") as tar:
        names = set(tar.getnames())
        assert all(m.uid == 0 and m.gid == 0 and m.uname == "" for m in tar.getmembers())
    for need in ("bin/activate", "bin/python3", "lib/libpython3.10.so.1.0",
                 "lib/python3.10/site-packages/numpy/__init__.py"):
        assert need in names
    assert "CACHEDIR.TAG" not in names
    # bytecode for what a start loads (the stub's imports, numpy's), not for the rest
    site = "lib/python3.10/site-packages"
    assert f"{site}/numpy/__pycache__/__init__.cpython-310.pyc" in names
    assert f"{site}/numpy/f2py/__init__.py" in names
    assert f"{site}/numpy/f2py/__pycache__/__init__.cpython-310.pyc" not in names
    with tarfile.open(archive, "r:gz") as tar:
        stdlib_zip = tar.extractfile("lib/python310.zip")
        assert stdlib_zip is not None
        zipped = set(zipfile.ZipFile(io.BytesIO(stdlib_zip.read())).namelist())
    assert {"json/__init__.pyc", "asyncio/__init__.pyc", "xmlrpc/client.py"} <= zipped
    assert "xmlrpc/client.pyc" not in zipped

    env = extract(archive, tmp_path / "elsewhere")
    # conda-pack's documented last step works on what tritonpack pruned: nothing it lists is gone
    unpack = subprocess.run([env / "bin" / "python3", env / "bin" / "conda-unpack"],
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert unpack.returncode == 0, unpack.stderr
    [sysconfig] = (env / "lib" / "python3.10").glob("_sysconfigdata_*.py")
    assert str(env) in sysconfig.read_text()  # its build prefix, rewritten to this one
    report = json.loads(env_python(env, (
        "import sys, json, numpy, lib2to3.pygram; "
        "print(json.dumps([sys.prefix, numpy.__version__, json.__file__, lib2to3.__file__]))")))
    assert report[0] == str(env)
    assert report[1].startswith("1.")
    # the pure-Python stdlib from lib/python310.zip; lib2to3 reads its grammar: a file
    assert report[2] == str(env / "lib" / "python310.zip" / "json" / "__init__.pyc")
    assert report[3] == str(env / "lib" / "python3.10" / "lib2to3" / "__init__.py")

    config = (model / "config.pbtxt").read_bytes()
    lock = (model / "tritonpack.lock").read_bytes()
    again = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["config_changed"] is False
    assert (model / "config.pbtxt").read_bytes() == config
    assert (model / "tritonpack.lock").read_bytes() == lock
    assert sorted(p.name for p in model.iterdir()) == [
        "1", "config.pbtxt", "tritonpack-env.tar.gz", "tritonpack-env.tar.gz.sha256",
        "tritonpack.lock"]


def test_pack_bundles_src_package_without_secrets(model_copy: Copy, tmp_path: Path) -> None:
    model = model_copy("with_src")
    res = run_cli(model, "--src", SRC, "--python-from", "auto", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["bundled"] == ["featurize"]
    assert sorted(out["skipped"]) == ["featurize/.env (dot-file)",
                                      "featurize/server.pem (secret-like name)"]
    env = extract(model / "tritonpack-env.tar.gz", tmp_path / "env")
    site = env / "lib" / "python3.12" / "site-packages"
    assert (site / "featurize" / "scale.py").is_file()
    assert not (site / "featurize" / ".env").exists()
    assert not (site / "featurize" / "server.pem").exists()
    assert not (site / "helpers.py").exists()  # inside the model dir: stays there
    prefix = env_python(env, (
        "import sys, featurize, featurize.scale, featurize.constants, yaml, numpy\n"
        "print(sys.prefix)"))
    assert prefix == str(env)


def test_format_dir(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--format", "dir", "-q")
    assert res.exit_code == 0, res.stderr
    env = model / "tritonpack-env"
    assert env_python(env, "import sys, numpy; print(sys.prefix)") == str(env)
    # nothing is extracted from a directory: the stdlib stays files (no zip's import cost)
    assert not (env / "lib" / "python310.zip").exists()
    assert (env / "lib" / "python3.10" / "json" / "__init__.py").is_file()
    assert 'string_value: "$$TRITON_MODEL_DIRECTORY/tritonpack-env"' in (
        model / "config.pbtxt").read_text()


def test_failed_pack_leaves_previous_archive_and_config(
    model_copy: Copy, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = model_copy("plain_numpy")
    assert run_cli(model, "--triton", "24.10", "--python-from", "auto", "-q").exit_code == 0
    before = snapshot(model)

    def half_written(root: Path, dest: Path, *args: object, **kw: object) -> tuple[str, int, int]:
        dest.write_bytes(b"\x1f\x8b partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pack_mod, "write_targz", half_written)
    (model / "1" / "model.py").write_text((model / "1" / "model.py").read_text() + "\n")
    before = snapshot(model)
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "-q", "--no-cache")
    assert res.exit_code == 15  # "no space left on device: the disk of ... is full"
    assert snapshot(model) == before  # old archive, lock and config.pbtxt untouched
    assert not [p for p in model.iterdir() if p.name.startswith(".")]  # no temp files


def test_frozen_refuses_a_stale_lock(model_copy: Copy) -> None:
    model = model_copy("plain_numpy")
    assert run_cli("lock", model, "--triton", "24.10", "--python-from", "auto", "-q").exit_code == 0
    src = model / "1" / "model.py"
    src.write_text(src.read_text() + "import yaml\n")
    before = snapshot(model)
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--frozen")
    assert res.exit_code == ExitCode.LOCK == 6
    assert error_line(res.stderr).startswith(
        "error: tritonpack.lock is stale (--frozen): imports: +yaml=pyyaml")
    assert snapshot(model) == before


def test_user_module_shadowed_by_an_installed_one(model_copy: Copy, tmp_path: Path) -> None:
    model = model_copy("plain_numpy")
    src = tmp_path / "src"
    (src / "yaml").mkdir(parents=True)
    (src / "yaml" / "__init__.py").write_text("X = 1\n")
    tp = model / "tritonpack.toml"
    tp.write_text('[requirements]\npypi = ["PyYAML"]\n')
    (model / "1" / "model.py").write_text("import numpy\nimport yaml\n\n\n"
                                          "class TritonPythonModel:\n    pass\n")
    res = run_cli(model, "--src", src, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == ExitCode.BUILD == 8
    assert error_line(res.stderr).startswith(
        f"error: your module 'yaml' ({src / 'yaml' / '__init__.py'}) has the same name as a "
        "module installed by PyYAML")
    assert not (model / "tritonpack-env.tar.gz").exists()


def test_hash_mismatch_names_the_file(model_copy: Copy) -> None:
    """A lock whose PyPI hash does not match the index's file (re-signed, so it reads)."""
    from packer.lock.lockfile import Lockfile, read_lock, write_lock
    from packer.lock.pypi import Pin

    model = model_copy("plain_numpy")
    assert run_cli("lock", model, "--triton", "24.10", "--python-from", "auto", "-q").exit_code == 0
    lock = read_lock(model / "tritonpack.lock")
    bad = Lockfile(inputs=lock.inputs, target=lock.target, resolver=lock.resolver,
                   conda=lock.conda,
                   pypi=tuple(Pin(p.name, p.version, ("sha256:" + "0" * 64,)) for p in lock.pypi))
    write_lock(model / "tritonpack.lock", bad)
    before = snapshot(model)
    res = run_cli(model, "--frozen", "--python-from", "auto", "--no-cache")
    assert res.exit_code == ExitCode.BUILD
    line = error_line(res.stderr)
    assert line.startswith("error: hash mismatch installing the locked PyPI packages: ")
    assert "numpy" in line
    assert snapshot(model) == before
