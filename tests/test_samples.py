"""Inputs the model accepts, read from what users write for Triton's own tools (no server)."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import numpy as np

from packer.verify.kinds import plan
from packer.verify.samples import choose, from_perf_data, from_warmup

CONFIG = {
    "name": "m", "max_batch_size": 4,
    "input": [{"name": "TEXT", "data_type": "TYPE_STRING", "dims": [1]},
              {"name": "X", "data_type": "TYPE_FP32", "dims": [2]}],
}


def test_warmup_zero_random_and_file_data(tmp_path: Path) -> None:
    (tmp_path / "warmup").mkdir()
    (tmp_path / "warmup" / "text").write_bytes(struct.pack("<I", 3) + b"abc")
    config = {**CONFIG, "model_warmup": [{"name": "w", "batch_size": 2, "inputs": {
        "TEXT": {"data_type": "TYPE_STRING", "dims": ["1"], "input_data_file": "text"},
        "X": {"data_type": "TYPE_FP32", "dims": ["2"], "random_data": True}}}]}
    req = from_warmup(config, plan(config), tmp_path)
    assert req is not None and req.source == "model_warmup 'w'" and not req.made_up
    assert req.arrays["TEXT"].tolist() == [[b"abc"], [b"abc"]]  # batch_size 2, one string
    assert req.arrays["X"].shape == (2, 2) and req.arrays["X"].dtype == np.float32
    zero = {**CONFIG, "model_warmup": [{"name": "z", "batch_size": 1, "inputs": {
        "X": {"data_type": "TYPE_FP32", "dims": [2], "zero_data": True}}}]}
    req = from_warmup(zero, plan(zero), tmp_path)
    assert req is not None and req.arrays["X"].tolist() == [[0.0, 0.0]]


def test_perf_analyzer_input_data_forms() -> None:
    p = plan(CONFIG)
    serialized = struct.pack("<I", 2) + b"hi"
    raw = {"data": [{"TEXT": {"b64": base64.b64encode(serialized).decode(), "shape": [1]},
                     "X": [1.5, 2.5]}, {"TEXT": ["ignored"]}]}
    arrays = from_perf_data(raw, p)
    assert arrays["TEXT"].tolist() == [[b"hi"]]  # shape [1], plus the batch of one
    assert arrays["X"].tolist() == [[1.5, 2.5]] and arrays["X"].dtype == np.float32


def test_made_up_only_when_nothing_else(tmp_path: Path) -> None:
    p = plan(CONFIG)
    req = choose(p, CONFIG, tmp_path, None, lambda: {"X": np.ones((1, 2), np.float32)})
    assert req.made_up and req.source == "made up from the config"
    (tmp_path / "perf_input_data.json").write_text(json.dumps({"data": [{"X": [3, 4]}]}))
    req = choose(p, CONFIG, tmp_path, None, lambda: {})
    assert not req.made_up and req.arrays["X"].tolist() == [[3.0, 4.0]]


def test_images_are_made_up_as_gradients() -> None:
    from packer.verify.infer import synthesise

    config = {"name": "i", "max_batch_size": 2, "input": [
        {"name": "HWC", "data_type": "TYPE_UINT8", "dims": [-1, -1, 3]},
        {"name": "CHW", "data_type": "TYPE_FP32", "dims": [3, -1, -1]},
        {"name": "SEQ", "data_type": "TYPE_FP32", "dims": [-1, -1, 7]}]}
    arrays = synthesise(plan(config))
    assert arrays["HWC"].shape == (1, 64, 64, 3) and arrays["HWC"].std() > 0
    assert arrays["CHW"].shape == (1, 3, 64, 64) and 0 <= arrays["CHW"].max() <= 1
    # not an image, but its variable dims are where HWC's height and width are: as large (a
    # score map beside its image); the request tried next has every variable dim as 1
    assert arrays["SEQ"].shape == (1, 64, 64, 7)
    assert synthesise(plan(config), images=False)["SEQ"].shape == (1, 1, 1, 7)


def test_a_variable_width_is_made_as_wide_as_the_pickled_estimator() -> None:
    """tests/fixtures/verify/fitted_width: FEATURES [-1, -1], the weights pickled in 1/ were
    fitted on 12 columns; that request comes before the plain one (one column), which the
    model refuses."""
    model_dir = Path(__file__).parent / "fixtures" / "verify" / "fitted_width"
    config = {"name": "fitted_width", "max_batch_size": 0, "input": [
        {"name": "FEATURES", "data_type": "TYPE_FP32", "dims": [-1, -1]},
        {"name": "TEXT", "data_type": "TYPE_STRING", "dims": [-1]}]}
    plain = {"FEATURES": np.ones((1, 1), np.float32), "TEXT": np.array([b"x"], np.object_)}
    first = choose(plan(config), config, model_dir, None, lambda: plain)
    assert first.arrays["FEATURES"].shape == (1, 12) and first.arrays["TEXT"] is plain["TEXT"]
    assert first.source == "12 columns, as the estimator in weights.pkl was fitted"
    assert first.sources == {"FEATURES": first.source, "TEXT": "made up from the config"}
    fixed = {**config, "input": [{"name": "FEATURES", "data_type": "TYPE_FP32", "dims": [4]}]}
    req = choose(plan(fixed), fixed, model_dir, None, lambda: {"FEATURES": np.ones((1, 4))})
    assert req.source == "made up from the config"  # no variable width: nothing to widen


def test_a_pickled_column_count_no_table_has_makes_no_request(tmp_path: Path) -> None:
    """The count is read from a pickle's bytes, which may say anything: 2**31 - 1 columns
    was an 8 GB array made in tritonpack's memory. Past 64 MB an input is not widened (the
    test's 2**25 columns of float32: 128 MB)."""
    import pickle

    from packer.verify.samples import FITTED_MAX_BYTES, from_estimator

    config = {"name": "wide", "max_batch_size": 0, "input": [
        {"name": "FEATURES", "data_type": "TYPE_FP32", "dims": [-1, -1]}]}
    plain = {"FEATURES": np.ones((1, 1), np.float32)}
    for count, widened in ((1 << 22, True), (1 << 25, False)):
        (tmp_path / "model.pkl").write_bytes(pickle.dumps({"n_features_in_": count}, protocol=4))
        req = from_estimator(plan(config), tmp_path, plain)
        assert (req is not None) is widened, count
    assert (1 << 22) * 4 <= FITTED_MAX_BYTES < (1 << 25) * 4
