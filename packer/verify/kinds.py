"""What verify sends to each kind of model, decided from the config the server completed.

The plan is read from ``/v2/models/NAME/config`` (the loaded model's config, after
``auto_complete_config``), never from the file alone: a model may declare its inputs in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# ModelConfig TYPE_* -> KServe v2 datatype
DATATYPES = {
    "TYPE_BOOL": "BOOL", "TYPE_UINT8": "UINT8", "TYPE_UINT16": "UINT16", "TYPE_UINT32": "UINT32",
    "TYPE_UINT64": "UINT64", "TYPE_INT8": "INT8", "TYPE_INT16": "INT16", "TYPE_INT32": "INT32",
    "TYPE_INT64": "INT64", "TYPE_FP16": "FP16", "TYPE_FP32": "FP32", "TYPE_FP64": "FP64",
    "TYPE_STRING": "BYTES", "TYPE_BF16": "BF16",
}


IMAGE_SIDE = 64  # images made up for -1 height and width (PIL and OpenCV refuse 1x1)
_CHANNELS = (1, 3, 4)


@dataclass(frozen=True)
class Tensor:
    """An input or output as the config declares it (dims without the batch dimension)."""

    name: str
    datatype: str  # KServe v2 name (FP32, BYTES, BF16, ...); "" when the config's is unknown
    dims: tuple[int, ...]
    optional: bool = False

    @property
    def image_like(self) -> bool:
        return self.image_dims() is not None

    def image_dims(self) -> list[int] | None:
        """The dims an image of this input has (64x64, 3 channels where the channel count is
        free), or None when it does not look like an image: HWC or CHW (or NHWC, NCHW) with
        variable height and width and 1, 3 or 4 channels, of a numeric type; or three variable
        dims of UINT8 (an HxWxC image whose config says nothing more)."""
        d = self.dims
        if self.datatype not in ("UINT8", "FP16", "FP32", "FP64"):
            return None
        if len(d) == 3 and self.datatype == "UINT8" and all(x < 0 for x in d):
            return [IMAGE_SIDE, IMAGE_SIDE, 3]
        lead, d = (list(d[:1]), d[1:]) if len(d) == 4 else ([], d)
        if len(d) != 3:
            return None
        if (d[2] in _CHANNELS and d[0] < 0 and d[1] < 0) or \
                (d[0] in _CHANNELS and d[1] < 0 and d[2] < 0):
            return [max(x, 1) for x in lead] + [x if x > 0 else IMAGE_SIDE for x in d]
        return None


@dataclass(frozen=True)
class Plan:
    """The requests a model of this config needs, and how they travel."""

    name: str
    batching: bool  # max_batch_size > 0: a leading batch dimension of 1 is sent
    inputs: tuple[Tensor, ...]  # every input the client sends (control inputs excluded)
    outputs: tuple[Tensor, ...]
    decoupled: bool  # gRPC streaming, zero or many responses
    sequence: bool  # start / middle / end with a correlation ID
    string_id: bool  # the correlation ID is a string (CONTROL_SEQUENCE_CORRID of TYPE_STRING)
    # sequence_batching { iterative_sequence: true }: the model reschedules one request itself;
    # the client sends one request with no sequence flags (sequence stays False)
    iterative: bool = False

    @property
    def all_optional(self) -> bool:
        return bool(self.inputs) and all(t.optional for t in self.inputs)

    def kind(self) -> str:
        """A few words for the report: which kind of model this was verified as."""
        words = ["decoupled" if self.decoupled else "", "sequence" if self.sequence else "",
                 "iterative sequence" if self.iterative else ""]
        return " ".join(w for w in words if w) or "stateless"

    def shape(self, tensor: Tensor, images: bool = True) -> list[int]:
        """The shape sent for ``tensor``: variable dims as 1 (with ``images``, an image's as
        64x64, 3 channels), a batch of 1 when batching."""
        shape = (tensor.image_dims() if images else None) or \
            [d if d > 0 else IMAGE_SIDE if i in self._grid(tensor) and images else 1
             for i, d in enumerate(tensor.dims)]
        return [1, *shape] if self.batching else shape


    def _grid(self, tensor: Tensor) -> set[int]:
        """The variable dims of ``tensor`` where an image input of the same rank has its height
        and width: made as large (a score map beside its image: models check they agree)."""
        grid: set[int] = set()
        for other in self.inputs:
            dims = other.image_dims()
            if dims is None or len(other.dims) != len(tensor.dims):
                continue
            grid |= {i for i, d in enumerate(other.dims) if d < 0 and dims[i] == IMAGE_SIDE
                     and tensor.dims[i] < 0}
        return grid


def _tensor(raw: dict[str, Any]) -> Tensor:
    return Tensor(name=str(raw.get("name", "")),
                  datatype=DATATYPES.get(str(raw.get("data_type", "")), ""),
                  dims=tuple(int(d) for d in raw.get("dims", [])),
                  optional=bool(raw.get("optional", False)))


def plan(config: dict[str, Any]) -> Plan:
    """The plan for a model, from its completed config (Triton's JSON form of ModelConfig)."""
    seq = config.get("sequence_batching")
    controls: set[str] = set()
    string_id = False
    if isinstance(seq, dict):
        for control in seq.get("control_input", []):
            controls.add(str(control.get("name", "")))  # Triton fills these, never the client
            for c in control.get("control", []):
                if c.get("kind") == "CONTROL_SEQUENCE_CORRID" and \
                        c.get("data_type") == "TYPE_STRING":
                    string_id = True
        for state in seq.get("state", []):
            controls.add(str(state.get("input_name", "")))  # implicit state: the server's
    policy = config.get("model_transaction_policy") or {}
    iterative = isinstance(seq, dict) and bool(seq.get("iterative_sequence", False))
    return Plan(
        name=str(config.get("name", "")),
        batching=int(config.get("max_batch_size", 0) or 0) > 0,
        inputs=tuple(t for t in map(_tensor, config.get("input", [])) if t.name not in controls),
        outputs=tuple(map(_tensor, config.get("output", []))),
        decoupled=bool(policy.get("decoupled", False)),
        sequence=isinstance(seq, dict) and not iterative,
        string_id=string_id,
        iterative=iterative,
    )
