"""The release gate on a fresh clone: a repository whose environments are git-ignored, the
CI recipe of docs/release-pipelines.md run as written, and the repository-wide lock gate
(check --locks, lock --check, scan, export) with hints that name the right command."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from packer.core.integrity import record_path, render_record, sha256_file

from .conftest import FIXTURES, run_cli

pytestmark = pytest.mark.slow
DOCS = Path(__file__).parents[1] / "docs" / "release-pipelines.md"


def _block(kind: str, after: str) -> str:
    """The first ```kind code block after the heading ``after`` in the release-pipelines page."""
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index(after):]
    match = re.search(rf"```{kind}\n(.*?)```", section, re.S)
    assert match, f"no {kind} block after {after!r}"
    return match.group(1)


def _git(*args: str | Path, cwd: Path) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    subprocess.run(["git", *map(str, args)], cwd=cwd, env=env, check=True,
                   capture_output=True)


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory, session_cache: Path) -> tuple[Path, str]:
    """(a packed repository with three Python models, the pack's stderr)."""
    os.environ["TRITONPACK_CACHE"] = str(session_cache)
    work = tmp_path_factory.mktemp("gate") / "project"
    shutil.copytree(FIXTURES / "repo", work / "models")
    res = run_cli(work / "models", "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == 0, res.stderr
    return work / "models", res.stderr


@pytest.fixture(scope="module")
def clone(packed: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh `git clone` of the packed project, committed with the docs' .gitignore."""
    project = packed[0].parent
    (project / ".gitignore").write_text(_block("gitignore", "## CI on a fresh clone"))
    _git("init", "-q", "-b", "main", cwd=project)
    _git("add", "-A", cwd=project)
    _git("commit", "-q", "-m", "models", cwd=project)
    dest = tmp_path_factory.mktemp("clone") / "project"
    _git("clone", "-q", project, dest, cwd=project.parent)
    assert sorted(p.name for p in (dest / "models" / "alpha").iterdir()) == [
        "1", "config.pbtxt", "tritonpack.lock"]  # no environment, no record: ignored
    return dest


def _fresh(clone: Path, tmp_path: Path) -> Path:
    """A copy of the clone a test may change."""
    dest = tmp_path / "project"
    shutil.copytree(clone, dest, symlinks=True)
    return dest


def test_the_docs_ci_job_runs_as_written_on_a_fresh_clone(clone: Path, tmp_path: Path) -> None:
    project = _fresh(clone, tmp_path)
    job = _block("yaml", "## CI on a fresh clone")
    steps = [line.split("- run:", 1)[1].split(" #", 1)[0].strip()
             for line in job.splitlines() if line.strip().startswith("- run:")]
    install = [s for s in steps if s.startswith("pip install")]
    assert install == [
        'pip install "tritonpack @ https://github.com/OWNER/tritonpack/archive/COMMIT_SHA.tar.gz"']
    commands = [s for s in steps if s not in install]
    assert commands[0] == "tritonpack check --locks models/"
    bin_dir = str(Path(sys.executable).parent)  # this suite's tritonpack, as the install made it
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    for command in commands:
        done = subprocess.run(["bash", "-c", command], cwd=project, env=env, text=True,
                              capture_output=True, timeout=900, check=False)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    assert (project / "models" / "gamma" / "tritonpack-env.tar.gz").is_file()


def test_the_gate_names_a_stale_lock_and_the_fix(clone: Path, tmp_path: Path) -> None:
    project = _fresh(clone, tmp_path)
    models = project / "models"
    assert run_cli("check", "--locks", models).stdout.splitlines() == [
        "checked 3 models: alpha, beta, gamma",
        "every lock fresh (--locks: no environment checked)"]
    src = models / "beta" / "1" / "model.py"
    src.write_text(src.read_text() + "import yaml\n")
    res = run_cli("check", "--locks", models)
    assert res.exit_code == 1
    assert res.stdout.splitlines() == [
        "checked 3 models: alpha, beta, gamma",
        f"  beta: tritonpack.lock is stale: imports: +yaml=pyyaml; requirements: +pyyaml (run "
        f"tritonpack lock {models / 'beta'} and commit tritonpack.lock)"]
    whole = run_cli("check", models)  # the full check also needs the environments
    assert whole.exit_code == 1
    assert (f"  alpha: EXECUTION_ENV_PATH points at tritonpack-env.tar.gz, which does not exist "
            f"(pack it: tritonpack {models / 'alpha'}; `check --locks` needs no environment)"
            in whole.stdout)


def test_a_changed_src_module_import_stales_the_lock(clone: Path, tmp_path: Path) -> None:
    """gamma bundles ../shared_src (its tritonpack.toml): a new import there is a stale lock."""
    project = _fresh(clone, tmp_path)
    module = next((project / "models" / "shared_src").rglob("*.py"))
    module.write_text(module.read_text() + "\nimport requests\n")
    res = run_cli("check", "--locks", project / "models", "--json")
    assert res.exit_code == 1
    problems = json.loads(res.stdout)["problems"]
    assert len(problems) == 1 and problems[0].startswith(
        "gamma: tritonpack.lock is stale: imports: +requests=requests")


def test_lock_check_of_a_repository_names_each_lock_command(clone: Path, tmp_path: Path) -> None:
    project = _fresh(clone, tmp_path)
    models = project / "models"
    assert run_cli("lock", "--check", models).stdout.splitlines() == [
        f"{models}: 3 models checked, every lock fresh"]
    src = models / "alpha" / "1" / "model.py"
    src.write_text(src.read_text() + "import yaml\n")
    (models / "beta" / "tritonpack.lock").unlink()
    res = run_cli("lock", "--check", models)
    assert res.exit_code == 1
    assert res.stdout.splitlines() == [
        f"{models}: 3 models checked, 1 stale, 1 not checked",
        f"{models / 'alpha' / 'tritonpack.lock'}: stale",
        "  imports: +yaml=pyyaml",
        "  requirements: +pyyaml",
        f"run: tritonpack lock {models / 'alpha'}   (then commit tritonpack.lock)",
        f"beta: {models / 'beta' / 'tritonpack.lock'}: no lock file",
        "  hint: create it with tritonpack lock"]
    assert f"tritonpack {models}/" not in res.stdout.replace("tritonpack lock", "")
    out = json.loads(run_cli("lock", "--check", models, "--json").stdout)
    assert (out["fresh"], [m["model"] for m in out["models"]], out["failed"][0]["model"]) == (
        False, ["alpha", "gamma"], "beta")


def test_scan_and_export_take_a_repository(clone: Path) -> None:
    models = clone / "models"
    scan = run_cli("scan", models, "--json")
    assert scan.exit_code == 0, scan.stderr
    assert [m["model"] for m in json.loads(scan.stdout)["models"]] == ["alpha", "beta", "gamma"]
    export = run_cli("export", models)
    assert export.exit_code == 0, export.stderr
    lines = export.stdout.splitlines()
    assert lines[0] == "# tritonpack export: the PyPI pins of alpha, beta, gamma"
    assert sum(1 for line in lines if line.startswith("numpy==")) == 1
    out = json.loads(run_cli("export", models, "--json").stdout)
    assert out["models"] == ["alpha", "beta", "gamma"] and "numpy==" in out["requirements"]


def test_a_local_python_lock_warns_what_it_costs(packed: tuple[Path, str]) -> None:
    assert re.search(r"warning: this lock's Python is the local CPython 3\.10\.\d+, not a conda "
                     r"channel's: it builds only where CPython 3\.10\.\d+ is installed",
                     packed[1])


def test_after_lock_the_next_step_is_the_pack(packed: tuple[Path, str], tmp_path: Path) -> None:
    model = shutil.copytree(packed[0] / "alpha", tmp_path / "alpha")
    src = model / "1" / "model.py"
    src.write_text(src.read_text() + "import yaml\n")
    res = run_cli("lock", model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines()[-1] == (
        f"next: tritonpack {model}   (its environment was packed from another lock: this "
        "builds and packs it)")
    check = run_cli("check", model)
    assert check.exit_code == 1
    assert (f"  alpha: tritonpack-env.tar.gz was packed from another lock (re-pack it: "
            f"tritonpack {model})") in check.stdout


def test_check_notices_a_bundled_module_changed_since_the_pack(packed: tuple[Path, str],
                                                               tmp_path: Path) -> None:
    """gamma bundles textproc from ../shared_src: the lock does not change when its code does,
    but the archive's stamp records each bundled file's sha256."""
    models = shutil.copytree(packed[0], tmp_path / "models")
    assert run_cli("check", models).exit_code == 0
    module = models / "shared_src" / "textproc" / "__init__.py"
    module.write_text(module.read_text().replace("3.0", "4.0"))
    expected = [f"  gamma: tritonpack-env.tar.gz ships older bundled code than --src holds: "
                f"textproc/__init__.py changed (re-pack it: tritonpack {models / 'gamma'})"]
    for deep in ((), ("--deep",)):
        res = run_cli("check", models, *deep)
        assert res.exit_code == 1
        assert res.stdout.splitlines()[1:] == expected


@pytest.mark.server
def test_the_readme_set_up_leaves_a_fresh_clone_clean(tmp_path: Path) -> None:
    """The README's first command, and the tour's image_model one, write the lock and the
    environment into examples/: the examples' config.pbtxt already point at it and the
    project's .gitignore leaves the outputs out, so `git status` stays clean (it showed
    config.pbtxt modified and tritonpack.lock untracked)."""
    root = Path(__file__).parents[1]
    project = tmp_path / "tritonpack"
    shutil.copytree(root / "examples", project / "examples")
    shutil.copy(root / ".gitignore", project / ".gitignore")
    _git("init", "-q", "-b", "main", cwd=project)
    _git("add", "-A", cwd=project)
    _git("commit", "-q", "-m", "clone", cwd=project)
    examples = project / "examples"
    for model, extra in (("numpy_model", ()), ("image_model", ("--src", examples / "shared_src"))):
        res = run_cli(examples / model, *extra, "--triton", "24.10", "--verify",
                      "--python-from", "auto")
        assert res.exit_code == 0, res.stderr
        assert "(already set)" in res.stdout  # config.pbtxt: not one byte changed
        assert {"tritonpack.lock", "tritonpack-env.tar.gz"} <= {
            p.name for p in (examples / model).iterdir()}
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                            cwd=project, capture_output=True, text=True, check=True)
    assert status.stdout == ""


def test_check_deep_of_an_archive_cut_after_its_stamp_names_it(packed: tuple[Path, str],
                                                               tmp_path: Path) -> None:
    """gamma's archive cut short and its record written again to match (by hand, or by
    whoever cut it): the stamp, its first entry, still reads, and --deep reads the bundled
    files back from the cut archive: one line more, exit 1, never a traceback (exit 70)."""
    models = shutil.copytree(packed[0], tmp_path / "models")
    env = models / "gamma" / "tritonpack-env.tar.gz"
    env.write_bytes(env.read_bytes()[:-100])
    record_path(env).write_bytes(render_record(env.name, sha256_file(env)))
    res = run_cli("check", models, "--deep")
    assert res.exit_code == 1, res.stderr
    cut = "Compressed file ended before the end-of-stream marker was reached"
    assert [line for line in res.stdout.splitlines() if line.startswith("  gamma:")] == [
        f"  gamma: tritonpack-env.tar.gz: tritonpack-env.tar.gz is truncated or corrupted: {cut}",
        f"  gamma: tritonpack-env.tar.gz: its bundled modules cannot be read back ({cut}): "
        f"re-pack it: tritonpack {models / 'gamma'}"]
