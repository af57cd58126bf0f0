"""tritonpack's own probe model: loaded with the same EXECUTION_ENV_PATH, it reports from
inside Triton which Python runs, from which prefix, and whether every scanned module imports."""

from __future__ import annotations

import json
import os
from pathlib import Path

PROBE_NAME = "tritonpack_probe"

PROBE_MODEL = '''\
import importlib
import json
import sys
import traceback

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        modules = json.loads(config["parameters"]["MODULES"]["string_value"])
        results = {}
        for name in modules:
            try:
                importlib.import_module(name)
                results[name] = "ok"
            except BaseException:
                results[name] = traceback.format_exc(limit=1).strip().splitlines()[-1]
        self.report = json.dumps({
            "prefix": sys.prefix,
            "executable": sys.executable,
            "python": "%d.%d.%d" % sys.version_info[:3],
            "numpy": np.__version__,
            "imports": results,
        })

    def execute(self, requests):
        out = np.array([self.report.encode()], dtype=np.object_)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("REPORT", out)]) for _ in requests]
'''


def _config(env_name: str, modules: list[str]) -> str:
    return f'''name: "{PROBE_NAME}"
backend: "python"
max_batch_size: 0
input [ {{ name: "DUMMY" data_type: TYPE_BOOL dims: [ 1 ] optional: true }} ]
output [ {{ name: "REPORT" data_type: TYPE_STRING dims: [ 1 ] }} ]
instance_group [ {{ kind: KIND_CPU, count: 1 }} ]
parameters {{ key: "MODULES" value {{ string_value: {json.dumps(json.dumps(modules))} }} }}
parameters {{ key: "EXECUTION_ENV_PATH" value {{ string_value: "$$TRITON_MODEL_DIRECTORY/{env_name}" }} }}
'''


def write_probe(repo: Path, env: Path, modules: list[str]) -> Path:
    """A probe model dir in ``repo`` whose environment is a link to ``env``."""
    model = repo / PROBE_NAME
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.py").write_text(PROBE_MODEL, encoding="utf-8")
    os.symlink(env, model / env.name)
    (model / "config.pbtxt").write_text(_config(env.name, modules), encoding="utf-8")
    return model
