"""The diagnosis table: each pattern with a line taken from a real server log (tritonserver
2.51.0 of Triton 24.10, the local runtime), exact sentence out."""

from __future__ import annotations

import pytest

from packer.verify.diagnose import diagnose, excerpt, last_error

from .conftest import FIXTURES

LOGS = FIXTURES / "logs"
RAISED = (LOGS / "raised.log").read_text()
NO_NETWORK = (LOGS / "no_network.log").read_text()
# AutoTokenizer.from_pretrained("/assets/tokenizer") with no such directory (a third-party
# tokenizer model whose Dockerfile mounts it)
HUB_PATH = (LOGS / "hub_path.log").read_text()
GPU_KIND = (LOGS / "gpu_kind.log").read_text()
STUB_DIED = (LOGS / "stub_died.log").read_text()
LIBCUDA = (LOGS / "libcuda.log").read_text()
# torch.cuda's own message in a CPU-only build (torch/cuda/__init__.py), raised by a model
TORCH_CPU = (LOGS / "torch_cpu.log").read_text()
# the server's log ending in a custom-metric call (server qa's custom_metrics: the server died)
METRICS_CRASH = (LOGS / "metrics_crash.log").read_text()
# Messages the server answered a request with (HTTP /infer), as verify's client sees them.
CORRID = "inference request to model 'seq' must specify a non-zero or non-empty correlation ID"
DECOUPLED_HTTP = "HTTP end point doesn't support models with decoupled transaction policy"
BF16_JSON = ("receiving BF16 data via JSON is not supported. Please use the binary data format "
             "for input B")
NO_VERSION = ("E1126 03:33:41.520155 1234 model_repository_manager.cc:1460] \"failed to load "
              "model 'ensemble': at least one version must be available under the version "
              "policy of model 'ensemble'\"")
# transformers and huggingface_hub name themselves in the traceback's frames
HUB = NO_NETWORK.replace("/urllib/request.py(216): urlopen",
                         "/huggingface_hub/file_download.py(1374): hf_hub_download")


@pytest.mark.parametrize(("log", "sentence"), [
    (HUB_PATH, "initialize() loads /assets/tokenizer (model.py:12) with from_pretrained, a "
               "directory that is not on this machine (so it was taken for a huggingface.co "
               "repo id): ship it in the model dir (and load it relative to model.py) or mount "
               "it at that path"),
    (HUB_PATH.replace("/1/model.py(", "/1/preprocess.py("),  # default_model_filename
     "initialize() loads /assets/tokenizer (preprocess.py:12) with from_pretrained, a "
     "directory that is not on this machine (so it was taken for a huggingface.co repo id): "
     "ship it in the model dir (and load it relative to model.py) or mount it at that path"),
    (HUB_PATH.replace("'/assets/tokenizer'", "'C:/assets/tokenizer'"),  # a Windows path
     "initialize() loads C:/assets/tokenizer (model.py:12) with from_pretrained, a directory "
     "that is not on this machine (so it was taken for a huggingface.co repo id): ship it in "
     "the model dir (and load it relative to model.py) or mount it at that path"),
    *((HUB_PATH.replace("'/assets/tokenizer'", f"'{path}'"),  # relative: the server's cwd
       f"initialize() loads {path} (model.py:12) with from_pretrained relative to the server's "
       "working directory, not the model dir (not found there, it was taken for a huggingface.co "
       "repo id): load it relative to model.py (os.path.dirname(__file__)) and ship it there")
      for path in ("./assets/tokenizer", "../assets/tokenizer", "1/assets/tokenizer")),
    (RAISED, "initialize() opens /models/weights.bin (model.py:7), which is outside the model "
             "dir and not on this machine: ship it in the model dir (and open it relative to "
             "model.py) or mount it at that path"),
    (RAISED.replace("/models/weights.bin", "weights.bin"),
     "initialize() opens weights.bin (model.py:7) relative to the server's working directory, "
     "not the model dir: open it relative to model.py (os.path.dirname(__file__)) and ship it "
     "there"),
    (HUB, "initialize() tried to download from huggingface.co (no network here): ship the files "
          "in the model dir or mount them"),
    (NO_NETWORK, "initialize() tried to reach the network (Name or service not known) and there "
                 "is none here: ship the files it downloads in the model dir or mount them"),
    (GPU_KIND, "KIND_GPU needs a GPU: gpu asks for a GPU instance and this server has none (verify "
               "on a GPU machine with --runtime docker --gpus, or use KIND_CPU)"),
    (LIBCUDA, "the model's own code needs CUDA (libcuda.so.1: cannot open shared object file) and "
              "this machine has no GPU: verify on a GPU machine (--runtime docker --gpus)"),
    (TORCH_CPU, "the model's own code needs CUDA (Torch not compiled with CUDA enabled) and this "
                "machine has no GPU: verify on a GPU machine (--runtime docker --gpus)"),
    (STUB_DIED, "the Python backend stub exits_0 died (the model's code exited or "
                "crashed: os._exit, a segfault, or out of memory)"),
    (METRICS_CRASH, "tritonserver crashed while the model used custom metrics "
                    "(pb_utils.MetricFamily: the server's log ends in metric_family.cc)"),
    (CORRID, "sequence batching needs a correlation ID: seq is a sequence model and the request "
             "carried none"),
    (DECOUPLED_HTTP, "a decoupled model answers only over gRPC streaming: Triton's HTTP endpoint "
                     "refuses it"),
    (BF16_JSON, "BF16 cannot travel as JSON: send it as binary tensors (gRPC or the binary "
                "extension)"),
    (NO_VERSION, "ensemble has no version directory Triton can load: add ensemble/1/ (an "
                 "ensemble needs one too, even empty; git keeps an empty dir only with a file "
                 "in it)"),
])
def test_pattern(log: str, sentence: str) -> None:
    assert diagnose(log) == sentence


def test_initialize_raised_is_never_reported_as_a_missing_activate() -> None:
    """A verbose log names bin/activate (the backend sources it) and the model's own error says
    'No such file': the model's error wins."""
    log = ("I1126 02:20:04.1 16559 python_be.cc:1] \"Using Python execution env "
           "/tmp/env/bin/activate\"\n" + RAISED)
    assert diagnose(log).startswith("initialize() opens /models/weights.bin (model.py:7)")


def test_excerpt_shows_a_repeated_message_once() -> None:
    log = (LOGS / "repeated.log").read_text()
    assert log.count("/models/weights.bin") == 12
    shown = excerpt(log).splitlines()
    assert len(shown) == 1
    assert "'/models/weights.bin'" in shown[0]


def test_a_load_failure_no_row_knows_quotes_the_servers_last_error() -> None:
    """verify's "X did not load" carries this when the table has no sentence (it said only
    "tritonpack_probe did not load" under load, which told nobody why)."""
    log = ("E1126 03:33:40.000000 1234 model_lifecycle.cc:642] \"an earlier error\"\n"
           "E1126 03:33:41.520155 1234 model_lifecycle.cc:642] \"failed to load "
           "'tritonpack_probe' version 1: Internal: Stub process is unhealthy\"\n"
           "I1126 03:33:41.600000 1234 server.cc:1] still serving\n")
    assert diagnose(log) == ""
    assert last_error(log) == ("failed to load 'tritonpack_probe' version 1: Internal: Stub "
                               "process is unhealthy")
    assert last_error("I1126 03:33:41.000000 1234 server.cc:1] fine\n") == ""
    assert last_error("E1126 03:33:41.000000 1234 x.cc:1] " + "y" * 400).endswith("y...")
