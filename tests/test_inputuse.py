"""What execute() does with each input, read from the AST, and the request that code expects
(no server: tests/test_verify.py sends them to real models)."""

from __future__ import annotations

import base64
import json
import struct
import textwrap
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from packer.scan.inputuse import input_uses
from packer.verify.expect_inputs import Expected, expected, png
from packer.verify.infer import synthesise
from packer.verify.kinds import plan

HEAD = """
import base64, io, json
import cv2
import numpy as np
from PIL import Image
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
"""


def model(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "model.py"
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(body), "    "))
    return path


def request(tmp_path: Path, body: str, inputs: list[tuple[str, str, list[int]]],
            batch: int = 0) -> Expected | None:
    config = {"name": "m", "max_batch_size": batch,
              "input": [{"name": n, "data_type": f"TYPE_{t}", "dims": d} for n, t, d in inputs]}
    p = plan(config)
    return expected(p, input_uses(model(tmp_path, body)), lambda: synthesise(p))


def only(got: Expected | None, name: str) -> Any:
    assert got is not None
    return got.arrays[name]


def test_image_bytes_through_a_helper_are_a_real_png(tmp_path: Path) -> None:
    got = request(tmp_path, """
        def _open(self, raw):
            return Image.open(io.BytesIO(raw))

        def execute(self, requests):
            for request in requests:
                files = pb_utils.get_input_tensor_by_name(request, "FILES").as_numpy()
                images = [self._open(f) for f in files.flatten()]
        """, [("FILES", "STRING", [1])], batch=4)
    assert got is not None
    assert got.sources == {"FILES": "synthesized from execute()'s use at model.py:11"}
    assert only(got, "FILES").shape == (1, 1) and only(got, "FILES")[0, 0] == png()


def test_png_is_a_valid_64x64_rgb_gradient() -> None:
    data = png()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    assert (width, height, depth, color) == (64, 64, 8, 2)
    pos, chunks = 8, {}
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + size]
        assert struct.unpack(">I", data[pos + 8 + size:pos + 12 + size])[0] == \
            zlib.crc32(kind + body)
        chunks[kind] = body
        pos += 12 + size
    pixels = zlib.decompress(chunks[b"IDAT"])
    assert len(pixels) == 64 * (1 + 64 * 3) and len(set(pixels)) > 100  # not blank
    assert list(chunks) == [b"IHDR", b"IDAT", b"IEND"]


def test_base64_of_an_image_and_base64_of_text(tmp_path: Path) -> None:
    got = request(tmp_path, """
        def execute(self, requests):
            for request in requests:
                b64 = pb_utils.get_input_tensor_by_name(request, "B64").as_numpy()[0]
                img = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), 1)
                note = pb_utils.get_input_tensor_by_name(request, "NOTE").as_numpy()[0]
                words = base64.b64decode(note).decode("utf-8").split()
        """, [("B64", "STRING", [1]), ("NOTE", "STRING", [1])])
    assert base64.b64decode(only(got, "B64")[0]) == png()
    assert base64.b64decode(only(got, "NOTE")[0]) == b"tritonpack"


def test_json_with_the_keys_the_code_reads(tmp_path: Path) -> None:
    got = request(tmp_path, """
        def execute(self, requests):
            for request in requests:
                raw = pb_utils.get_input_tensor_by_name(request, "REQ").as_numpy()[0]
                body = json.loads(raw.decode("utf-8"))
                image = Image.open(io.BytesIO(base64.b64decode(body["image"])))
                for box in body["boxes"]:
                    area = box["w"] * 2
                if body.get("mode", "fast") == "slow" or float(body["threshold"]) > 0.5:
                    pass
                prompt = self.tokenizer(body["prompt"], return_tensors="np")
        """, [("REQ", "STRING", [1])])
    value = json.loads(only(got, "REQ")[0])
    assert base64.b64decode(value.pop("image")) == png()
    assert value == {"boxes": [{"w": 1}], "mode": "fast", "threshold": 1,
                     "prompt": "The quick brown fox jumps over the lazy dog."}


def test_shape_unpacked_to_h_w_c_is_an_image_of_that_rank(tmp_path: Path) -> None:
    body = """
        def execute(self, requests):
            for request in requests:
                x = pb_utils.get_input_tensor_by_name(request, "X").as_numpy()
                for one in x:
                    h, w, c = one.shape
                    if h < 224:
                        raise ValueError("too small")
        """
    got = request(tmp_path, body, [("X", "FP32", [-1, -1, -1])], batch=2)
    x = only(got, "X")
    assert x.shape == (1, 224, 64, 3) and x.dtype == np.float32 and x.std() > 0
    assert got is not None and got.sources == {"X": "synthesized from execute()'s use at "
                                                   "model.py:14"}


def test_channels_first_and_a_literal_reshape(tmp_path: Path) -> None:
    got = request(tmp_path, """
        def execute(self, requests):
            for request in requests:
                x = pb_utils.get_input_tensor_by_name(request, "X").as_numpy()
                if x.shape[1] != 3:
                    raise ValueError("CHW")
                flat = pb_utils.get_input_tensor_by_name(request, "FLAT").as_numpy()
                image = flat.reshape(1, 3, 8, 8)
        """, [("X", "FP32", [-1, -1, -1]), ("FLAT", "FP32", [-1])], batch=1)
    assert only(got, "X").shape == (1, 3, 64, 64)
    assert only(got, "FLAT").shape == (1, 192)


def test_unknown_rank_3_uint8_is_an_image_and_plain_inputs_stay_plain(tmp_path: Path) -> None:
    config = {"name": "m", "max_batch_size": 0, "input": [
        {"name": "IMAGE", "data_type": "TYPE_UINT8", "dims": [-1, -1, -1]},
        {"name": "NCHW", "data_type": "TYPE_FP32", "dims": [-1, 3, -1, -1]},
        {"name": "SCALE", "data_type": "TYPE_FP32", "dims": [-1]}]}
    arrays = synthesise(plan(config))
    assert arrays["IMAGE"].shape == (64, 64, 3) and arrays["IMAGE"].std() > 0
    assert arrays["NCHW"].shape == (1, 3, 64, 64)
    assert arrays["SCALE"].tolist() == [1.0]
    got = request(tmp_path, """
        def execute(self, requests):
            for request in requests:
                scale = pb_utils.get_input_tensor_by_name(request, "SCALE").as_numpy() * 2
        """, [("SCALE", "FP32", [-1])])
    assert got is None  # nothing read of SCALE's shape or bytes: the plain request is it


def test_input_names_from_constants_and_loops(tmp_path: Path) -> None:
    path = model(tmp_path, """
        def initialize(self, args):
            self.image_input = "IMAGE"

        def execute(self, requests):
            for request in requests:
                raw = pb_utils.get_input_tensor_by_name(request, self.image_input).as_numpy()
                cv2.imdecode(raw, cv2.IMREAD_COLOR)
                for name in ["A", "B"]:
                    text = pb_utils.get_input_tensor_by_name(request, name).as_numpy()[0]
                    str(text, "utf-8")
        """)
    assert [(u.input, u.kind) for u in input_uses(path)] == [
        ("IMAGE", "image"), ("A", "text"), ("B", "text")]


def test_unreadable_model_py_has_no_uses(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text("def execute(:\n")
    assert input_uses(tmp_path / "model.py") == ()
    deep = "x = " + "(" * 5000 + "1" + ")" * 5000 + "\n"
    (tmp_path / "model.py").write_text(deep)
    assert input_uses(tmp_path / "model.py") == ()


def test_a_url_fetched_is_not_image_bytes(tmp_path: Path) -> None:
    """Image.open(requests.get(url).raw): the input is a URL, not the image (nothing shaped)."""
    got = request(tmp_path, """
        def execute(self, requests):
            for request in requests:
                url = pb_utils.get_input_tensor_by_name(request, "URL").as_numpy()[0]
                image = Image.open(rq.get(url.decode("utf-8"), stream=True).raw)
        """, [("URL", "STRING", [1])])
    assert got is not None and only(got, "URL")[0] == b"tritonpack"  # text, not a PNG


def test_tobytes_is_recorded_with_the_dims_indexed_away(tmp_path: Path) -> None:
    """verify names ``x[0].tobytes()`` of a BYTES tensor of rank 2 as the model's bug (an
    object array's bytes are its elements' addresses); ``x[0][0]`` is an element."""
    path = model(tmp_path, """
        def execute(self, requests):
            for request in requests:
                raw = pb_utils.get_input_tensor_by_name(request, "RAW").as_numpy()[0]
                data = raw.tobytes() if hasattr(raw, "tobytes") else raw.item()
                for row in pb_utils.get_input_tensor_by_name(request, "ROWS").as_numpy():
                    json.loads(row[0].tobytes())
    """)
    uses = [(u.input, u.line, u.offset) for u in input_uses(path) if u.kind == "tobytes"]
    assert uses == [("RAW", 13, 1), ("ROWS", 15, 2)]


def test_tobytes_of_an_array_cast_from_objects_is_not_recorded(tmp_path: Path) -> None:
    """``x.astype(bytes).tobytes()`` is the content of a BYTES tensor, not its elements'
    addresses: a model that does it is right, and verify must not name it as the model's bug
    (exit 18) when the made-up inputs fail it; a cast back to objects still is recorded."""
    path = model(tmp_path, """
        def execute(self, requests):
            for request in requests:
                a = pb_utils.get_input_tensor_by_name(request, "A").as_numpy()
                b = pb_utils.get_input_tensor_by_name(request, "B").as_numpy()
                c = pb_utils.get_input_tensor_by_name(request, "C").as_numpy()
                d = pb_utils.get_input_tensor_by_name(request, "D").as_numpy()
                fixed = a.astype(bytes)
                Image.open(io.BytesIO(fixed.tobytes()))
                Image.open(io.BytesIO(np.asarray(b, dtype="S").tobytes()))
                Image.open(io.BytesIO(c.astype(np.bytes_)[0].tobytes()))
                Image.open(io.BytesIO(d.astype(object).tobytes()))
    """)
    uses = [(u.input, u.offset) for u in input_uses(path) if u.kind == "tobytes"]
    assert uses == [("D", 0)]
