"""Where a server start goes, for one packed model: files, bytes, decompression, extraction,
imports, and time to READY in the local tritonserver, in one run.

    python bench/startup.py MODEL_DIR [MODEL_DIR ...]   # each packed with tritonpack (tar.gz)

For each model: the archive's entries by kind and by place (stdlib, lib-dynload,
site-packages, the rest), the seconds to gunzip it alone and to extract it (libarchive,
what Triton uses, when present; else Python's tarfile), the seconds its own ``python3``
takes to import the model's modules once (``-X importtime``), and READY with the archive,
with the same tree as a directory, and with no environment.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import shutil
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import import_seconds, model_modules, time_to_ready, variant


def places(archive: Path) -> dict[str, Any]:
    """Entries by kind and, for files, by place in the environment."""
    kinds = {"file": 0, "dir": 0, "symlink": 0}
    where: dict[str, int] = {}
    size = 0
    with tarfile.open(archive, "r:gz") as tar:
        for m in tar:
            kind = "dir" if m.isdir() else "symlink" if m.issym() else "file"
            kinds[kind] += 1
            if kind != "file":
                continue
            size += m.size
            parts = m.name.split("/")
            if parts[0] == "lib" and len(parts) > 2 and parts[1].startswith("python3"):
                place = {"site-packages": "site-packages", "lib-dynload": "lib-dynload"}.get(
                    parts[2], "zip" if parts[1].endswith(".zip") else "stdlib")
            elif parts[0] == "lib" and len(parts) == 2 and parts[1].endswith(".zip"):
                place = "stdlib zip"
            else:
                place = parts[0]
            where[place] = where.get(place, 0) + 1
    return {"entries": kinds, "files_by_place": dict(sorted(where.items())), "bytes": size}


def gunzip_seconds(archive: Path) -> float:
    """Decompression alone, one core (what libarchive does before writing a byte): CPU s."""
    t0 = time.process_time()
    d = zlib.decompressobj(31)
    with archive.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            d.decompress(chunk)
            while d.unused_data:  # concatenated members
                rest = d.unused_data
                d = zlib.decompressobj(31)
                d.decompress(rest)
    return time.process_time() - t0


def triton_libarchive() -> str | None:
    """The libarchive Triton's python backend extracts with: the one the local tritonserver
    ships (nvidia-pytriton's, 3.6.0 with its own flags), else the system's."""
    try:
        from packer.verify.local import pytriton_root

        libs = sorted(pytriton_root()[1].glob("libarchive-*.so*"))
    except Exception:  # no wheel: the system's library
        libs = []
    return str(libs[0]) if libs else ctypes.util.find_library("archive")


def _load(name: str, depth: int = 0) -> ctypes.CDLL:
    """``name``, with the libraries it needs from its own directory loaded first (the
    wheel's, named by hash, are found by its RPATH only from the server's binaries)."""
    for _ in range(32):
        try:
            return ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            beside = Path(name).parent / str(exc).split(":")[0]
            if "/" not in name or not beside.is_file() or depth > 8:
                raise
            _load(str(beside), depth + 1)
    return ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)


def _libarchive_extract(archive: Path, dest: Path) -> bool:
    name = triton_libarchive()
    if not name:
        return False
    la = _load(name)
    la.archive_read_new.restype = ctypes.c_void_p
    la.archive_write_disk_new.restype = ctypes.c_void_p
    for fn in ("archive_read_support_filter_gzip", "archive_read_support_format_tar",
               "archive_read_free", "archive_write_free", "archive_write_finish_entry",
               "archive_entry_pathname", "archive_entry_set_pathname", "archive_write_header"):
        getattr(la, fn).argtypes = [ctypes.c_void_p] + (
            [ctypes.c_void_p] if fn in ("archive_entry_set_pathname", "archive_write_header")
            else [])
    la.archive_entry_pathname.restype = ctypes.c_char_p
    la.archive_entry_set_pathname.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    la.archive_read_open_filename.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    la.archive_read_next_header.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    la.archive_read_data_block.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                                           ctypes.POINTER(ctypes.c_size_t),
                                           ctypes.POINTER(ctypes.c_int64)]
    la.archive_write_data_block.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                            ctypes.c_int64]
    la.archive_write_disk_set_options.argtypes = [ctypes.c_void_p, ctypes.c_int]
    reader, writer = la.archive_read_new(), la.archive_write_disk_new()
    la.archive_read_support_filter_gzip(reader)
    la.archive_read_support_format_tar(reader)
    la.archive_write_disk_set_options(writer, 0x0004)  # ARCHIVE_EXTRACT_TIME: Triton's flags
    if la.archive_read_open_filename(reader, str(archive).encode(), 10240) != 0:
        return False
    entry = ctypes.c_void_p()
    buf, size, offset = ctypes.c_void_p(), ctypes.c_size_t(), ctypes.c_int64()
    while la.archive_read_next_header(reader, ctypes.byref(entry)) == 0:
        path = la.archive_entry_pathname(entry)
        la.archive_entry_set_pathname(entry, str(dest).encode() + b"/" + path)
        la.archive_write_header(writer, entry)
        while la.archive_read_data_block(reader, ctypes.byref(buf), ctypes.byref(size),
                                         ctypes.byref(offset)) == 0:
            la.archive_write_data_block(writer, buf, size, offset)
        la.archive_write_finish_entry(writer)
    la.archive_read_free(reader)
    la.archive_write_free(writer)
    return True


def extract_seconds(archive: Path, dest: Path) -> tuple[float, float, str]:
    """(wall, CPU) seconds to extract: CPU time (user + system of this process) is what a
    loaded machine disturbs least."""
    t0, c0 = time.perf_counter(), time.process_time()
    if _libarchive_extract(archive, dest):
        return time.perf_counter() - t0, time.process_time() - c0, "libarchive"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    t0, c0 = time.perf_counter(), time.process_time()
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(dest, filter="tar")
    return time.perf_counter() - t0, time.process_time() - c0, "tarfile"


def measure(model: Path, work: Path, tag: str) -> dict[str, Any]:
    """The static figures of one packed model; returns them with the READY variants to time."""
    archive = model / "tritonpack-env.tar.gz"
    tree = work / f"tree-{tag}"
    tree.mkdir(parents=True)
    out: dict[str, Any] = {"model": str(model), **places(archive)}
    out["gunzip_cpu_s"] = round(min(gunzip_seconds(archive) for _ in range(5)), 3)
    walls, cpus = [], []
    for i in range(5):
        dest = work / f"x-{tag}-{i}"
        dest.mkdir()
        wall, cpu, how = extract_seconds(archive, dest)
        walls.append(wall)
        cpus.append(cpu)
        shutil.rmtree(dest)
    out["extract_s"], out["extract_cpu_s"] = round(min(walls), 3), round(min(cpus), 3)
    out["extract_with"] = how
    extract_seconds(archive, tree)
    python = next((tree / "lib").glob("libpython3.*.so.1.0")).name[len("libpython"):-len(".so.1.0")]
    mods = model_modules(model)
    out["modules"] = mods
    out["import_s"] = round(import_seconds(tree, mods), 3)
    dir_model = work / f"dirmodel-{tag}" / model.name
    shutil.copytree(model, dir_model, ignore=shutil.ignore_patterns("tritonpack-env*"))
    shutil.move(str(tree), dir_model / "tritonpack-env")
    out["python"] = python
    out["_variants"] = {"ready_archive": variant(model, work, f"a-{tag}", archive),
                        "ready_dir": variant(dir_model, work, f"d-{tag}",
                                             dir_model / "tritonpack-env")}
    return out


def ready_interleaved(results: list[dict[str, Any]], work: Path, runs: int) -> None:
    """READY for every variant of every model, one start each per round (a loaded machine
    drifts: alternating keeps the comparison fair); the best of ``runs`` rounds."""
    best: dict[tuple[int, str], float] = {}
    for _ in range(runs):
        for i, res in enumerate(results):
            for key, model in res["_variants"].items():
                t = time_to_ready(model, res["python"], work, runs=1)
                if t is not None:
                    best[i, key] = min(best.get((i, key), t), t)
    for i, res in enumerate(results):
        for key in res.pop("_variants"):
            res[key] = round(best[i, key], 3) if (i, key) in best else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tritonpack-startup-"))
    try:
        results = [measure(m.resolve(), work, str(i)) for i, m in enumerate(args.models)]
        ready_interleaved(results, work, args.runs)
        print(json.dumps(results, indent=1), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
