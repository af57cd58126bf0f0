"""Inference over gRPC for every kind of model: binary tensors (BF16 included), decoupled
models over a stream until the final flag, sequences with a correlation ID and start/end flags.

gRPC rather than HTTP/JSON: JSON cannot carry BF16, and Triton's HTTP endpoint refuses
decoupled models. The wait for every answer is bounded by ``timeout``.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from typing import Any

from .kinds import Plan, Tensor


@dataclass(frozen=True)
class Output:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: Any  # numpy array (None when the datatype has no numpy form)


Response = dict[str, Output]


class InferFailed(Exception):
    """The server refused the request, or did not answer in time (``timed_out``), or the
    connection dropped (``dropped``)."""

    def __init__(self, message: str, *, timed_out: bool = False, dropped: bool = False):
        super().__init__(message)
        self.message = message
        self.timed_out = timed_out
        self.dropped = dropped


def _fill(tensor: Tensor, shape: list[int], callee: str | None) -> Any:
    """Plausible values: 1 for numbers, True, the bytes b'tritonpack' for strings; a string input
    named like a model name (BLS examples take the model to call as an input) gets the name of
    a model loaded beside it."""
    import numpy as np
    from tritonclient.utils import triton_to_np_dtype

    if tensor.datatype == "BYTES":
        text = callee if callee and "model" in tensor.name.lower() else "tritonpack"
        return np.full(shape, text.encode(), dtype=np.object_)
    if tensor.image_like:
        # a 64x64 gradient: models (PIL, OpenCV) refuse 1x1 images and constant ones
        gradient = np.arange(int(np.prod(shape))) % 256
        array = gradient.reshape(shape).astype(triton_to_np_dtype(tensor.datatype))
        return array if tensor.datatype == "UINT8" else array / 255
    return np.ones(shape, dtype=triton_to_np_dtype(tensor.datatype))


def synthesise(plan: Plan, *, callee: str | None = None, images: bool = True) -> dict[str, Any]:
    """One request's inputs, by name: every input, optional ones too, -1 dims as 1 (images as
    64x64 unless ``images`` is False: inputs of one model may have to agree in size), a batch
    of 1 when batching; ``callee``: a model loaded beside this one (see _fill)."""
    return {t.name: _fill(t, plan.shape(t, images), callee) for t in plan.inputs}


def _inputs(plan: Plan, arrays: dict[str, Any]) -> list[Any]:
    import tritonclient.grpc as grpcclient

    types = {t.name: t.datatype for t in plan.inputs}
    out = []
    for name, array in arrays.items():
        datatype = types.get(name) or _datatype_of(array)
        inp = grpcclient.InferInput(name, list(array.shape), datatype)
        inp.set_data_from_numpy(array)
        out.append(inp)
    return out


def _datatype_of(array: Any) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return str(np_to_triton_dtype(array.dtype))


def _read(result: Any) -> Response:
    response = result.get_response()
    outputs: Response = {}
    for out in response.outputs:
        try:
            data = result.as_numpy(out.name)
        except Exception:  # a datatype tritonclient cannot turn into numpy
            data = None
        outputs[out.name] = Output(out.name, out.datatype, tuple(int(d) for d in out.shape), data)
    return outputs


def _final(result: Any) -> bool:
    params = result.get_response().parameters
    return "triton_final_response" in params and bool(params["triton_final_response"].bool_param)


def _failed(exc: Any) -> InferFailed:
    status = str(getattr(exc, "status", lambda: "")() or "")
    text = str(exc.message() if hasattr(exc, "message") else exc)
    if "DEADLINE_EXCEEDED" in status or "Deadline Exceeded" in text:
        return InferFailed(text, timed_out=True)
    if "UNAVAILABLE" in status or "Socket closed" in text or "Connection reset" in text:
        return InferFailed(text, dropped=True)
    return InferFailed(text)


class GrpcModel:
    """One model on one server, spoken to over gRPC."""

    def __init__(self, url: str, plan: Plan, timeout: float, sequence_id: int = 1):
        import tritonclient.grpc as grpcclient

        self.client = grpcclient.InferenceServerClient(url)
        self.plan = plan
        self.timeout = timeout
        self.sequence_id = sequence_id  # concurrent clients of a sequence model each need one

    def close(self) -> None:
        self.client.close()

    def run(self, arrays: dict[str, Any]) -> list[Response]:
        """Every response the model gives to ``arrays`` (a sequence: start, middle, end)."""
        steps = [(True, False), (False, False), (False, True)] if self.plan.sequence else \
            [(False, False)]
        seq_id: int | str = 0
        if self.plan.sequence:
            seq_id = f"tritonpack-{self.sequence_id}" if self.plan.string_id else self.sequence_id
        if self.plan.decoupled:
            return self._stream(arrays, steps, seq_id)
        from tritonclient.utils import InferenceServerException

        responses = []
        for start, end in steps:
            try:
                result = self.client.infer(
                    self.plan.name, _inputs(self.plan, arrays), sequence_id=seq_id,
                    sequence_start=start, sequence_end=end, client_timeout=self.timeout)
            except InferenceServerException as exc:
                raise _failed(exc) from exc
            responses.append(_read(result))
        return responses

    def _stream(self, arrays: dict[str, Any], steps: list[tuple[bool, bool]],
                seq_id: int | str) -> list[Response]:
        """A decoupled model: responses until the final flag of each request, or the deadline."""
        from tritonclient.utils import InferenceServerException

        answers: queue.Queue[tuple[Any, Any]] = queue.Queue()
        self.client.start_stream(callback=lambda result, error: answers.put((result, error)))
        responses: list[Response] = []
        try:
            for start, end in steps:
                try:
                    self.client.async_stream_infer(
                        self.plan.name, _inputs(self.plan, arrays), sequence_id=seq_id,
                        sequence_start=start, sequence_end=end, enable_empty_final_response=True)
                except InferenceServerException as exc:
                    raise _failed(exc) from exc
                while True:
                    try:
                        result, error = answers.get(timeout=self.timeout)
                    except queue.Empty as exc:
                        raise InferFailed(f"no final response within {self.timeout:.0f}s",
                                          timed_out=True) from exc
                    if error is not None:
                        raise _failed(error)
                    read = _read(result)
                    if read:  # the empty final response carries no outputs
                        responses.append(read)
                    if _final(result):
                        break
        finally:
            self.client.stop_stream(cancel_requests=True)
        return responses
