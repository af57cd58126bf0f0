"""tritonpack's own ModelConfig (packer/scan/modelconfig.py) against tritonclient's generated
one: the same schema, the same parse of every config.pbtxt the tests and examples hold, the same
refusals; and the core never needs tritonclient, grpc or numpy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, text_format
from tritonclient.grpc import model_config_pb2

from packer.scan.modelconfig import enum_value, file_descriptor, message_class, new_config

ROOT = Path(__file__).parent.parent
CONFIGS = sorted(p for base in (ROOT / "tests" / "fixtures", ROOT / "examples")
                 for p in base.rglob("*.pbtxt") if p.is_file())


def _facts(fdp: Any) -> dict[str, Any]:
    """Every message's fields (number, label, type, type name, oneof, map entry) and every
    enum's values, by full name: what a parse depends on, not how the file was laid out."""
    out: dict[str, Any] = {}

    def message(d: Any, prefix: str) -> None:
        name = prefix + d.name
        out[name] = {"map_entry": d.options.map_entry, "fields": {
            f.name: (f.number, f.label, f.type, f.type_name,
                     d.oneof_decl[f.oneof_index].name if f.HasField("oneof_index") else None)
            for f in d.field}}
        for e in d.enum_type:
            enum(e, name + ".")
        for n in d.nested_type:
            message(n, name + ".")

    def enum(e: Any, prefix: str) -> None:
        out[prefix + e.name] = {v.name: v.number for v in e.value}

    for e in fdp.enum_type:
        enum(e, "")
    for d in fdp.message_type:
        message(d, "")
    return out


def _older_than_the_schema() -> bool:
    """tritonclient is the bench extra's (<= 2.51, the last with perf_analyzer), older than the
    model_config.proto ours follows."""
    from importlib.metadata import version

    from packaging.version import Version

    return Version(version("tritonclient")) < Version("2.52")


def test_schema_is_tritonclients() -> None:
    """Field for field, the schema tritonclient was generated from; a tritonclient that knows a
    field this one lacks fails here (add the field to SCHEMA, from Triton's model_config.proto).
    An older tritonclient (the bench extra's <= 2.51) knows a subset: that subset must match."""
    theirs = descriptor_pb2.FileDescriptorProto()
    model_config_pb2.DESCRIPTOR.CopyToProto(theirs)
    ours, want = _facts(file_descriptor()), _facts(theirs)
    assert want.keys() <= ours.keys()
    for name in want:
        if "fields" in want[name]:  # a message: each field tritonclient knows, the same here
            assert ours[name]["map_entry"] == want[name]["map_entry"], name
            for field, fact in want[name]["fields"].items():
                assert ours[name]["fields"].get(field) == fact, f"{name}.{field}"
        else:  # an enum: each value the same
            assert want[name].items() <= ours[name].items(), name
    # what ours has beyond it is newer Triton's (the bench extra's tritonclient 2.51 predates
    # ModelMetrics); with a tritonclient as new as the schema, nothing is left over
    newer = {n for n in ours if n not in want or ours[n] != want[n]}
    assert not newer or _older_than_the_schema(), sorted(newer)
    assert file_descriptor().package == theirs.package == "inference"  # errors name Triton's types


def test_configs_found() -> None:
    assert len(CONFIGS) > 100


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_parses_as_tritonclient_does(path: Path) -> None:
    """The same message (compared through the wire form, in tritonclient's class), or the same
    refusal with the same words."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    theirs = model_config_pb2.ModelConfig()
    ours = new_config()
    try:
        text_format.Parse(text, theirs)
    except text_format.ParseError as exc:
        with pytest.raises(text_format.ParseError) as refused:
            text_format.Parse(text, ours)
        assert str(refused.value) == str(exc)
        return
    text_format.Parse(text, ours)
    back = model_config_pb2.ModelConfig.FromString(ours.SerializeToString(deterministic=True))
    assert back == theirs
    again = new_config()
    again.ParseFromString(theirs.SerializeToString(deterministic=True))
    assert again == ours
    assert text_format.MessageToString(ours) == text_format.MessageToString(theirs)


def test_some_configs_are_refused_and_some_use_every_part() -> None:
    """The comparison above covers refusals and the parts tritonpack reads, not only names."""
    refused, seen = 0, set()
    for path in CONFIGS:
        msg = new_config()
        try:
            text_format.Parse(path.read_bytes().decode("utf-8", errors="replace"), msg)
        except text_format.ParseError:
            refused += 1
            continue
        seen |= {f.name for f, _ in msg.ListFields()}
    assert refused >= 5
    assert {"name", "backend", "platform", "max_batch_size", "input", "output", "instance_group",
            "parameters", "model_warmup", "sequence_batching", "ensemble_scheduling",
            "model_transaction_policy"} <= seen


def test_enums_and_nested_messages() -> None:
    assert enum_value("ModelInstanceGroup.Kind", "KIND_GPU") == \
        model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert enum_value("DataType", "TYPE_BF16") == model_config_pb2.TYPE_BF16
    group = message_class("ModelInstanceGroup")(kind=enum_value("ModelInstanceGroup.Kind",
                                                                "KIND_CPU"))
    assert text_format.MessageToString(group, as_one_line=True) == "kind: KIND_CPU"


def test_misspelt_field_is_refused_everywhere() -> None:
    """Every message is declared, so a typo deep inside is refused as Triton refuses it."""
    with pytest.raises(text_format.ParseError) as refused:
        text_format.Parse('input [ { name: "x" dim: [ 1 ] } ]', new_config())
    assert str(refused.value) == '1:21 : Message type "inference.ModelInput" has no field named "dim".'


SCAN_LOADS = """
import atexit, sys
def heavy():
    bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tritonclient", "grpc", "numpy"))
    sys.stderr.write("HEAVY " + json.dumps(bad) + "\\n")
import json
atexit.register(heavy)
{body}
"""


def _loaded(body: str) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    res = subprocess.run([sys.executable, "-c", SCAN_LOADS.replace("{body}", body)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    line = next(x for x in res.stderr.splitlines() if x.startswith("HEAVY "))
    return json.loads(line.removeprefix("HEAVY ")), res


def test_model_module_loads_no_client() -> None:
    heavy, _ = _loaded("import packer.scan.model as m\n"
                       "m.open_model(__import__('pathlib').Path('examples/numpy_model'))")
    assert heavy == []


def test_scan_command_loads_no_client() -> None:
    """`tritonpack scan` (the whole CLI module, then the command) reads the config and never
    imports tritonclient, grpc or numpy."""
    heavy, res = _loaded("from packer.cli import main\n"
                         "main(['scan', 'examples/numpy_model'], prog_name='tritonpack')")
    assert res.returncode == 0, res.stderr
    assert "numpy_model/1/model.py" in res.stdout  # it did scan
    assert heavy == []


def test_the_check_sees_a_client() -> None:
    """The check above can fail: a module that imports tritonclient is seen."""
    heavy, _ = _loaded("import tritonclient.grpc")
    assert "tritonclient.grpc" in heavy and "grpc" in heavy


def test_kind_gpu_model_is_placed_as_kind_cpu(tmp_path: Path) -> None:
    """verify's layout reads instance_group kinds with this message: a KIND_GPU model on a
    machine without a GPU is placed as a copy that asks for KIND_CPU; a CPU one as a link."""
    from packer.scan.model import read_config
    from packer.verify.layout import place

    gpu = ROOT / "tests" / "fixtures" / "public" / "python_nobatch_sequence_int32"
    cpu = ROOT / "examples" / "numpy_model"
    repo = tmp_path / "repo"
    repo.mkdir()
    assert place(repo, gpu, cpu=True) is True
    assert place(repo, cpu, cpu=True) is False
    assert (repo / cpu.name).is_symlink() and not (repo / gpu.name).is_symlink()
    _, placed = read_config(repo / gpu.name / "config.pbtxt")
    kinds = {g.kind for g in placed.instance_group}
    assert kinds == {enum_value("ModelInstanceGroup.Kind", "KIND_CPU")}
    (tmp_path / "other").mkdir()
    assert place(tmp_path / "other", gpu, cpu=False) is False  # a GPU here: kept as it is
