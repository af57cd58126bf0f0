"""One sentence for the known ways a Python-backend model fails to load or answer.

One table: Triton's log patterns (as the 24.10 server writes them: one line a message, newlines
escaped as ``\\n``) -> the sentence a user needs. The first pattern that matches wins; each has
a test with a line taken from a real server log (tests/test_diagnose.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..resolve.requirements import Requirements

_NO_MODULE = re.compile(r"No module named '([^']+)'")
_GLIBC = re.compile(r"(GLIBC(?:XX)?_[0-9.]+)'? not found")
_FRAME = re.compile(r"(?:^|\\n|\n)\s*(\S*?([^/\s]+\.py))\((\d+)\): (\w+)")
_RAISED = re.compile(
    r"(?:Failed to create instance|failed to load '[^']*' version \d+: Internal): "
    r"(?P<type>[A-Za-z_][\w.]*): (?P<what>.*?)(?:\\n|\n)(?:\\n|\n)At:(?P<frames>.*?)(?:\"|$)",
    re.S)
_NO_FILE = re.compile(r"\[Errno 2\] No such file or directory: '([^']+)'")
# huggingface_hub's validate_repo_id, when from_pretrained(DIR) finds no directory DIR and
# takes it for a Hub repo id: "Repo id must be in the form 'repo_name' or
# 'namespace/repo_name': '/assets/tokenizer'" (or "must use alphanumeric chars ...")
_HUB_PATH = re.compile(r"Repo id must (?:be in the form|use alphanumeric).*?: '([^']*[/\\][^']*)'")
_DRIVE = re.compile(r"^[A-Za-z]:[/\\]")  # C:/models/tok: a Windows path, on a Linux server
_NETWORK = re.compile(r"Name or service not known|Temporary failure in name resolution|"
                      r"Max retries exceeded|Network is unreachable|Failed to establish a new "
                      r"connection|We couldn't connect to|ConnectTimeout|LocalEntryNotFoundError")
_GPU_KIND = re.compile(r"instance group (\S+) of model (\S+) has kind KIND_GPU but no GPUs are "
                       r"available")
_CUDA = re.compile(r"libcuda(?:rt)?\.so[.\d]*: cannot open shared object file|Torch not compiled "
                   r"with CUDA enabled|Found no NVIDIA driver on your system")
_STUB_DIED = re.compile(r"Stub process '([^']+)' is not healthy")
_CORRID = re.compile(r"inference request to model '([^']+)' must specify a non-zero or "
                     r"non-empty correlation ID")
_DECOUPLED_HTTP = re.compile(r"HTTP end point doesn't support models with decoupled")
_BF16_JSON = re.compile(r"receiving BF16 data via JSON is not supported")
_CALLEE_NOT_READY = re.compile(r"Failed for execute the inference request\. Model '([^']*)' is "
                               r"not ready")
_NO_VERSION = re.compile(r"at least one version must be available under the version policy of "
                         r"model '([^']+)'")
# the server's log ends (it crashed) a few lines after a custom-metric call of the model's
_METRICS_CRASH = re.compile(r"metric_family\.cc:\d+\] [^\n]*\n(?:[^\n]*\n){0,3}[^\n]*\Z")
_ACTIVATE = re.compile(r"bin/activate[^\n]*No such file|No such file[^\n]*bin/activate")


@dataclass(frozen=True)
class Facts:
    """What the diagnosis knows besides the log."""

    requirements: Requirements | None = None
    timed_out: bool = False


def _missing_module(m: re.Match[str], facts: Facts) -> str:
    name = m.group(1)
    if name.split(".")[0] == "numpy":
        return "numpy is missing from the environment: the backend stub imports it"
    where = ""
    if facts.requirements is not None:
        for row in facts.requirements.rows:
            if row.key == name.split(".")[0] or row.key == name:
                where = f" (imported at {row.locations[0]})"
                break
    return f"module {name!r} is missing from the environment{where}"


# transformers' and diffusers' requires_backends: "{0} requires the PyTorch library but it was
# not found in your environment" (a soft dependency: imported only when the feature is used)
_SOFT = re.compile(r"(?:\\n|\b)([A-Za-z_]\w*) requires the (.{1,40}?) library but it was not "
                   r"found in your environment")
_LIBRARIES = {"pytorch": "torch", "tensorflow": "tensorflow", "flax": "flax",
              "sentencepiece": "sentencepiece", "protobuf": "protobuf", "tokenizers": "tokenizers",
              "🤗 tokenizers": "tokenizers", "pil": "pillow", "vision": "pillow", "timm": "timm",
              "scipy": "scipy", "scikit-learn": "scikit-learn", "librosa": "librosa",
              "torchaudio": "torchaudio", "torchvision": "torchvision",
              "opencv": "opencv-python-headless", "accelerate": "accelerate", "av": "av",
              "pytesseract": "pytesseract", "detectron2": "detectron2", "decord": "decord"}


def _soft(m: re.Match[str], facts: Facts) -> str:
    """The exact fix for a library's soft dependency: the distribution to declare."""
    label = m.group(2).strip()
    dist = _LIBRARIES.get(label.lower(), label.lower().replace(" ", "-"))
    fix = f'add it in tritonpack.toml: [requirements] pypi = ["{dist}"]'
    if dist == "torch":
        fix += (" (its build follows --torch: the PyTorch index of the target's CUDA by default, "
                "--torch cpu for a CPU build)")
    return (f"{m.group(1)} needs the {label} library ({dist!r}), which the environment lacks: "
            f"the library using it imports it only when that feature runs; {fix}")


_ENTRY_POINTS = ("initialize", "execute", "finalize", "auto_complete_config")


def _raised(m: re.Match[str], facts: Facts) -> str:
    """initialize() raised X: the exception and the model's own line that raised it."""
    frames = _FRAME.findall(m.group("frames"))  # innermost first
    own = [f for f in frames if f[1] == "model.py"] or \
        [f for f in frames if "/lib/python3" not in f[0]] or frames  # default_model_filename
    where = f" ({own[0][1]}:{own[0][2]})" if own else ""
    entry = [f[3] for f in frames if f[3] in _ENTRY_POINTS]
    what = m.group("what").replace("\\'", "'").strip()
    called = entry[0] if entry else "initialize"
    missing = _NO_FILE.match(what) if m.group("type") in ("FileNotFoundError", "OSError") else None
    if missing:
        path = missing.group(1)
        if path.startswith("/"):
            return (f"{called}() opens {path}{where}, which is outside the model dir and not on "
                    "this machine: ship it in the model dir (and open it relative to model.py) "
                    "or mount it at that path")
        return (f"{called}() opens {path}{where} relative to the server's working directory, "
                "not the model dir: open it relative to model.py "
                "(os.path.dirname(__file__)) and ship it there")
    hub = _HUB_PATH.search(what)
    said = _hub_path(hub.group(1), called, where) if hub else None
    return said or f"{called}() raised {m.group('type')}: {what}{where}"


def _hub_path(path: str, called: str, where: str) -> str | None:
    """from_pretrained(DIR) with no directory DIR, taken for a Hub repo id: an absolute (or
    Windows, or ~) path is not on this machine; a relative one (./tok, a/b/c: no repo id has
    two slashes) was looked for from the server's working directory, not the model dir."""
    if path.startswith(("/", "~")) or _DRIVE.match(path):
        return (f"{called}() loads {path}{where} with from_pretrained, a directory that is not "
                "on this machine (so it was taken for a huggingface.co repo id): ship it in the "
                "model dir (and load it relative to model.py) or mount it at that path")
    if path.startswith(("./", "../")) or path.count("/") >= 2:
        return (f"{called}() loads {path}{where} with from_pretrained relative to the server's "
                "working directory, not the model dir (not found there, it was taken for a "
                "huggingface.co repo id): load it relative to model.py "
                "(os.path.dirname(__file__)) and ship it there")
    return None


def _network(m: re.Match[str], facts: Facts, log: str) -> str:
    if re.search(r"huggingface", log, re.I):
        return ("initialize() tried to download from huggingface.co (no network here): ship the "
                "files in the model dir or mount them")
    return (f"initialize() tried to reach the network ({m.group(0)}) and there is none here: "
            "ship the files it downloads in the model dir or mount them")


Rule = Callable[[re.Match[str], Facts], str]

# (pattern, sentence): the first match wins
TABLE: tuple[tuple[re.Pattern[str], Rule], ...] = (
    (_SOFT, _soft),
    (_NO_MODULE, _missing_module),
    (_GLIBC, lambda m, f: (
        f"a library in the environment needs {m.group(1)}, newer than the server's OS provides "
        "(an old libstdc++ in the env's lib/ shadows the system's, or the env was built on a "
        "newer OS)")),
    (_GPU_KIND, lambda m, f: (
        f"KIND_GPU needs a GPU: {m.group(2)} asks for a GPU instance and this server has none "
        "(verify on a GPU machine with --runtime docker --gpus, or use KIND_CPU)")),
    (_CUDA, lambda m, f: (
        f"the model's own code needs CUDA ({m.group(0)}) and this machine has no GPU: verify on "
        "a GPU machine (--runtime docker --gpus)")),
    (_CORRID, lambda m, f: (
        f"sequence batching needs a correlation ID: {m.group(1)} is a sequence model and the "
        "request carried none")),
    (_DECOUPLED_HTTP, lambda m, f: (
        "a decoupled model answers only over gRPC streaming: Triton's HTTP endpoint refuses it")),
    (_BF16_JSON, lambda m, f: (
        "BF16 cannot travel as JSON: send it as binary tensors (gRPC or the binary extension)")),
    (_CALLEE_NOT_READY, lambda m, f: (
        f"model.py called the model '{m.group(1)}', which is not loaded: name the models it "
        "calls with --with MODEL (they load from the same repository)")),
    (_STUB_DIED, lambda m, f: (
        f"the Python backend stub {m.group(1)} died (the model's code exited or "
        "crashed: os._exit, a segfault, or out of memory)")),
    (_NO_VERSION, lambda m, f: (
        f"{m.group(1)} has no version directory Triton can load: add {m.group(1)}/1/ (an "
        "ensemble needs one too, even empty; git keeps an empty dir only with a file in it)")),
    (_ACTIVATE, lambda m, f: "the environment has no bin/activate (Triton before 25.08 sources it)"),
    (_METRICS_CRASH, lambda m, f: (
        "tritonserver crashed while the model used custom metrics (pb_utils.MetricFamily: the "
        "server's log ends in metric_family.cc)")),
)


def diagnose(log: str, requirements: Requirements | None = None, *, timed_out: bool = False,
             python_env: str | None = None, python_stub: str | None = None) -> str:
    """The one sentence that says why, or "" when no known pattern is in ``log``."""
    if python_env and python_stub and python_env != python_stub:
        return (f"Python version mismatch: the environment has Python {python_env}, the backend "
                f"stub needs {python_stub} (this hangs the stub in some releases)")
    facts = Facts(requirements, timed_out)
    for pattern, rule in TABLE:
        if m := pattern.search(log):
            return rule(m, facts)
    if m := _NETWORK.search(log):
        return _network(m, facts, log)
    if m := _RAISED.search(log):
        return _raised(m, facts)
    errors = "\n".join(ln for ln in log.splitlines() if ln.startswith("E"))
    if re.search(r"shared memory|shm", errors, re.I) and re.search(
        r"fail|insufficient|not enough|no space", errors, re.I
    ):
        return "shared memory too small for the Python backend (raise --shm-size)"
    if timed_out:
        return "the model did not become ready in time (load timeout)"
    return ""


_GLOG = re.compile(r"^[EWI]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] ")


_EXECUTE_RAISED = re.compile(r"Failed to process the request\(s\) for model '[^']+', message: "
                             r"(?P<type>[A-Za-z_][\w.]*): (?P<what>[^\n]*)")


def execute_raised(message: str) -> str:
    """'ValueError: ...' when ``message`` says the model's execute() raised, else ""."""
    m = _EXECUTE_RAISED.search(message)
    return f"{m.group('type')}: {m.group('what').strip()}" if m else ""


def last_error(log: str, limit: int = 300) -> str:
    """The server's last error line, without glog's prefix: the cause to quote when no row of
    the table knows it (a bare "did not load" told a user, and a flaky test, nothing)."""
    errors = [_GLOG.sub("", ln).strip().strip('"') for ln in log.splitlines()
              if _GLOG.match(ln) and ln.startswith("E")]
    last = next((e for e in reversed(errors) if e), "")
    return last if len(last) <= limit else last[:limit - 3] + "..."


def excerpt(log: str, lines: int = 15) -> str:
    """The lines of a server log that matter: errors first, else the tail; a message the server
    repeats (one per instance, then again per load attempt) is shown once."""
    all_lines = log.splitlines()
    errors = [ln for ln in all_lines if ln.startswith("E") or "Error" in ln or "error" in ln]
    picked, seen = [], set()
    for ln in errors or all_lines:
        key = _GLOG.sub("", ln).strip()
        key = re.sub(r"^\"?(ERROR: Failed to create instance: |failed to load '[^']*' version "
                     r"\d+: Internal: )", "", key)
        if key not in seen:
            seen.add(key)
            picked.append(ln)
    return "\n".join(picked[-lines:])
