"""The bench runs from any checkout whose tritonpack is installed, and says why it skips the
heavy model instead of depending on one machine's wheel directory."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

RUN = Path(__file__).resolve().parent.parent / "bench" / "run.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_from_another_directory(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(RUN), "--help"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert "--find-links DIR" in res.stdout


def test_torch_from_a_wheel_directory(tmp_path: Path) -> None:
    bench = _bench()
    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    assert bench.torch_source(str(tmp_path)) == f"the CPU wheel in {tmp_path}"
    assert bench.MODELS["heavy"][2] == (str(tmp_path),)


def test_no_cpu_torch_skips_the_heavy_model(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _bench()

    def unreachable(*args: object, **kw: object) -> socket.socket:
        raise OSError("network unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    assert bench.torch_source(str(tmp_path)) is None  # an empty directory, no index
    assert bench.torch_source(None) is None


def test_import_time_is_the_envs_own_python_importing_the_model_modules(tmp_path: Path) -> None:
    bench = _bench()
    model = tmp_path / "m"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.py").write_text(
        "import json\nimport click.testing\nfrom numpy import linalg\nfrom . import x\n"
        "import triton_python_backend_utils as pb_utils\n")
    assert bench.model_modules(model) == ["click.testing", "numpy"]  # AST: never imported
    seconds = bench.import_seconds(Path(sys.prefix), bench.model_modules(model), runs=1)
    assert 0 < seconds < 60


def test_repository_bench_has_twelve_models_and_four_locks(tmp_path: Path) -> None:
    sys.path.insert(0, str(RUN.parent))
    try:
        import repository  # bench/repository.py
    finally:
        sys.path.remove(str(RUN.parent))
    repo = repository.make_repository(RUN.parent / "models" / "small", tmp_path / "r", 12)
    bench = _bench()
    sets = {tuple(bench.model_modules(m)) for m in sorted(repo.iterdir())}
    assert len(list(repo.iterdir())) == 12 and len(sets) == 4
    assert all(f'name: "{m.name}"' in (m / "config.pbtxt").read_text() for m in repo.iterdir())


def test_steps_time_each_step_a_stage_announces() -> None:
    bench = _bench()
    steps = bench.Steps()
    steps.start("pack", "conda-pack: relocating the environment")
    steps.start("pack", "compiling bytecode")
    steps.start("build", "installing 2 conda packages")
    steps.start("build", "installing 4 PyPI packages (hash-checked)")
    steps.done("build", "", 0.0)
    steps.note("ignored")
    assert sorted(steps.seconds) == ["PyPI install", "bytecode", "conda install", "staging"]
    assert all(s >= 0 for s in steps.seconds.values())


def test_a_steps_seconds_with_compression_beside_them_are_not_taken_out() -> None:
    """The import check's seconds during which the native files were compressed ahead are
    recorded as overlapped, and the floor 'without the check' keeps them: without the check
    that compression would take seconds of its own."""
    bench = _bench()
    steps = bench.Steps()
    steps.spans["import check"] = [(10.0, 12.0), (20.0, 21.0)]
    steps.seconds["import check"] = 3.0
    steps.beside("import check", [(9.0, 10.5), (10.4, 11.0), (11.5, 30.0)])
    assert steps.seconds["import check, overlapped"] == 2.5  # 10-11, 11.5-12, 20-21
    steps.beside("bytecode", [(0.0, 100.0)])
    assert "bytecode, overlapped" not in steps.seconds  # no such step: nothing recorded


def test_the_native_floor_holds_the_elf_files_only(tmp_path: Path) -> None:
    import tarfile

    bench = _bench()
    env = tmp_path / "env"
    (env / "lib").mkdir(parents=True)
    (env / "lib" / "libx.so").write_bytes(Path(sys.executable).resolve().read_bytes())
    (env / "lib" / "x.py").write_text("X = 1\n")
    (env / "lib" / "fake.so").write_text("not ELF")
    (env / "lib" / "link.so").symlink_to("libx.so")
    archive = bench.native_only(env, tmp_path / "native.tar.gz")
    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["lib/libx.so"]


def test_the_kept_files_floor_is_the_archive_but_its_bytecode_caches_and_conda_meta(
        tmp_path: Path) -> None:
    """The floor is read from the packed archive itself (its layout: zipped stdlib and
    packages are one file each), less what a start need not extract; the dir tree it was
    gathered from before holds the stdlib unzipped, and so measured above READY."""
    import io
    import tarfile

    bench = _bench()
    archive = tmp_path / "tritonpack-env.tar.gz"
    members = {"tritonpack.json": b"{}", "lib/libx.so": b"\x7fELF" + bytes(64),
               "lib/python310.zip": b"PK\x05\x06" + bytes(18),
               "lib/python3.10/site-packages/tp_reads/__init__.py": b"HERE = __file__\n",
               "lib/python3.10/site-packages/tp_reads/__pycache__/__init__.cpython-310.pyc": b"",
               "lib/python3.10/lib2to3/Grammar.txt": b"file_input: ENDMARKER\n",
               "conda-meta/python.json": b"{}"}
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("bin/python3")
        link.type, link.linkname = tarfile.SYMTYPE, "python3.10"
        tar.addfile(link)
    with tarfile.open(bench.kept_files(archive, tmp_path / "kept.tar.gz")) as tar:
        assert sorted(tar.getnames()) == [
            "bin/python3", "lib/libx.so", "lib/python3.10/lib2to3/Grammar.txt",
            "lib/python3.10/site-packages/tp_reads/__init__.py", "lib/python310.zip",
            "tritonpack.json"]
        assert tar.extractfile("lib/libx.so").read() == members["lib/libx.so"]  # type: ignore[union-attr]


def test_the_readme_table_is_rendered_from_one_runs_figures() -> None:
    bench = _bench()
    seconds = {"tritonpack_cold": 7.0, "baseline_cold": 10.0, "tritonpack_warm": 0.1,
               "tritonpack_pack": 3.0, "tritonpack_pack_warm": 2.0, "conda_pack_default": 4.0,
               "ready_tritonpack_archive": 0.9, "ready_baseline_archive": 2.0, "ready_dir": 0.3,
               "ready_no_env": 0.2, "import_model_modules": 0.15,
               "ready_archive_stdlib_files": 1.0, "lock_uv": 0.3, "lock_pip_tools": 6.0,
               "remote_pull": None, "extract_kept_files": 0.3}
    result = {"model": "small", "seconds": seconds,
              "bytes": {"tritonpack_archive": 30e6, "baseline_archive": 60e6},
              "ratios": {"cold_build": 0.7, "archive_size": 0.5, "remote_pull_vs_cold": None,
                         "ready_archive_vs_floor": 1.5},
              "bounds": {"cold_build": 0.31}}
    table = bench.markdown([result])
    assert "| cold build | ≤ 0.5 | 0.7 (7.0 s / 10.0 s) |" in table
    assert "| archive size | ≤ 0.6 | 0.5 (30.0 / 60.0 MB) |" in table
    assert "| remote pull (warm registry) / cold build | ≤ 0.2 | n/a |" in table
    assert ("| READY, archive / its floor (READY(dir) + extracting the archive's files except its "
            "bytecode caches and conda-meta, in /tmp, each best of the same alternating rounds) "
            "| ≤ 1.2 | 1.5 (0.90 s / (0.30 + 0.30) s) |") in table
    assert "| cold build, without the conda install both do, the bytecode and the import " \
           "check's seconds that nothing ran beside | | 0.31 |" in table
    # a READY that could not be measured leaves its cells n/a, not the table unwritten
    result["seconds"] = {**seconds, "ready_dir": None}
    result["ratios"] = {**result["ratios"], "ready_archive_vs_floor": None}  # as run.py gives it
    assert "| cold build | ≤ 0.5 | 0.7 (7.0 s / 10.0 s) |" in bench.markdown([result])


def test_floors_are_timed_in_the_ready_rounds_and_kept_best_of_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A floor is measured as what it bounds is: its extraction alternates with the READY
    starts, round after round, and the best of the rounds is kept (one extraction, on a disk
    that deletes and creates many files slowly, measured a floor above READY itself). The
    order turns each round and runs backwards every other one: no start always follows the
    same one, and each waits for the disk to settle first."""
    bench = _bench()
    order: list[str] = []
    times = {"tp": iter([0.5, 3.0, 2.0, 2.5]), "dir": iter([0.1, 1.5, 1.0, 1.2]),
             "kept.tar.gz": iter([0.2, 0.9, 0.4, 0.5])}

    def start(model: Path, python: str, work: Path, runs: int = 1, **kw: object) -> float:
        order.append(model.name)
        return next(times[model.name])

    def extract(archive: Path) -> float:
        order.append(archive.name)
        return next(times[archive.name])

    monkeypatch.setattr(bench, "time_to_ready", start)
    monkeypatch.setattr(bench, "floor_extract", extract)
    monkeypatch.setattr(bench, "settle", lambda: order.append("settle") or 0.0)
    log: list[dict[str, object]] = []
    best = bench.ready_rounds({"tp": (tmp_path / "tp", "3.10", {}),
                               "dir": (tmp_path / "dir", "3.10", {})}, tmp_path, rounds=3,
                              extracts={"kept": tmp_path / "kept.tar.gz"}, log=log)
    assert order[::2] == ["settle"] * 12
    assert order[1::2] == ["tp", "kept.tar.gz", "dir",  # the warm-up: backwards, turned
                           "tp", "dir", "kept.tar.gz",  # as given
                           "dir", "tp", "kept.tar.gz",  # backwards, turned by one
                           "kept.tar.gz", "tp", "dir"]  # turned by two
    assert best == {"tp": 2.0, "dir": 1.0, "kept": 0.4}  # the warm-up's faster: not counted
    assert log == [{"counted": False, "seconds": [("tp", 0.5), ("kept", 0.2), ("dir", 0.1)]},
                   {"counted": True, "seconds": [("tp", 3.0), ("dir", 1.5), ("kept", 0.9)]},
                   {"counted": True, "seconds": [("dir", 1.0), ("tp", 2.0), ("kept", 0.4)]},
                   {"counted": True, "seconds": [("kept", 0.5), ("tp", 2.5), ("dir", 1.2)]}]


def test_settle_syncs_and_waits_no_longer_than_its_cap() -> None:
    """``settle`` is untimed work between starts: however busy the disk, it returns by its
    cap (another job's deletes may never stop)."""
    bench = _bench()
    assert bench.settle(cap=0.2, quiet=10.0) < 1.0


def test_a_floor_extracts_where_triton_does_and_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Triton's python_backend extracts into a fresh /tmp/python_env_XXXXXX with the
    libarchive its server ships: the floor's extraction runs in a fresh directory of /tmp too
    (not the bench's work dir), with that library and Triton's flags, and removes it after."""
    bench = _bench()
    monkeypatch.syspath_prepend(str(RUN.parent))
    import startup

    archive = tmp_path / "kept.tar.gz"
    payload = tmp_path / "libx.so"
    payload.write_bytes(b"\x7fELF" + b"x" * 4096)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(payload, arcname="lib/libx.so")
    seen: list[tuple[Path, bytes, str]] = []
    extract = startup.extract_seconds

    def watched(src: Path, dest: Path) -> tuple[float, float, str]:
        out = extract(src, dest)
        seen.append((dest, (dest / "lib" / "libx.so").read_bytes(), out[2]))
        return out

    monkeypatch.setattr(startup, "extract_seconds", watched)
    seconds = bench.floor_extract(archive)
    assert seconds > 0
    [(dest, data, how)] = seen
    assert dest.parent == Path("/tmp") and dest.name.startswith("tritonpack-floor-")
    assert data == payload.read_bytes()
    assert how == "libarchive"
    assert not dest.exists()
    # the library Triton's python backend extracts with: the one the local server ships
    assert "nvidia_pytriton.libs" in str(startup.triton_libarchive())


def test_a_cache_snapshot_keeps_its_state_while_the_original_changes(tmp_path: Path) -> None:
    """The model's-cache pack runs twice, the second time on a snapshot taken before the
    first: what the first pack adds or replaces (as the stores do: a new file renamed over)
    is not in the snapshot, and no byte is copied (hard links)."""
    bench = _bench()
    cache = tmp_path / "cache"
    (cache / "gzip" / "ab").mkdir(parents=True)
    (cache / "gzip" / "ab" / "entry").write_bytes(b"kept")
    (cache / "channels").symlink_to(tmp_path)
    twin = bench.snapshot(cache, tmp_path / "twin")
    assert (twin / "gzip" / "ab" / "entry").stat().st_ino == (
        cache / "gzip" / "ab" / "entry").stat().st_ino
    assert (twin / "channels").is_symlink()
    (cache / "gzip" / "ab" / "new.tmp").write_bytes(b"changed")
    os.replace(cache / "gzip" / "ab" / "new.tmp", cache / "gzip" / "ab" / "entry")
    (cache / "gzip" / "ab" / "added").write_bytes(b"")
    assert (twin / "gzip" / "ab" / "entry").read_bytes() == b"kept"
    assert sorted(p.name for p in (twin / "gzip" / "ab").iterdir()) == ["entry"]


def test_the_readmes_table_says_met_floor_or_missed_and_only_a_full_run_writes_it(
        tmp_path: Path) -> None:
    """Each ratio of the README's table is met, bounded by its floor from the same run (the
    floor misses the target too) or missed, said in bold; a run of some models only leaves
    the README's table as it was."""
    bench = _bench()
    ratios = {k: t for k, (t, _) in bench.TARGETS.items()}  # each at its target: met
    full = [{"model": m, "ratios": dict(ratios), "bounds": {}, "load_average": {"mean": 1.0}}
            for m in bench.MODELS]
    full[0]["ratios"]["cold_build"] = 0.7
    full[0]["bounds"]["cold_build"] = 0.6  # the floor misses too: bounded
    full[1]["ratios"]["cold_build"] = 0.7
    full[1]["bounds"]["cold_build"] = 0.4  # the floor meets it: the miss is tritonpack's
    full[2]["ratios"]["ready_stdlib_zip_vs_files"] = 1.3  # no floor at all
    readme = tmp_path / "README.md"
    marks = bench.README_MARKS
    readme.write_text(f"# x\n\n{marks[0]}\nLAST-RUN\n{marks[1]}\n\nrest\n", encoding="utf-8")
    assert not bench.write_readme(full[:1], readme)  # a quick run: not the README's
    assert "LAST-RUN" in readme.read_text()
    assert bench.write_readme(full, readme)
    text = readme.read_text()
    assert "LAST-RUN" not in text and text.startswith("# x\n\n") and text.endswith(f"{marks[1]}\n\nrest\n")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()}
    assert rows["cold build"] == "| cold build | ≤ 0.5 | 0.7 (floor 0.6) | **0.7 missed** | 0.5 |"
    assert rows["READY, stdlib zipped / as files"].endswith("| 1 | 1 | **1.3 missed** |")
