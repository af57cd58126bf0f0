"""The repository bench (``bench/run.py --repository``): 12 models with 4 distinct locks.

Times, in one run, each from an empty cache (holding only the local Python channels):
  * ``tritonpack REPO`` over the first 1, 4 and 12 models (how it grows: models whose
    locks are identical share one build);
  * 12 single packs, ``tritonpack REPO/mNN`` one after another, sharing the user's cache as
    separate commands do;
  * the manual recipe done once per model (env, ``pip install -r``, conda-pack).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

# the four locks: what each model imports beside numpy (the small bench model's packages)
LOCKS = (("yaml",), ("attrs",), ("tqdm",), ("attrs", "tqdm", "yaml"))
MODELS = 12

MODEL_PY = """\
{imports}
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUTPUT0", (pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy() + 1)
            .astype(np.float32))]) for r in requests]
"""


def make_repository(template: Path, dest: Path, count: int) -> Path:
    """``count`` models named m00.., model i importing LOCKS[i % 4], config from ``template``."""
    dest.mkdir(parents=True)
    config = (template / "config.pbtxt").read_text(encoding="utf-8")
    for i in range(count):
        name = f"m{i:02}"
        model = dest / name
        (model / "1").mkdir(parents=True)
        imports = "\n".join(f"import {m}" for m in LOCKS[i % len(LOCKS)])
        (model / "1" / "model.py").write_text(MODEL_PY.format(imports=imports), encoding="utf-8")
        (model / "config.pbtxt").write_text(
            config.replace('name: "small"', f'name: "{name}"'), encoding="utf-8")
    return dest


def bench_repository(run: Any, work: Path, seed: Path) -> dict[str, Any]:
    """``run`` is bench/run.py's module (its caches, options and manual recipe)."""
    from packer.pipeline import package
    from packer.repository import package_repository

    template = run.HERE / "models" / "small"
    root = work / "repository"
    out: dict[str, Any] = {"models": MODELS, "locks": len(LOCKS), "seconds": {}, "builds": {}}
    for count in (1, 4, MODELS):
        repo = make_repository(template, root / f"repo-{count}", count)
        with run.cache_at(run.fresh_cache(work, seed, f"cache-repo-{count}")):
            seconds, res = run.timed(lambda repo=repo: package_repository(repo, run.opts_for("small")))
        if res.failed:
            raise SystemExit(f"repository bench: {res.failed[0].name}: {res.failed[0].error}")
        out["seconds"][f"repository_{count}"] = round(seconds, 2)
        out["builds"][f"repository_{count}"] = res.builds
        print(f"   repository of {count}: {seconds:.1f}s, {res.builds} build(s)", flush=True)
    singles = make_repository(template, root / "singles", MODELS)
    with run.cache_at(run.fresh_cache(work, seed, "cache-singles")):
        t0 = time.perf_counter()
        for model in sorted(singles.iterdir()):
            package(model, run.opts_for("small"))
        out["seconds"]["single_packs"] = round(time.perf_counter() - t0, 2)
    print(f"   {MODELS} single packs: {out['seconds']['single_packs']:.1f}s", flush=True)
    manual = make_repository(template, root / "manual", MODELS)
    t0 = time.perf_counter()
    for model in sorted(manual.iterdir()):
        where = work / f"manual-{model.name}"
        where.mkdir()
        base = run.baseline_build(model, "small", run.fresh_cache(where, seed, "cache"), where)
        shutil.rmtree(base["prefix"])
    out["seconds"]["manual_recipe"] = round(time.perf_counter() - t0, 2)
    print(f"   manual recipe x {MODELS}: {out['seconds']['manual_recipe']:.1f}s", flush=True)
    s = out["seconds"]
    out["ratios"] = {
        "repository_vs_single_packs": round(s[f"repository_{MODELS}"] / s["single_packs"], 3),
        "repository_vs_manual": round(s[f"repository_{MODELS}"] / s["manual_recipe"], 3),
        "growth_1_4_12": [round(s[f"repository_{n}"] / s["repository_1"], 2)
                          for n in (1, 4, MODELS)],
    }
    return out
