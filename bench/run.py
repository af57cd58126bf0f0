"""tritonpack against the documented manual recipe, measured in one run.

    python bench/run.py            # small, medium and heavy reference models
    python bench/run.py --quick    # the small one only

Every figure is a ratio taken in this run: tritonpack / baseline, where the baseline
is the manual recipe done with the same tools (the env created from the same
channel, `pip install -r requirements.txt` into it, `conda-pack` with its defaults).
Prints a table and writes bench/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

try:  # the installed tritonpack (editable or not), never the source tree by path
    from packer.archive.targz import ParallelGzipWriter
    from packer.archive.writer import DEFAULT_LEVEL
    from packer.build import condainstall
    from packer.build.prefix import Prefix
    from packer.context import prepare
    from packer.core.errors import PackError
    from packer.lock import conda, pychannel
    from packer.lock.pypi import Indexes
    from packer.pack.prune import tree_size
    from packer.pack.stage import PackOptions
    from packer.pack.stage import pack as pack_env
    from packer.pipeline import lock, package
    from packer.settings import Options
    from packer.verify.client import Client
    from packer.verify.local import LocalRuntime
except ImportError as exc:  # pragma: no cover - a set-up problem, said in one line
    raise SystemExit(f"bench/run.py measures the installed tritonpack: {exc}; "
                     "run `pip install -e '.[verify]'` (or the README's set-up) first") from exc

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# name -> (triton release, python override, extra find-links, torch option, extra index)
MODELS: dict[str, tuple[str, str | None, tuple[str, ...], str | None, tuple[str, ...]]] = {
    "small": ("24.10", None, (), None, ()),
    "medium": ("24.10", None, (), None, ()),
    "heavy": ("24.10", "3.11", (), "none", ()),  # its CPU torch: see torch_source()
}


def torch_source(find_links: str | None) -> str | None:
    """Where the heavy model's CPU torch comes from: a wheel directory holding one, else
    PyTorch's CPU index when it answers; None (the heavy model is skipped) otherwise."""
    import socket

    if find_links and any(Path(find_links).glob("torch-*+cpu-*.whl")):
        MODELS["heavy"] = ("24.10", "3.11", (find_links,), "none", ())
        return f"the CPU wheel in {find_links}"
    try:
        socket.create_connection(("download.pytorch.org", 443), timeout=5).close()
    except OSError:
        return None
    MODELS["heavy"] = ("24.10", "3.11", (), "none", (TORCH_CPU_INDEX,))
    return TORCH_CPU_INDEX


@contextmanager
def cache_at(path: Path) -> Iterator[None]:
    old = os.environ.get("TRITONPACK_CACHE")
    os.environ["TRITONPACK_CACHE"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TRITONPACK_CACHE", None)
        else:
            os.environ["TRITONPACK_CACHE"] = old


_STEPS = (  # what a stage's announced step is called in bench/results.json
    ("conda-pack", "staging"), ("pruning", "pruning"), ("importing", "import check"),
    ("compiling bytecode", "bytecode"), ("zipping", "stdlib zip"), ("checking", "env check"),
    ("writing", "writing"), ("installing", "install"), ("resolving", "resolve"),
    ("solving", "solve"), ("packaging Python", "python package"))


class Steps:
    """A reporter that times each step the stages announce (``start`` to the next ``start``
    or ``done``): where tritonpack's seconds go, in the run that measured them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.spans: dict[str, list[tuple[float, float]]] = {}
        self._step: str | None = None
        self._t = time.perf_counter()

    def _close(self) -> None:
        now = time.perf_counter()
        if self._step is not None:
            self.seconds[self._step] = round(self.seconds.get(self._step, 0.0) + now - self._t, 3)
            self.spans.setdefault(self._step, []).append((self._t, now))
        self._t = now

    def beside(self, step: str, spans: list[tuple[float, float]]) -> None:
        """Record as ``"<step>, overlapped"`` the seconds of ``step`` during which something
        else ran (``spans``: the native files compressed ahead, ``compressing_ahead``)."""
        both = sum(max(0.0, min(b, d) - max(a, c))
                   for a, b in self.spans.get(step, []) for c, d in _merged(spans))
        if both:
            self.seconds[f"{step}, overlapped"] = round(both, 3)


    def start(self, stage: str, detail: str = "") -> None:
        self._close()
        text = detail or stage
        name = next((n for key, n in _STEPS if text.startswith(key)), text)
        if name == "install":
            name = "conda install" if "conda" in text else "PyPI install"
        self._step = name

    def done(self, stage: str, summary: str, seconds: float) -> None:
        self._close()
        self._step = None

    def note(self, message: str) -> None:
        pass

    def progress(self, stage: str, current: float, total: float | None, unit: str) -> None:
        pass


def _merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The same seconds as non-overlapping spans, in order."""
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


@contextmanager
def compressing_ahead() -> Iterator[list[tuple[float, float]]]:
    """When the pack's thread compressed each native or large file ahead (``archive.ahead``,
    beside the import check and on through the write): the check's seconds with that beside
    them are not the check's alone (``Steps.beside``)."""
    from packer.archive import writer

    spans: list[tuple[float, float]] = []
    real = writer._compress_one

    def timed_one(*args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return real(*args)
        finally:
            spans.append((t0, time.perf_counter()))

    writer._compress_one = timed_one  # type: ignore[assignment]
    try:
        yield spans
    finally:
        writer._compress_one = real  # type: ignore[assignment]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def du(path: Path) -> int:
    return tree_size(path)[1]


def fresh_cache(work: Path, seed: Path, name: str) -> Path:
    """An empty cache holding only the local python channels (made once, outside timing)."""
    cache = work / name
    cache.mkdir()
    (cache / "channels").symlink_to(seed / "channels")
    return cache


def opts_for(name: str, **kw: Any) -> Options:
    release, python, links, torch, extra = MODELS[name]
    return Options(triton=release, python=python, offline=True, torch=torch,
                   indexes=Indexes(find_links=links, extra_index_urls=extra), **kw)


def baseline_build(model: Path, name: str, cache: Path, work: Path) -> dict[str, Any]:
    """The manual recipe: env from the channel, pip install -r requirements.txt, conda-pack."""
    import conda_pack

    with cache_at(cache):
        ctx = prepare(model, opts_for(name))
        t0 = time.perf_counter()
        channel = pychannel.local_channel(pychannel.find_python(ctx.target.python), "linux-64")
        prefix = work / f"baseline-{name}"
        condainstall.install(conda.solve(ctx.target, [channel.as_uri()], []), prefix)
        conda_installed = time.perf_counter()
        req = work / f"requirements-{name}.txt"
        req.write_text("\n".join(ctx.requirements.pypi) + "\n")
        argv = [str(prefix / "bin" / "python3"), "-m", "pip", "install", "--no-cache-dir",
                "--index-url", "https://pypi.org/simple", "-r", str(req), "-q",
                "--root-user-action", "ignore"]
        for link in MODELS[name][2]:
            argv += ["--find-links", link]
        for url in MODELS[name][4]:
            argv += ["--extra-index-url", url]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
        env["PIP_CONFIG_FILE"] = os.devnull
        subprocess.run(argv, check=True, env=env)
        installed = time.perf_counter()
        archive = work / f"baseline-{name}.tar.gz"
        conda_pack.pack(prefix=str(prefix), output=str(archive), force=True)  # its defaults
        done = time.perf_counter()
    return {"seconds": done - t0, "pack_seconds": done - installed, "archive": archive,
            "conda_install_seconds": conda_installed - t0, "prefix": prefix,
            "env_bytes": du(prefix)}


def warm_up_install(model: Path, name: str, work: Path, seed: Path) -> None:
    """One conda install of the model's Python from the local channel, untimed and thrown
    away, before either side's cold build. The first install after the bench makes its
    channels was the slowest of its run in 11 runs of 13, whichever side it was (3.8-8.1 s
    against 1.3-5.0 s, the difference in the kernel's time), and tritonpack's cold build is
    timed first: both sides' installs now come after one."""
    cache = fresh_cache(work, seed, f"cache-warm-{name}")
    prefix = work / f"warm-{name}"
    with cache_at(cache):
        ctx = prepare(model, opts_for(name))
        channel = pychannel.local_channel(pychannel.find_python(ctx.target.python), "linux-64")
        condainstall.install(conda.solve(ctx.target, [channel.as_uri()], []), prefix)
    shutil.rmtree(prefix, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)


def scanned(model: Path, name: str) -> dict[str, tuple[str, ...]]:
    """What the model's pack imports after pruning, as the pipeline passes it (AST scan)."""
    return prepare(model, opts_for(name)).report.to_import()


def tritonpack_pack_only(prefix: Path, python: str, work: Path, cache: Path,
                         imports: dict[str, tuple[str, ...]]) -> tuple[float, dict[str, float]]:
    """tritonpack's pack step alone on the same prefix (conda-pack's file list, pruned,
    the model's modules imported, bytecode, stdlib zip, parallel gzip), written and
    committed, with ``cache``: an empty one (every byte compiled and compressed) or the one
    the model's own build filled (its bytecode and its large files' gzip members are reused,
    as a second pack of the same packages finds them). Returns the seconds and where they
    went (``Steps``)."""
    dest = work / "tp-pack-only" / "tritonpack-env.tar.gz"
    dest.parent.mkdir(exist_ok=True)
    copy = work / "tp-pack-prefix" / "env"
    shutil.copytree(prefix, copy, symlinks=True)
    steps = Steps()
    with cache_at(cache), compressing_ahead() as spans:
        t0 = time.perf_counter()
        with pack_env(Prefix(copy, python, (), ()), dest, PackOptions(),
                      reporter=steps, **imports) as staged:
            staged.commit()
        took = time.perf_counter() - t0
    steps.beside("import check", spans)
    shutil.rmtree(copy.parent)
    return took, steps.seconds


def snapshot(cache: Path, dest: Path) -> Path:
    """A copy of ``cache`` as it is now, its files hard links: a store replaces an entry
    (a new file renamed over it) and never writes into one, so what a pack adds or replaces
    in either copy leaves the other as it was."""
    shutil.copytree(cache, dest, symlinks=True, copy_function=os.link)
    return dest


def conda_pack_only(prefix: Path, work: Path) -> float:
    """conda-pack with its defaults on the same prefix, again, beside tritonpack's pack."""
    import conda_pack

    archive = work / "conda-pack-again.tar.gz"
    t0 = time.perf_counter()
    conda_pack.pack(prefix=str(prefix), output=str(archive), force=True)
    took = time.perf_counter() - t0
    archive.unlink()
    return took


def is_native(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"\x7fELF"


@contextmanager
def targz_at(dest: Path) -> Iterator[tarfile.TarFile]:
    """A tar.gz written as tritonpack writes its archive (zlib-ng's gzip members at its
    default level, ``packer.archive.targz``): a floor's archive compresses as the one it
    bounds does."""
    with dest.open("wb") as raw:
        gz = ParallelGzipWriter(raw, DEFAULT_LEVEL)
        try:
            with tarfile.TarFile(fileobj=gz, mode="w",  # type: ignore[arg-type]
                                 format=tarfile.GNU_FORMAT) as tar:
                yield tar
        except BaseException:
            gz.abort()
            raise
        gz.close()


def native_only(env: Path, dest: Path) -> Path:
    """The ELF files of ``env`` alone (its native libraries and executables, which both sides
    ship and neither pruning nor gzip shrinks much), as tritonpack compresses them: its size
    is a floor for any archive of this env, extracting it a floor for READY with one."""
    with targz_at(dest) as tar:
        for path in sorted(env.rglob("*")):
            if path.is_file() and not path.is_symlink() and is_native(path):
                tar.add(path, arcname=path.relative_to(env).as_posix())
    return dest


def kept_files(archive: Path, dest: Path) -> Path:
    """What this design extracts as files, read from the archive itself: every entry of it
    (the native files, the distributions and stdlib modules kept as files, the metadata, the
    two zips as one file each, the folders and links) but the bytecode caches (a start may
    compile instead) and conda-meta (Triton never reads it). A start with nothing to extract
    plus extracting this is READY's floor with this layout."""
    with tarfile.open(archive, "r:gz") as src, targz_at(dest) as tar:
        for member in src:
            parts = member.name.split("/")
            if "__pycache__" in parts or parts[0] == "conda-meta":
                continue
            tar.addfile(member, src.extractfile(member) if member.isfile() else None)
    return dest


def not_ready(model: Path, why: str, log: str) -> None:
    """A READY figure that cannot be measured says why, with the server log's tail."""
    tail = "\n".join(log.splitlines()[-15:])
    print(f"   READY not measured for {model.parent.name}/{model.name}: {why}\n{tail}",
          file=sys.stderr, flush=True)


def time_to_ready(model: Path, python: str, work: Path, library_path: tuple[Path, ...] = (),
                  runs: int = 2, python_home: Path | None = None) -> float | None:
    """Server start to model READY in the local tritonserver (best of ``runs``)."""
    times = []
    for i in range(runs):
        server_work = work / f"ready-{model.name}-{i}-{time.monotonic_ns()}"
        repo = server_work / "repo"
        repo.mkdir(parents=True)
        (repo / model.name).symlink_to(model)
        engine = LocalRuntime(library_path, python_home)
        t0 = time.perf_counter()
        server = engine.start(repo, python, server_work, complete_config=True)
        try:
            client = Client(server.url, timeout=300)
            if not client.wait_live(time.monotonic() + 120, server.alive):
                not_ready(model, "the server never became live", server.log())
                return None
            try:
                client.load(model.name)
            except Exception as exc:
                not_ready(model, f"load failed: {exc}", server.log())
                return None
            times.append(time.perf_counter() - t0)
        finally:
            server.stop()
            shutil.rmtree(server_work, ignore_errors=True)
    return min(times)


def floor_extract(archive: Path) -> float:
    """Wall seconds to extract ``archive`` where Triton extracts an environment (a fresh
    directory in /tmp: python_backend's ``mkdtemp("/tmp/python_env_XXXXXX")``), with
    libarchive and Triton's flags (``bench/startup.py``); removed afterwards, as a stopped
    server removes its copy."""
    from startup import extract_seconds  # bench/startup.py, beside this file

    dest = Path(tempfile.mkdtemp(prefix="tritonpack-floor-", dir="/tmp"))
    try:
        return extract_seconds(archive, dest)[0]
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def settle(cap: float = 2.0, quiet: float = 0.3) -> float:
    """``os.sync``, then wait until the disk under /tmp has discarded nothing for ``quiet``
    seconds (ext4 mounted with ``discard`` trims what the last start's removal freed after
    its commit: here for about 2 s after a 400 MB tree went, beside whatever starts next),
    ``cap`` at most: another job's deletes may never stop. Untimed; the seconds waited."""
    t0 = time.perf_counter()
    os.sync()
    st = os.stat("/tmp")
    stat = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/stat")

    def discarded() -> int | None:
        try:
            fields = stat.read_text().split()
            return int(fields[13]) if len(fields) > 13 else None  # discard sectors (4.18+)
        except (OSError, ValueError):
            return None

    seen, since = discarded(), time.perf_counter()
    while seen is not None and time.perf_counter() - t0 < cap:
        time.sleep(0.05)
        now = discarded()
        if now != seen:
            seen, since = now, time.perf_counter()
        elif time.perf_counter() - since >= quiet:
            break
    return time.perf_counter() - t0


def ready_rounds(starts: dict[str, tuple[Path, str, dict[str, Any]]], work: Path,
                 rounds: int = 2, extracts: dict[str, Path] | None = None,
                 log: list[dict[str, Any]] | None = None, warm_up: bool = True,
                 ) -> dict[str, float | None]:
    """READY for several variants, one start of each per round, best of ``rounds``: a loaded
    machine drifts over a minute, so variants compared in one table alternate. The order
    turns by one each round and runs backwards every other round, so that no variant always
    follows the same one (turning alone keeps each one's predecessor: the heavy model's
    zipped archive followed the 690 MB floor extraction in every round but the first), and
    each start waits for the disk to settle first (``settle``, untimed). A first round
    (``warm_up``) is run and not counted: this machine's disk writes the first few hundred MB
    after a quiet spell twice as fast as later ones (heavy's recipe archive started in 12 s
    in a first round, 23-24 s in the next three), and whichever start came first or second
    got that. ``extracts``: archives whose extraction is part of a floor, timed in the same
    rounds (``floor_extract``) and also best of ``rounds``, so that a floor is measured as the
    figure it bounds is. ``log`` gets each round's order and figures."""
    extracts = extracts or {}
    best: dict[str, float | None] = dict.fromkeys([*starts, *extracts])

    def keep(key: str, t: float | None) -> None:
        if t is not None:
            prev = best[key]
            best[key] = round(t if prev is None else min(prev, t), 3)

    jobs: list[tuple[str, Callable[[], float | None]]] = [
        *((key, partial(time_to_ready, model, python, work, runs=1, **kw))
          for key, (model, python, kw) in starts.items()),
        *((key, partial(floor_extract, archive)) for key, archive in extracts.items())]
    for i in range(-1 if warm_up else 0, rounds):
        order = jobs if i % 2 == 0 else jobs[::-1]
        turned = order[i % len(order):] + order[:i % len(order)]
        figures: list[tuple[str, float | None]] = []
        for key, job in turned:
            settle()
            t = job()
            if i >= 0:
                keep(key, t)
            figures.append((key, None if t is None else round(t, 3)))
        if log is not None:
            log.append({"counted": i >= 0, "seconds": figures})
    return best


def model_modules(model: Path) -> list[str]:
    """The third-party modules ``1/model.py`` imports, dotted as imported (AST only)."""
    import ast

    tree = ast.parse((model / "1" / "model.py").read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    skip = set(sys.stdlib_module_names) | {"triton_python_backend_utils"}
    return sorted(n for n in names if n.split(".")[0] not in skip)


_IMPORTTIME = re.compile(r"^import time:\s+\d+\s+\|\s+(\d+)\s+\|( *)\S", re.M)


def import_seconds(env: Path, modules: list[str], runs: int = 3) -> float:
    """What the env's own python3 takes to import ``modules`` once (numpy first, as the stub
    does): the top-level cumulative times of ``-X importtime``, best of ``runs``."""
    code = "; ".join(f"import {m}" for m in dict.fromkeys(["numpy", *modules]))
    best = float("inf")
    for _ in range(runs):
        res = subprocess.run([str(env / "bin" / "python3"), "-X", "importtime", "-c", code],
                             capture_output=True, text=True, check=True, timeout=300)
        total = sum(int(cum) for cum, indent in _IMPORTTIME.findall(res.stderr)
                    if indent == " ")
        best = min(best, total / 1e6)
    return best


def variant(model: Path, work: Path, suffix: str, env: Path | None) -> Path:
    """A copy of ``model`` whose config points at ``env`` (or at nothing)."""
    dest = work / "variants" / suffix / model.name
    shutil.copytree(model, dest, ignore=shutil.ignore_patterns("tritonpack-env*"))
    text = (dest / "config.pbtxt").read_text()
    start = text.find("parameters {")
    if start >= 0:
        text = text[:start]
    if env is not None:
        target = dest / env.name
        if env.is_dir():
            shutil.copytree(env, target, symlinks=True)
        else:
            shutil.copy2(env, target)
        text += ('parameters { key: "EXECUTION_ENV_PATH" value { string_value: '
                 f'"$$TRITON_MODEL_DIRECTORY/{env.name}" }} }}\n')
    (dest / "config.pbtxt").write_text(text)
    return dest


def lock_time(model: Path, name: str, resolver: str, cache: Path) -> float:
    with cache_at(cache):
        opts = opts_for(name, resolver=resolver)
        # pip-tools resolves for the interpreter it runs on: lock both for this Python
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        opts = Options(**{**opts.__dict__, "python": here})
        seconds, _ = timed(lambda: lock(model, opts, upgrade=True))
    return seconds


class LoadAverage:
    """The machine's 1-minute load average, sampled every few seconds while a model is
    measured: every ratio is reported with it (the machine may be shared)."""

    def __init__(self, every: float = 5.0) -> None:
        self.samples = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every,), daemon=True)
        self._thread.start()

    def _sample(self, every: float) -> None:
        while not self._stop.wait(every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])
        return {"mean": round(statistics.mean(self.samples), 2),
                "max": round(max(self.samples), 2), "cpus": os.cpu_count() or 0}


def bench_model(name: str, work: Path, seed: Path) -> dict[str, Any]:
    load = LoadAverage()
    try:
        result = measure_model(name, work, seed)
    finally:
        result_load = load.stop()  # the sampler stops whatever happened
    result["load_average"] = result_load
    print(f"   load average (1 min) mean {result_load['mean']}, max {result_load['max']} "
          f"on {result_load['cpus']} cpus", flush=True)
    return result


def stripped_archive(src: Path, work: Path, name: str, cache: Path) -> int | None:
    """The archive's bytes with ``--strip`` (the model's cache: only the pack is new); None
    without binutils."""
    model = work / "tp-strip" / name
    shutil.copytree(src, model)
    try:
        with cache_at(cache):
            package(model, opts_for(name, strip=True))
    except PackError as exc:
        print(f"   --strip: not measured ({exc})", flush=True)
        return None
    return (model / "tritonpack-env.tar.gz").stat().st_size


def measure_model(name: str, work: Path, seed: Path) -> dict[str, Any]:
    print(f"== {name}", flush=True)
    src = HERE / "models" / name
    tp_model = work / "tp" / name
    shutil.copytree(src, tp_model)
    release = MODELS[name][0]

    warm_up_install(src, name, work, seed)
    cache = fresh_cache(work, seed, f"cache-tp-{name}")
    with cache_at(cache):
        cold_steps = Steps()
        with compressing_ahead() as spans:
            cold, res = timed(lambda: package(tp_model, opts_for(name), cold_steps))
        cold_steps.beside("import check", spans)
        warm, _ = timed(lambda: package(tp_model, opts_for(name)))
    python = res.archive.python
    print(f"   tritonpack cold {cold:.1f}s, warm {warm:.2f}s", flush=True)
    pulled = remote_pull(tp_model, name, cache, work, seed)

    base = baseline_build(src, name, fresh_cache(work, seed, f"cache-base-{name}"), work)
    print(f"   baseline {base['seconds']:.1f}s", flush=True)
    with cache_at(cache):
        model_imports = scanned(src, name)
    # an empty cache twice (two fresh caches), as conda-pack packs twice below: each side's
    # best, and where that best one's seconds went
    tp_pack, pack_steps = min(
        (tritonpack_pack_only(base["prefix"], python, work,
                              fresh_cache(work, seed, f"cache-pack-{name}-{i}"), model_imports)
         for i in range(2)), key=lambda r: r[0])
    # the model's cache twice too, the second time on a copy of it as the build left it (not
    # as the first pack left it): each side's best of two
    twin = snapshot(cache, work / f"cache-tp-{name}-twin")
    tp_pack_warm, pack_steps_warm = min(
        (tritonpack_pack_only(base["prefix"], python, work, c, model_imports)
         for c in (cache, twin)), key=lambda r: r[0])
    shutil.rmtree(twin, ignore_errors=True)
    # conda-pack's pack twice (in the recipe, then beside tritonpack's): its best
    cp_pack = min(base["pack_seconds"], conda_pack_only(base["prefix"], work))
    print(f"   pack alone: tritonpack {tp_pack:.1f}s (empty cache), {tp_pack_warm:.1f}s (the "
          f"model's cache); conda-pack {cp_pack:.1f}s", flush=True)
    env_mb = base["env_bytes"] / 1e6

    dir_model = work / "tp-dir" / name
    shutil.copytree(src, dir_model)
    files_model = work / "tp-files" / name  # the stdlib as files, not zipped: the rule's check
    shutil.copytree(src, files_model)
    with cache_at(cache):
        # the documented choice for images: unpacked, with hash-checked bytecode
        package(dir_model, opts_for(name), pack_options=PackOptions(format="dir", bytecode="all"))
        package(files_model, opts_for(name), pack_options=PackOptions(stdlib_zip=False))
    strip_bytes = stripped_archive(src, work, name, cache)
    # the floors' archives, made before the rounds: extracting them is timed in the rounds
    native = native_only(dir_model / "tritonpack-env", work / f"native-{name}.tar.gz")
    kept = kept_files(tp_model / "tritonpack-env.tar.gz", work / f"kept-{name}.tar.gz")
    # no environment: the stub runs on the Python that runs this bench (its numpy is found
    # through a venv with numpy < 2 that the bench makes once)
    no_env_py = f"{sys.version_info.major}.{sys.version_info.minor}"
    none_model = variant(src, work, "none", None)
    (none_model / "1" / "model.py").write_text(NO_ENV_MODEL)  # what an installed Python has
    rounds_log: list[dict[str, Any]] = []
    ready = ready_rounds({
        "tp": (variant(tp_model, work, "tp", tp_model / "tritonpack-env.tar.gz"), python, {}),
        "files": (variant(files_model, work, "files", files_model / "tritonpack-env.tar.gz"),
                  python, {}),
        "base": (variant(src, work, "base", base["archive"]), python, {}),
        "dir": (variant(dir_model, work, "dir", dir_model / "tritonpack-env"), python, {}),
        "none": (none_model, no_env_py, {"library_path": (Path(sys.base_prefix) / "lib",),
                                         "python_home": Path(sys.base_prefix)}),
    }, work, rounds=4, extracts={"native": native, "kept": kept}, log=rounds_log)
    ready_tp, ready_files, ready_base = ready["tp"], ready["files"], ready["base"]
    ready_dir, ready_none = ready["dir"], ready["none"]
    native_extract, kept_extract = ready["native"] or 0.0, ready["kept"] or 0.0
    imports = import_seconds(dir_model / "tritonpack-env", model_modules(src))
    shown = {k: "n/a" if v is None else f"{v:.2f}s" for k, v in ready.items()}
    print(f"   READY archive {shown['tp']} (stdlib as files: {shown['files']}), dir "
          f"{shown['dir']}, no env {shown['none']}; extracting (best of the same rounds) the "
          f"native files {shown['native']}, the archive except its bytecode caches "
          f"{shown['kept']}; the env's python3 imports the model's modules in {imports:.3f}s", flush=True)

    lock_model = work / "lock" / name
    shutil.copytree(src, lock_model)
    uv = lock_time(lock_model, name, "uv", fresh_cache(work, seed, f"cache-uv-{name}"))
    piptools = lock_time(lock_model, name, "pip-tools", fresh_cache(work, seed, f"cache-pt-{name}"))

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a and b else None

    def without(total: float, steps: dict[str, float], *names: str) -> float:
        """``total`` less the seconds of ``names``, but for those in which the native files
        were compressed beside them (``Steps.beside``): without the step, that work would
        take seconds of its own."""
        return total - sum(steps.get(n, 0.0) - steps.get(f"{n}, overlapped", 0.0)
                           for n in names)

    readiness = ["bytecode", "import check"]  # work conda-pack does not do, for READY

    archive_bytes = (tp_model / "tritonpack-env.tar.gz").stat().st_size
    return {
        "model": name, "triton": release, "python": python,
        "env_mb": round(env_mb, 1),
        "seconds": {
            "tritonpack_cold": round(cold, 2), "tritonpack_warm": round(warm, 3),
            "baseline_cold": round(base["seconds"], 2),
            "tritonpack_pack": round(tp_pack, 2), "tritonpack_pack_warm": round(tp_pack_warm, 2),
            "conda_pack_default": round(cp_pack, 2),
            "ready_tritonpack_archive": ready_tp, "ready_baseline_archive": ready_base,
            "ready_dir": ready_dir, "ready_no_env": ready_none,
            "ready_archive_stdlib_files": ready_files, "import_model_modules": round(imports, 3),
            "lock_uv": round(uv, 2), "lock_pip_tools": round(piptools, 2),
            "remote_pull": pulled[0] if pulled else None,
            "baseline_conda_install": round(base["conda_install_seconds"], 2),
            "extract_native_only": round(native_extract, 3),
            "extract_kept_files": round(kept_extract, 3),
        },
        "steps": {"tritonpack_cold": cold_steps.seconds, "tritonpack_pack": pack_steps,
                  "tritonpack_pack_warm": pack_steps_warm},
        "ready_rounds": rounds_log,  # each round's order and seconds (best of the counted)
        "remote_pull_mb_per_s": pulled[1] if pulled else None,
        "bytes": {"tritonpack_archive": archive_bytes, "tritonpack_archive_strip": strip_bytes,
                  "baseline_archive": base["archive"].stat().st_size,
                  "native_only_archive": native.stat().st_size},
        "ratios": {
            "cold_build": ratio(cold, base["seconds"]),
            "warm_vs_cold": ratio(warm, cold),
            "archive_size": ratio(archive_bytes, base["archive"].stat().st_size),
            "archive_size_strip": ratio(strip_bytes, base["archive"].stat().st_size),
            "pack_throughput": ratio(env_mb / tp_pack, env_mb / cp_pack),
            "pack_throughput_warm": ratio(env_mb / tp_pack_warm, env_mb / cp_pack),
            "ready_archive": ratio(ready_tp, ready_base),
            # READY(archive) against this design's floor: a start with nothing to extract plus
            # extracting the archive except its bytecode caches and conda-meta (this layout's files)
            "ready_archive_vs_floor": (ratio(ready_tp, ready_dir + kept_extract)
                                       if ready_dir else None),
            # READY(dir) - READY(no env), in units of the env's own import of the model's
            # modules: what a start costs beyond importing what the model imports
            "ready_dir_overhead_vs_import": (
                round((ready_dir - ready_none) / imports, 3)
                if ready_dir and ready_none and imports else None),
            "ready_stdlib_zip_vs_files": ratio(ready_tp, ready_files),
            "lock_uv_speedup": ratio(piptools, uv),
            "remote_pull_vs_cold": ratio(pulled[0], cold) if pulled else None,
        },
        # what bounds a ratio, measured in this run: the same ratio with a part taken out
        "bounds": {
            # the native files alone, at tritonpack's gzip level: no archive of this env is
            # smaller, whatever else is pruned
            "archive_size": ratio(native.stat().st_size, base["archive"].stat().st_size),
            # a start with nothing to extract, plus extracting the native files alone (both
            # floors' archives are compressed as tritonpack's is: zlib-ng at its level)
            "ready_archive": ratio((ready_dir or 0) + native_extract, ready_base),
            # ... plus the files of the distributions the site zip cannot take (sitezip):
            # what this design still extracts as files
            "ready_archive_kept_files": ratio((ready_dir or 0) + kept_extract, ready_base),
            # the pack without compiling bytecode and the import check that finds what to
            # compile (the work done for READY that conda-pack does not do); of the check,
            # only the seconds with no compression ahead beside them (those, the write's)
            "pack_throughput": ratio(cp_pack, without(tp_pack, pack_steps, *readiness)),
            "pack_throughput_warm": ratio(cp_pack, without(tp_pack_warm, pack_steps_warm,
                                                           *readiness)),
            # both sides install the same conda packages first (the local Python's .tar.bz2
            # here); without it, and without the READY work
            "cold_build": ratio(without(cold, cold_steps.seconds, "conda install", *readiness),
                                base["seconds"] - base["conda_install_seconds"]),
        },
    }


NO_ENV_MODEL = """\
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy())])
            for r in requests]
"""

TARGETS = {  # ratio -> (target, better when)
    "cold_build": (0.5, "<="), "warm_vs_cold": (0.05, "<="), "archive_size": (0.6, "<="),
    "archive_size_strip": (0.6, "<="),
    "pack_throughput": (1.5, ">="), "pack_throughput_warm": (2.0, ">="),
    "ready_archive": (0.4, "<="), "ready_archive_vs_floor": (1.2, "<="),
    "ready_dir_overhead_vs_import": (1.2, "<="), "ready_stdlib_zip_vs_files": (1.0, "<="),
    "lock_uv_speedup": (5.0, ">="),
    "remote_pull_vs_cold": (0.2, "<="),
}


def remote_pull(model: Path, name: str, cache: Path, work: Path,
                seed: Path) -> tuple[float, float] | None:
    """A second runner with an empty cache and a warm registry (the CNCF distribution registry
    on loopback): seconds to a packed model, and MB/s of the pull. None without a registry."""
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        print("   remote pull: skipped (no docker-registry binary; apt install docker-registry)")
        return None
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = work / f"registry-{name}"
    root.mkdir()
    (root / "config.yml").write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([binary, "serve", str(root / "config.yml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        ref = f"oci://127.0.0.1:{port}/bench/{name}"
        with cache_at(cache):
            package(model, opts_for(name, cache_to=(ref,)))  # runner A pushes (a local hit)
        second = work / "runner-b" / name
        shutil.copytree(model, second)
        (second / "tritonpack-env.tar.gz").unlink()
        with cache_at(fresh_cache(work, seed, f"cache-remote-{name}")):
            seconds, res = timed(lambda: package(second, opts_for(name, cache_from=(ref,))))
        if not res.cached:
            print("   remote pull: the registry missed; not measured")
            return None
        mb = res.archive.size / 1e6
        print(f"   runner B, warm registry: {seconds:.2f}s ({mb / seconds:.0f} MB/s end to end)",
              flush=True)
        return round(seconds, 2), round(mb / seconds, 1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def table(results: list[dict[str, Any]]) -> str:
    names = [r["model"] for r in results]
    lines = [f"{'ratio':<22}{'target':>9}" + "".join(f"{n:>10}" for n in names)]
    for key, (target, how) in TARGETS.items():
        cells = []
        for r in results:
            v = r["ratios"].get(key)
            ok = v is not None and (v <= target if how == "<=" else v >= target)
            cells.append(f"{v if v is not None else 'n/a':>9}{'' if v is None else (' ' if ok else '!')}")
        lines.append(f"{key:<22}{how + str(target):>9}" + "".join(cells))
    lines.append(f"{'load average':<31}" + "".join(
        f"{r.get('load_average', {}).get('mean', 'n/a'):>10}" for r in results))
    lines.append("what bounds a missed ratio: the same ratio with the part that bounds it taken "
                 "out, this run (bench/results.md says which part)")
    for key in results[0].get("bounds", {}):
        cells = [f"{r['bounds'].get(key) or 'n/a':>10}" for r in results]
        lines.append(f"  {key + ' without it':<32}" + "".join(cells))
    return "\n".join(lines)


_NAMES = {"small": "small (numpy, pyyaml, attrs, tqdm)",
          "medium": "medium (scipy, pandas, pillow, opencv)", "heavy": "heavy (torch CPU)"}


def markdown(results: list[dict[str, Any]]) -> str:
    """The README's table: each ratio with the seconds or megabytes it is made of, then what
    bounds a missed one (``bounds``), all from this run."""
    def cell(r: dict[str, Any], key: str) -> str:
        v, sec, mb = r["ratios"].get(key), r["seconds"], r["bytes"]
        if v is None:
            return "n/a"
        # only this cell's figures are formatted: another cell's may be missing (None)
        parts: dict[str, Callable[[], str]] = {
            "cold_build": lambda: f"{sec['tritonpack_cold']:.1f} s / {sec['baseline_cold']:.1f} s",
            "warm_vs_cold": lambda: f"{sec['tritonpack_warm']:.2f} s",
            "archive_size": lambda: f"{mb['tritonpack_archive'] / 1e6:.1f} / "
                            f"{mb['baseline_archive'] / 1e6:.1f} MB",
            "archive_size_strip": lambda: f"{mb['tritonpack_archive_strip'] / 1e6:.1f} / "
                                  f"{mb['baseline_archive'] / 1e6:.1f} MB",
            "pack_throughput": lambda: f"{sec['tritonpack_pack']:.1f} s / {sec['conda_pack_default']:.1f} s",
            "pack_throughput_warm": lambda: f"{sec['tritonpack_pack_warm']:.1f} s / "
                                    f"{sec['conda_pack_default']:.1f} s",
            "ready_archive": lambda: f"{sec['ready_tritonpack_archive']:.2f} s / "
                             f"{sec['ready_baseline_archive']:.2f} s",
            "ready_archive_vs_floor": lambda: f"{sec['ready_tritonpack_archive']:.2f} s / "
                                      f"({sec['ready_dir']:.2f} + {sec['extract_kept_files']:.2f}) s",
            "ready_dir_overhead_vs_import": lambda: f"({sec['ready_dir']:.2f} − {sec['ready_no_env']:.2f}) s"
                                            f" / {sec['import_model_modules']:.2f} s",
            "ready_stdlib_zip_vs_files": lambda: f"{sec['ready_tritonpack_archive']:.2f} s / "
                                         f"{sec['ready_archive_stdlib_files']:.2f} s",
            "lock_uv_speedup": lambda: f"{sec['lock_uv']:.2f} s / {sec['lock_pip_tools']:.1f} s",
            "remote_pull_vs_cold": lambda: f"{sec['remote_pull']:.2f} s" if sec.get("remote_pull") else "",
        }
        text = parts[key]()
        return f"{v:g} ({text})" if text else f"{v:g}"

    labels = {
        "cold_build": "cold build", "warm_vs_cold": "warm re-run / cold",
        "archive_size": "archive size",
        "archive_size_strip": "archive size, `--strip` (off by default)",
        "pack_throughput": "pack throughput (× conda-pack), empty cache",
        "pack_throughput_warm": "pack throughput (× conda-pack), the model's cache",
        "ready_archive": "time to READY, archive",
        "ready_archive_vs_floor": "READY, archive / its floor (READY(dir) + extracting the "
                                  "archive's files except its bytecode caches and conda-meta, in "
                                  "/tmp, each best of the same alternating rounds)",
        "ready_dir_overhead_vs_import": "READY(dir) − READY(no env), × the env's own import of "
                                        "the model's modules",
        "ready_stdlib_zip_vs_files": "READY, stdlib zipped / as files",
        "lock_uv_speedup": "lock, uv speed-up over pip-tools",
        "remote_pull_vs_cold": "remote pull (warm registry) / cold build"}
    floors = {
        "archive_size": "archive: the native files alone, gzip'd as tritonpack's archive is",
        "ready_archive": "READY: READY(dir) + extracting the native files (best of the "
                         "READY rounds)",
        "ready_archive_kept_files": "READY: READY(dir) + extracting the archive's own files except "
                                    "its bytecode caches and conda-meta (native files, packages "
                                    "and stdlib modules kept as files, metadata, the two zips; "
                                    "best of the READY rounds)",
        "pack_throughput": "pack throughput, empty cache, without the bytecode and the seconds "
                           "of the import check that nothing ran beside (the native files' "
                           "compression overlaps it)",
        "pack_throughput_warm": "pack throughput, the model's cache, without them",
        "cold_build": "cold build, without the conda install both do, the bytecode and the "
                      "import check's seconds that nothing ran beside"}
    head = "| ratio | target | " + " | ".join(_NAMES.get(r["model"], r["model"]) for r in results)
    lines = [head + " |", "|---|---|" + "---|" * len(results)]
    for key, (target, how) in TARGETS.items():
        sign = "≤" if how == "<=" else "≥"
        lines.append(f"| {labels[key]} | {sign} {target:g} | "
                     + " | ".join(cell(r, key) for r in results) + " |")
    lines.append("| load average (1 min) while measured: mean / max | | " + " | ".join(
        f"{r['load_average']['mean']:g} / {r['load_average']['max']:g} "
        f"({r['load_average']['cpus']} cpus)" if r.get("load_average") else "n/a"
        for r in results) + " |")
    lines.append("| *what bounds a missed ratio (same run):* | | " + " | " * (len(results) - 1)
                 + " |")
    for key, label in floors.items():
        lines.append(f"| {label} | | " + " | ".join(
            f"{r['bounds'][key]:g}" if r.get("bounds", {}).get(key) else "n/a"
            for r in results) + " |")
    return "\n".join(lines) + "\n"


# each missed ratio's floor (``bounds``): the ratio with the part that bounds it taken out
_BOUNDED_BY = {"cold_build": "cold_build", "archive_size": "archive_size",
               "archive_size_strip": "archive_size",
               "pack_throughput": "pack_throughput", "pack_throughput_warm": "pack_throughput_warm",
               "ready_archive": "ready_archive_kept_files"}
README_MARKS = ("<!-- bench/run.py writes this table -->", "<!-- end of bench/run.py's table -->")
_SHORT = {"cold_build": "cold build", "warm_vs_cold": "warm re-run / cold",
          "archive_size": "archive size", "archive_size_strip": "archive size, `--strip`",
          "pack_throughput": "pack, empty cache (× conda-pack)",
          "pack_throughput_warm": "pack, the model's cache (× conda-pack)",
          "ready_archive": "time to READY, archive", "ready_archive_vs_floor": "READY / its floor",
          "ready_dir_overhead_vs_import": "READY(dir) overhead",
          "ready_stdlib_zip_vs_files": "READY, stdlib zipped / as files",
          "lock_uv_speedup": "lock, uv over pip-tools", "remote_pull_vs_cold": "remote pull / cold"}


def verdict(key: str, r: dict[str, Any]) -> str:
    """One cell of the README's table: the ratio, and met, bounded (the floor measured in the
    same run misses the target too: the miss is that part's) or missed."""
    target, how = TARGETS[key]
    v = r["ratios"].get(key)
    if v is None:
        return "n/a"

    def meets(x: float) -> bool:
        return x <= target if how == "<=" else x >= target

    if meets(v):
        return f"{v:g}"
    bound = r.get("bounds", {}).get(_BOUNDED_BY.get(key, ""))
    if bound is not None and not meets(bound):
        return f"{v:g} (floor {bound:g})"
    return f"**{v:g} missed**"


def summary(results: list[dict[str, Any]]) -> str:
    """The README's short table: every ratio with its verdict, and the run's load."""
    lines = ["| tritonpack / recipe | target | " + " | ".join(r["model"] for r in results) + " |",
             "|---|---|" + "---|" * len(results)]
    for key, (target, how) in TARGETS.items():
        sign = "≤" if how == "<=" else "≥"
        lines.append(f"| {_SHORT.get(key, key)} | {sign} {target:g} | "
                     + " | ".join(verdict(key, r) for r in results) + " |")
    lines.append("| load average (1 min, mean) | | " + " | ".join(
        f"{r['load_average']['mean']:g}" if r.get("load_average") else "n/a"
        for r in results) + " |")
    return "\n".join(lines) + "\n"


def write_readme(results: list[dict[str, Any]], readme: Path) -> bool:
    """Put ``summary`` between README_MARKS in ``readme`` (a run of every model only: a quick
    run's figures are not the README's). Whether it was written."""
    if {r["model"] for r in results} != set(MODELS) or not readme.is_file():
        return False
    text = readme.read_text(encoding="utf-8")
    start, end = (text.find(m) for m in README_MARKS)
    if start < 0 or end < start:
        return False
    head = text[:start + len(README_MARKS[0])]
    readme.write_text(head + "\n" + summary(results) + text[end:], encoding="utf-8")
    return True


def render(results_json: Path) -> int:
    """``--render``: bench/results.md and the README's table again from ``results_json``."""
    results = json.loads(results_json.read_text(encoding="utf-8"))["results"]
    (HERE / "results.md").write_text(markdown(results), encoding="utf-8")
    write_readme(results, HERE.parent / "README.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small model only")
    parser.add_argument("--models", nargs="*", choices=sorted(MODELS))
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument("--find-links", metavar="DIR", default=os.environ.get("PIP_FIND_LINKS"),
                        help="a directory holding a CPU build of torch for the heavy model "
                        f"(default: $PIP_FIND_LINKS; else {TORCH_CPU_INDEX})")
    parser.add_argument("--repository", action="store_true",
                        help="also the repository bench (12 models, 4 locks; slow), alone "
                        "unless --models or --quick is given")
    parser.add_argument("--render", action="store_true",
                        help="write bench/results.md and the README's table again from "
                        "bench/results.json, measuring nothing")
    args = parser.parse_args(argv)
    if args.render:
        return render(HERE / "results.json")
    names = args.models or (["small"] if args.quick else [] if args.repository else list(MODELS))
    if "heavy" in names:
        source = torch_source(args.find_links)
        if source is None:
            print(f"== heavy: skipped: no CPU build of torch to be had (give --find-links DIR "
                  f"holding torch-*+cpu-*.whl, or reach {TORCH_CPU_INDEX})", flush=True)
            names = [n for n in names if n != "heavy"]
        else:
            print(f"== heavy: torch from {source}", flush=True)
    for key in [k for k in os.environ if k.startswith(("PIP_", "UV_", "CONDA_"))]:
        del os.environ[key]
    work = Path(tempfile.mkdtemp(prefix="tritonpack-bench-"))
    try:
        seed = work / "seed"
        here = f"{sys.version_info.major}.{sys.version_info.minor}"  # the lock comparison's
        with cache_at(seed):
            for minor in sorted({MODELS[n][1] or "3.10" for n in names} | {here, "3.10"}):
                pychannel.local_channel(pychannel.find_python(minor), "linux-64")
        results = [bench_model(n, work, seed) for n in names]
        repository = None
        if args.repository:
            print("== repository", flush=True)
            from repository import bench_repository  # bench/repository.py, beside this file

            repository = bench_repository(sys.modules[__name__], work, seed)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    growth = {}
    if len(results) > 1:
        for key in TARGETS:
            vals = [r["ratios"].get(key) for r in results]
            if all(v is not None for v in vals):
                growth[key] = {r["model"]: r["ratios"][key] for r in results}
    out = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
           "targets": {k: f"{h}{t}" for k, (t, h) in TARGETS.items()},
           "results": results, "growth_small_to_heavy": growth, "repository": repository,
           "median_ratios": {k: statistics.median([r["ratios"][k] for r in results
                                                   if r["ratios"].get(k) is not None] or [0])
                             for k in TARGETS}}
    # a repository-only run keeps the models' figures of the last full run
    dest = HERE / ("results.json" if results else "results-repository.json")
    dest.write_text(json.dumps(out, indent=2, default=str))
    if results:
        (HERE / "results.md").write_text(markdown(results), encoding="utf-8")  # speed.md's
        write_readme(results, HERE.parent / "README.md")  # a run of every model only
        print(table(results))
    if repository:
        print(f"repository: {json.dumps(repository['seconds'])}; {json.dumps(repository['ratios'])}")
    print(f"(! = target missed; details in {dest})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
