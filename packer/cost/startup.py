"""Time to READY split into unpacking, stub start and initialize(), from the timestamps of the
server's verbose log (verify runs it with --log-verbose=1).

The log says when an archive's extraction began and when each instance's stub was started and
reported initialized. It does not say where the stub's own start ends and the model's
initialize() (with model.py's imports) begins: a model that does nothing, loaded on the same
environment (``NULL_NAME``), measures the stub's start alone, and the model's share is the rest.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

NULL_NAME = "tritonpack_stub_start"
NULL_MODEL = '''\
class TritonPythonModel:
    """Nothing: its load is a stub's start on the environment, and no more."""

    def execute(self, requests):
        return []
'''

_LINE = re.compile(r"^[IWE](\d\d)(\d\d) (\d\d):(\d\d):(\d\d\.\d+)\s+\d+\s+\S+\]\s+\"?(.*)$")
_LOADING = re.compile(r"^loading: (.+):\d+")
_LOADED = re.compile(r"^successfully loaded '(.+)'")
_EXTRACT = re.compile(r"^Extracting Python execution env (\S+)")
_STUB = re.compile(r"^Starting Python backend stub: source (\S+)/bin/activate .*? (\S+\.py) "
                   r"triton_python_backend_shm_region_\S+ \d+ \d+ \d+ \S+ \d+ (\S+) ")
_INIT = re.compile(r"^TRITONBACKEND_ModelInstanceInitialize: instance initialization successful "
                   r"(\S+) \(")


@dataclass(frozen=True)
class Event:
    at: float  # seconds since the start of the log's year (only differences are used)
    kind: str  # loading | loaded | extract | stub | init
    name: str  # model, instance or archive path
    model: str = ""  # the model a stub runs
    env: str = ""  # the environment root a stub activates


def _seconds(match: re.Match[str]) -> float:
    month, day, hour, minute, second = match.groups()[:5]
    start = datetime(2000, int(month), int(day), int(hour), int(minute))
    return (start - datetime(2000, 1, 1)).total_seconds() + float(second)


def events(log: str) -> list[Event]:
    """The load events of a verbose server log, in order."""
    out = []
    for line in log.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        at, text = _seconds(m), m.group(6)
        if (e := _LOADING.match(text)) is not None:
            out.append(Event(at, "loading", e[1]))
        elif (e := _LOADED.match(text)) is not None:
            out.append(Event(at, "loaded", e[1]))
        elif (e := _EXTRACT.match(text)) is not None:
            out.append(Event(at, "extract", e[1].rstrip('"')))
        elif (e := _STUB.match(text)) is not None:
            out.append(Event(at, "stub", e[3], model=Path(e[2]).parent.parent.name, env=e[1]))
        elif (e := _INIT.match(text)) is not None:
            out.append(Event(at, "init", e[1]))
    return out


@dataclass(frozen=True)
class Startup:
    """One model's start, in seconds. ``ready`` is what a server with only this model would
    take: unpacking (0 for a directory) plus its own load, instances started in parallel."""

    format: str  # archive | dir
    unpack: float
    stub_start: float
    initialize: float
    ready: float
    env_root: str  # where the stub found the environment (an extraction dir for an archive)


def _window(evs: list[Event], model: str) -> tuple[float, float] | None:
    start = next((e.at for e in evs if e.kind == "loading" and e.name == model), None)
    end = next((e.at for e in evs if e.kind == "loaded" and e.name == model), None)
    return (start, end) if start is not None and end is not None else None


def _instance_starts(evs: list[Event], model: str) -> list[float]:
    """Per instance of ``model``: seconds from its stub's start to its initialize() done."""
    started = {e.name: e.at for e in evs if e.kind == "stub" and e.model == model}
    done = {e.name: e.at for e in evs if e.kind == "init" and e.name in started}
    return [done[name] - started[name] for name in started if name in done]


def _unpack(evs: list[Event], env: Path, root: str) -> tuple[float, float | None]:
    """(seconds, when) the extraction of ``env`` took: from its 'Extracting' line to the first
    stub started on what it extracted (the environment ``root`` the model's stubs activate:
    in a repository another model's stub, on another environment, may start in between).
    (0, None) for a directory or an archive not seen."""
    real = os.path.realpath(env)
    for i, e in enumerate(evs):
        if e.kind == "extract" and os.path.realpath(e.name) == real:
            stub = next((s for s in evs[i + 1:] if s.kind == "stub" and s.env == root), None)
            if stub is not None:
                return stub.at - e.at, e.at
    return 0.0, None


def split(log: str, model: str, env: Path) -> Startup | None:
    """The model's start from ``log`` (which also holds ``NULL_NAME``'s load); None when the
    log lacks the lines (another server version's wording)."""
    evs = events(log)
    window = _window(evs, model)
    own = _instance_starts(evs, model)
    null = _instance_starts(evs, NULL_NAME)
    root = next((e.env for e in evs if e.kind == "stub" and e.model == model), "")
    if window is None or not own or not null:
        return None
    unpack, when = _unpack(evs, env, root)
    load = window[1] - window[0]
    inside = when is not None and window[0] <= when <= window[1]
    # the do-nothing model's start, loaded after, may take longer than the whole of the
    # model's own (a busy machine): the model's stubs did start within their own seconds,
    # so the parts still add up to READY
    stub_start = min(min(null), max(own))
    return Startup(format="dir" if env.is_dir() else "archive", unpack=unpack,
                   stub_start=stub_start, initialize=max(own) - stub_start,
                   ready=load if inside else load + unpack, env_root=root)


def write_null_model(repo: Path, env_root: Path) -> Path:
    """``NULL_NAME`` in ``repo``, on the environment the model's stub activated (a directory:
    an archive's extraction is not measured twice)."""
    model = repo / NULL_NAME
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.py").write_text(NULL_MODEL, encoding="utf-8")
    os.symlink(env_root, model / "env")
    (model / "config.pbtxt").write_text(f'''name: "{NULL_NAME}"
backend: "python"
max_batch_size: 0
input [ {{ name: "DUMMY" data_type: TYPE_BOOL dims: [ 1 ] optional: true }} ]
output [ {{ name: "NOTHING" data_type: TYPE_BOOL dims: [ 1 ] }} ]
instance_group [ {{ kind: KIND_CPU, count: 1 }} ]
parameters {{ key: "EXECUTION_ENV_PATH" value {{ string_value: "$$TRITON_MODEL_DIRECTORY/env" }} }}
''', encoding="utf-8")
    return model
