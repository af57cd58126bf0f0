"""Triton's ``ModelConfig`` message (config.pbtxt), declared here rather than imported.

tritonclient ships the generated message, but taking it means a core dependency on tritonclient
(grpcio, numpy, a protobuf runtime as new as its generator) for one message type. The schema
below is Triton's ``model_config.proto`` as facts: every message, field name, field number,
type and enum value, in our own notation, turned into a protobuf descriptor at first use. It is
the whole message, not the fields tritonpack reads: config.pbtxt is parsed as strictly as Triton
parses it (a misspelt field anywhere is refused), and the patch check (packer.patch.config)
compares whole messages, so a field left out here would be a field it could not guard.

The descriptor lives in a pool of its own under Triton's package name ``inference``: parse
errors name ``inference.ModelConfig`` as Triton's do, and tritonclient's copy, which verify
loads into protobuf's default pool, never collides with it. tests/test_modelconfig.py checks
the schema against tritonclient's descriptor and the parse of every config.pbtxt in the tests
and examples against tritonclient's parse.

Notation: ``message A.B`` declares B nested in A (``enum`` likewise); a field line is
``name = number type``, the type being ``repeated T``, ``map<K, V>`` or T, and ``| choice``
puts the field in the oneof ``choice``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

PACKAGE = "inference"

SCHEMA = """
enum DataType
  TYPE_INVALID = 0
  TYPE_BOOL = 1
  TYPE_UINT8 = 2
  TYPE_UINT16 = 3
  TYPE_UINT32 = 4
  TYPE_UINT64 = 5
  TYPE_INT8 = 6
  TYPE_INT16 = 7
  TYPE_INT32 = 8
  TYPE_INT64 = 9
  TYPE_FP16 = 10
  TYPE_FP32 = 11
  TYPE_FP64 = 12
  TYPE_STRING = 13
  TYPE_BF16 = 14
message ModelRateLimiter
  resources = 1 repeated ModelRateLimiter.Resource
  priority = 2 uint32
message ModelRateLimiter.Resource
  name = 1 string
  global = 2 bool
  count = 3 uint32
message ModelInstanceGroup
  name = 1 string
  kind = 4 ModelInstanceGroup.Kind
  count = 2 int32
  rate_limiter = 6 ModelRateLimiter
  gpus = 3 repeated int32
  secondary_devices = 8 repeated ModelInstanceGroup.SecondaryDevice
  profile = 5 repeated string
  passive = 7 bool
  host_policy = 9 string
enum ModelInstanceGroup.Kind
  KIND_AUTO = 0
  KIND_GPU = 1
  KIND_CPU = 2
  KIND_MODEL = 3
message ModelInstanceGroup.SecondaryDevice
  kind = 1 ModelInstanceGroup.SecondaryDevice.SecondaryDeviceKind
  device_id = 2 int64
enum ModelInstanceGroup.SecondaryDevice.SecondaryDeviceKind
  KIND_NVDLA = 0
message ModelTensorReshape
  shape = 1 repeated int64
message ModelInput
  name = 1 string
  data_type = 2 DataType
  format = 3 ModelInput.Format
  dims = 4 repeated int64
  reshape = 5 ModelTensorReshape
  is_shape_tensor = 6 bool
  allow_ragged_batch = 7 bool
  optional = 8 bool
  is_non_linear_format_io = 9 bool
enum ModelInput.Format
  FORMAT_NONE = 0
  FORMAT_NHWC = 1
  FORMAT_NCHW = 2
message ModelOutput
  name = 1 string
  data_type = 2 DataType
  dims = 3 repeated int64
  reshape = 5 ModelTensorReshape
  label_filename = 4 string
  is_shape_tensor = 6 bool
  is_non_linear_format_io = 7 bool
message BatchInput
  kind = 1 BatchInput.Kind
  target_name = 2 repeated string
  data_type = 3 DataType
  source_input = 4 repeated string
enum BatchInput.Kind
  BATCH_ELEMENT_COUNT = 0
  BATCH_ACCUMULATED_ELEMENT_COUNT = 1
  BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO = 2
  BATCH_MAX_ELEMENT_COUNT_AS_SHAPE = 3
  BATCH_ITEM_SHAPE = 4
  BATCH_ITEM_SHAPE_FLATTEN = 5
message BatchOutput
  target_name = 1 repeated string
  kind = 2 BatchOutput.Kind
  source_input = 3 repeated string
enum BatchOutput.Kind
  BATCH_SCATTER_WITH_INPUT_SHAPE = 0
message ModelVersionPolicy
  latest = 1 ModelVersionPolicy.Latest | policy_choice
  all = 2 ModelVersionPolicy.All | policy_choice
  specific = 3 ModelVersionPolicy.Specific | policy_choice
message ModelVersionPolicy.Latest
  num_versions = 1 uint32
message ModelVersionPolicy.All
message ModelVersionPolicy.Specific
  versions = 1 repeated int64
message ModelOptimizationPolicy
  graph = 1 ModelOptimizationPolicy.Graph
  priority = 2 ModelOptimizationPolicy.ModelPriority
  cuda = 3 ModelOptimizationPolicy.Cuda
  execution_accelerators = 4 ModelOptimizationPolicy.ExecutionAccelerators
  input_pinned_memory = 5 ModelOptimizationPolicy.PinnedMemoryBuffer
  output_pinned_memory = 6 ModelOptimizationPolicy.PinnedMemoryBuffer
  gather_kernel_buffer_threshold = 7 uint32
  eager_batching = 8 bool
enum ModelOptimizationPolicy.ModelPriority
  PRIORITY_DEFAULT = 0
  PRIORITY_MAX = 1
  PRIORITY_MIN = 2
message ModelOptimizationPolicy.Graph
  level = 1 int32
message ModelOptimizationPolicy.Cuda
  graphs = 1 bool
  busy_wait_events = 2 bool
  graph_spec = 3 repeated ModelOptimizationPolicy.Cuda.GraphSpec
  output_copy_stream = 4 bool
message ModelOptimizationPolicy.Cuda.GraphSpec
  batch_size = 1 int32
  input = 2 map<string, ModelOptimizationPolicy.Cuda.GraphSpec.Shape>
  graph_lower_bound = 3 ModelOptimizationPolicy.Cuda.GraphSpec.LowerBound
message ModelOptimizationPolicy.Cuda.GraphSpec.Shape
  dim = 1 repeated int64
message ModelOptimizationPolicy.Cuda.GraphSpec.LowerBound
  batch_size = 1 int32
  input = 2 map<string, ModelOptimizationPolicy.Cuda.GraphSpec.Shape>
message ModelOptimizationPolicy.ExecutionAccelerators
  gpu_execution_accelerator = 1 repeated ModelOptimizationPolicy.ExecutionAccelerators.Accelerator
  cpu_execution_accelerator = 2 repeated ModelOptimizationPolicy.ExecutionAccelerators.Accelerator
message ModelOptimizationPolicy.ExecutionAccelerators.Accelerator
  name = 1 string
  parameters = 2 map<string, string>
message ModelOptimizationPolicy.PinnedMemoryBuffer
  enable = 1 bool
message ModelQueuePolicy
  timeout_action = 1 ModelQueuePolicy.TimeoutAction
  default_timeout_microseconds = 2 uint64
  allow_timeout_override = 3 bool
  max_queue_size = 4 uint32
enum ModelQueuePolicy.TimeoutAction
  REJECT = 0
  DELAY = 1
message ModelDynamicBatching
  preferred_batch_size = 1 repeated int32
  max_queue_delay_microseconds = 2 uint64
  preserve_ordering = 3 bool
  priority_levels = 4 uint64
  default_priority_level = 5 uint64
  default_queue_policy = 6 ModelQueuePolicy
  priority_queue_policy = 7 map<uint64, ModelQueuePolicy>
message ModelSequenceBatching
  direct = 3 ModelSequenceBatching.StrategyDirect | strategy_choice
  oldest = 4 ModelSequenceBatching.StrategyOldest | strategy_choice
  max_sequence_idle_microseconds = 1 uint64
  control_input = 2 repeated ModelSequenceBatching.ControlInput
  state = 5 repeated ModelSequenceBatching.State
  iterative_sequence = 6 bool
message ModelSequenceBatching.Control
  kind = 1 ModelSequenceBatching.Control.Kind
  int32_false_true = 2 repeated int32
  fp32_false_true = 3 repeated float
  bool_false_true = 5 repeated bool
  data_type = 4 DataType
enum ModelSequenceBatching.Control.Kind
  CONTROL_SEQUENCE_START = 0
  CONTROL_SEQUENCE_READY = 1
  CONTROL_SEQUENCE_END = 2
  CONTROL_SEQUENCE_CORRID = 3
message ModelSequenceBatching.ControlInput
  name = 1 string
  control = 2 repeated ModelSequenceBatching.Control
message ModelSequenceBatching.InitialState
  data_type = 1 DataType
  dims = 2 repeated int64
  zero_data = 3 bool | state_data
  data_file = 4 string | state_data
  name = 5 string
message ModelSequenceBatching.State
  input_name = 1 string
  output_name = 2 string
  data_type = 3 DataType
  dims = 4 repeated int64
  initial_state = 5 repeated ModelSequenceBatching.InitialState
  use_same_buffer_for_input_output = 6 bool
  use_growable_memory = 7 bool
message ModelSequenceBatching.StrategyDirect
  max_queue_delay_microseconds = 1 uint64
  minimum_slot_utilization = 2 float
message ModelSequenceBatching.StrategyOldest
  max_candidate_sequences = 1 int32
  preferred_batch_size = 2 repeated int32
  max_queue_delay_microseconds = 3 uint64
  preserve_ordering = 4 bool
message ModelEnsembling
  step = 1 repeated ModelEnsembling.Step
  max_inflight_requests = 2 uint32
message ModelEnsembling.Step
  model_name = 1 string
  model_version = 2 int64
  input_map = 3 map<string, string>
  output_map = 4 map<string, string>
  model_namespace = 5 string
message ModelParameter
  string_value = 1 string
message ModelWarmup
  name = 1 string
  batch_size = 2 uint32
  inputs = 3 map<string, ModelWarmup.Input>
  count = 4 uint32
message ModelWarmup.Input
  data_type = 1 DataType
  dims = 2 repeated int64
  zero_data = 3 bool | input_data_type
  random_data = 4 bool | input_data_type
  input_data_file = 5 string | input_data_type
message ModelOperations
  op_library_filename = 1 repeated string
message ModelTransactionPolicy
  decoupled = 1 bool
message ModelRepositoryAgents
  agents = 1 repeated ModelRepositoryAgents.Agent
message ModelRepositoryAgents.Agent
  name = 1 string
  parameters = 2 map<string, string>
message ModelResponseCache
  enable = 1 bool
message ModelMetrics
  metric_control = 1 repeated ModelMetrics.MetricControl
message ModelMetrics.MetricControl
  metric_identifier = 1 ModelMetrics.MetricControl.MetricIdentifier
  histogram_options = 2 ModelMetrics.MetricControl.HistogramOptions | metric_options
message ModelMetrics.MetricControl.MetricIdentifier
  family = 1 string
message ModelMetrics.MetricControl.HistogramOptions
  buckets = 1 repeated double
message ModelConfig
  name = 1 string
  platform = 2 string
  backend = 17 string
  runtime = 25 string
  version_policy = 3 ModelVersionPolicy
  max_batch_size = 4 int32
  input = 5 repeated ModelInput
  output = 6 repeated ModelOutput
  batch_input = 20 repeated BatchInput
  batch_output = 21 repeated BatchOutput
  optimization = 12 ModelOptimizationPolicy
  dynamic_batching = 11 ModelDynamicBatching | scheduling_choice
  sequence_batching = 13 ModelSequenceBatching | scheduling_choice
  ensemble_scheduling = 15 ModelEnsembling | scheduling_choice
  instance_group = 7 repeated ModelInstanceGroup
  default_model_filename = 8 string
  cc_model_filenames = 9 map<string, string>
  metric_tags = 10 map<string, string>
  parameters = 14 map<string, ModelParameter>
  model_warmup = 16 repeated ModelWarmup
  model_operations = 18 ModelOperations
  model_transaction_policy = 19 ModelTransactionPolicy
  model_repository_agents = 23 ModelRepositoryAgents
  response_cache = 24 ModelResponseCache
  model_metrics = 26 ModelMetrics
"""

_SCALARS = ("double", "float", "int64", "uint64", "int32", "bool", "string", "bytes", "uint32")
_FIELD = re.compile(r"^(\w+) = (\d+) (?:(repeated) )?(?:map<(\w+), ([\w.]+)>|([\w.]+))"
                    r"(?: \| (\w+))?$")


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _typed(field: Any, kind: int, type_name: str) -> None:
    field.type = kind
    if type_name:  # a scalar has none (set, even empty, it is refused)
        field.type_name = type_name


def file_descriptor() -> Any:
    """SCHEMA as a ``FileDescriptorProto`` (proto3, package ``inference``)."""
    from google.protobuf import descriptor_pb2

    fdp = descriptor_pb2.FileDescriptorProto(name="tritonpack/model_config.proto",
                                             package=PACKAGE, syntax="proto3")
    enums = {m[1] for m in re.finditer(r"^enum ([\w.]+)$", SCHEMA, re.M)}
    decls: dict[str, Any] = {}  # "A.B" -> its DescriptorProto or EnumDescriptorProto
    current: Any = None
    Field = descriptor_pb2.FieldDescriptorProto

    def kind_of(type_name: str) -> tuple[int, str]:
        if type_name in _SCALARS:
            return Field.Type.Value("TYPE_" + type_name.upper()), ""
        if type_name not in decls and type_name not in enums:
            raise ValueError(f"model config schema: unknown type {type_name}")
        kind = Field.TYPE_ENUM if type_name in enums else Field.TYPE_MESSAGE
        return kind, f".{PACKAGE}.{type_name}"

    pending: list[tuple[Any, re.Match[str], str]] = []  # fields, resolved once all are declared
    for line in SCHEMA.strip().splitlines():
        if not line.startswith(" "):
            what, full = line.split()
            parent, _, name = full.rpartition(".")
            owner = decls[parent] if parent else fdp
            current = (owner.enum_type if what == "enum" else
                       owner.message_type if owner is fdp else owner.nested_type).add(name=name)
            decls[full] = current
            scope = full
        elif current.DESCRIPTOR.name == "EnumDescriptorProto":
            name, number = line.split(" = ")
            current.value.add(name=name.strip(), number=int(number))
        else:
            match = _FIELD.match(line.strip())
            if match is None:
                raise ValueError(f"model config schema: cannot read {line.strip()!r}")
            pending.append((current, match, scope))
    for message, match, scope in pending:
        name, number, repeated, key, value, single, choice = match.groups()
        field = message.field.add(name=name, number=int(number), json_name=_camel(name)[:1].lower()
                                  + _camel(name)[1:])
        field.label = Field.LABEL_REPEATED if repeated or key else Field.LABEL_OPTIONAL
        if key:  # a map is a repeated nested XxxEntry {key = 1; value = 2}
            entry = message.nested_type.add(name=_camel(name) + "Entry")
            entry.options.map_entry = True
            for i, (part, type_name) in enumerate((("key", key), ("value", value)), 1):
                sub = entry.field.add(name=part, number=i, json_name=part,
                                      label=Field.LABEL_OPTIONAL)
                _typed(sub, *kind_of(type_name))
            _typed(field, Field.TYPE_MESSAGE, f".{PACKAGE}.{scope}.{entry.name}")
        else:
            _typed(field, *kind_of(single))
        if choice:
            names = [o.name for o in message.oneof_decl]
            if choice not in names:
                message.oneof_decl.add(name=choice)
                names.append(choice)
            field.oneof_index = names.index(choice)
    return fdp


@functools.cache
def _pool() -> Any:
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_descriptor())
    return pool


def message_class(name: str = "ModelConfig") -> Any:
    """The class of message ``name`` ("ModelConfig", "ModelInstanceGroup", ...)."""
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(f"{PACKAGE}.{name}"))


def enum_value(enum: str, name: str) -> int:
    """The number of enum value ``name`` of ``enum`` ("ModelInstanceGroup.Kind", "KIND_GPU")."""
    return int(_pool().FindEnumTypeByName(f"{PACKAGE}.{enum}").values_by_name[name].number)


def new_config() -> Any:
    """An empty ModelConfig."""
    return message_class()()
