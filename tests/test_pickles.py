"""Dependencies hidden in pickles: read with pickletools, never unpickled."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import pickle
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from packer.scan import pickles

from .conftest import MODELS, run_cli

JOBLIB = MODELS / "sklearn_pickle" / "1" / "model.joblib"
NUMPY2 = Path(__file__).parent / "fixtures" / "pickles" / "numpy2_pipeline.joblib"
SKLEARN = ["sklearn.pipeline", "sklearn.preprocessing._data", "numpy.core.multiarray", "numpy",
           "joblib.numpy_pickle", "sklearn.linear_model._logistic"]


def scan(model: Path, *args: str) -> dict[str, object]:
    res = run_cli("scan", model, "--json", *args)
    assert res.exit_code == 0, res.stderr
    data: dict[str, object] = json.loads(res.stdout)
    return data


def test_sklearn_pipeline_in_a_joblib_file_needs_scikit_learn() -> None:
    data = scan(MODELS / "sklearn_pickle", "--triton", "24.12")
    rows = {r["import"]: r for r in data["imports"]}  # type: ignore[union-attr]
    assert rows["sklearn"]["distribution"] == "scikit-learn"
    assert rows["sklearn"]["where"] == ["sklearn_pickle/1/model.joblib"]
    assert data["requirements"] == ["joblib", "numpy", "scikit-learn==1.7.2"]  # as pickled


def test_joblib_array_bytes_between_opcodes_do_not_hide_later_classes() -> None:
    modules, patterns = pickles.modules_in(JOBLIB.read_bytes())
    assert patterns  # the opcode walk stopped at the first array's raw bytes
    assert list(dict.fromkeys(modules)) == SKLEARN


@pytest.mark.parametrize("compress", [gzip.compress, zlib.compress, bz2.compress, lzma.compress,
                                      lambda b: lzma.compress(b, format=lzma.FORMAT_ALONE)])
def test_joblib_compressed_files(tmp_path: Path, compress: object) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(compress(JOBLIB.read_bytes()))  # type: ignore[operator]
    refs = pickles.read_refs(path)
    assert (list(refs.modules), refs.problem) == (SKLEARN, None)


PROTO2 = (b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01"
          b"ctorch._utils\n_rebuild_tensor_v2\nq\x02)Rq\x03.")
PROTO4 = (b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x0ctorch._utils\x94"
          b"\x8c\x12_rebuild_tensor_v2\x94\x93\x94)R\x94h\x00\x8c\x0e_rebuild_param\x94\x93)R.")


def test_protocol_2_names_python_2_modules_mapped_to_python_3(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "old.pkl"
    path.write_bytes(pickle.dumps({1, 2}, protocol=2))  # c__builtin__\nset
    assert b"__builtin__" in path.read_bytes()
    assert pickles.read_refs(path).modules == ("builtins",)


def test_torch_save_zip_reads_its_data_pkl(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("weights/data.pkl", PROTO4)
        zf.writestr("weights/data/0", b"\x00" * 64)
        zf.writestr("weights/version", b"3\n")
    assert pickles.read_refs(path).modules == ("torch._utils",)


def test_legacy_torch_save_is_pickles_one_after_another(tmp_path: Path) -> None:
    path = tmp_path / "old.pth"
    path.write_bytes(b"\x80\x02K\x01." + PROTO2 + b"\x00" * 16)
    assert pickles.read_refs(path).modules == ("collections", "torch._utils")


def test_other_weight_formats_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    assert pickles.read_refs(path) == pickles.PickleRefs(path, ())


def test_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    command = f"touch {marker}".encode()
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x02cposix\nsystem\nq\x00X" + struct.pack("<I", len(command))
                     + command + b"\x85R.")
    assert pickles.read_refs(path).modules == ("posix",)
    assert not marker.exists()


def test_unreadable_files_and_main_classes_are_reported(tmp_path: Path) -> None:
    model = shutil.copytree(MODELS / "sklearn_pickle", tmp_path / "sklearn_pickle")
    (model / "1" / "notes.pkl").write_bytes(b"hello, not a pickle")
    (model / "1" / "cut.joblib").write_bytes(gzip.compress(JOBLIB.read_bytes())[:40])
    (model / "extra.pickle").write_bytes(b"\x80\x04\x8c\x08__main__\x8c\x07MyScaler\x93.")
    data = scan(model, "--triton", "24.12")
    warnings = data["warnings"]
    assert "sklearn_pickle/1/notes.pkl: not a pickle (no protocol header)" in warnings  # type: ignore[operator]
    assert any(w.startswith("sklearn_pickle/1/cut.joblib: cannot be read: ")  # type: ignore[union-attr]
               for w in warnings)  # type: ignore[union-attr]
    assert ("sklearn_pickle/extra.pickle names __main__: a class defined in the script that "
            "saved it, which the server cannot import (move it into a module of yours and save "
            "again)") in warnings  # type: ignore[operator]


def test_bytes_read_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pickles, "MAX_BYTES", 400)
    path = tmp_path / "model.joblib"
    shutil.copy(JOBLIB, path)
    refs = pickles.read_refs(path)
    assert refs.modules == ("sklearn.pipeline", "sklearn.preprocessing._data",
                            "numpy.core.multiarray", "numpy", "joblib.numpy_pickle")
    assert refs.problem == "only its first 0 MiB were read"


def test_numpy2_pickle_for_a_numpy1_release_is_warned(tmp_path: Path) -> None:
    model = shutil.copytree(MODELS / "sklearn_pickle", tmp_path / "sklearn_pickle")
    shutil.copy(NUMPY2, model / "1" / "model.joblib")
    pickled = ("sklearn_pickle/1/model.joblib was pickled with scikit-learn 1.9.1: locking that "
               "version")
    assert scan(model, "--triton", "24.12")["warnings"] == [pickled]
    data = scan(model, "--triton", "24.10")
    assert data["warnings"] == [
        "sklearn_pickle/1/model.joblib was saved under numpy 2 (it names "
        "numpy._core.multiarray); numpy<2, the bound of Triton 24.10, has no numpy._core: save "
        "it again under numpy 1, or target 24.11 or later", pickled]


@pytest.mark.slow
@pytest.mark.server
def test_sklearn_pipeline_packs_and_answers_in_tritonserver(tmp_path: Path) -> None:
    """The pickle's dependency, found statically, is what makes the model load in the server."""
    model = shutil.copytree(MODELS / "sklearn_pickle", tmp_path / "sklearn_pickle")
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--verify", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["verify"]["passed"]
    assert out["verify"]["probe"]["imports"]["sklearn"] == "ok"


def test_a_huge_memo_index_costs_nothing(tmp_path: Path) -> None:
    """17 bytes that asked the old memo list for 2**31 slots (24 GB, then the OOM killer)."""
    bomb = tmp_path / "model.pkl"
    bomb.write_bytes(b"\x80\x02cos\nsystem\n" + b"r\xff\xff\xff\x7f" + b".")
    refs = pickles.read_refs(bomb)
    assert refs.modules == ("os",)


def test_an_encrypted_or_oddly_compressed_torch_zip_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02cos\nsystem\n.")
    raw = bytearray(path.read_bytes())
    raw[6] |= 0x01  # the local header's flag: encrypted
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 8] |= 0x01  # and the central directory's
    path.write_bytes(bytes(raw))
    refs = pickles.read_refs(path)
    assert refs.modules == ()
    assert refs.problem is not None and refs.problem.startswith("cannot be read: ")


@pytest.mark.parametrize(("protocol", "count"), [(2, 12), (4, 12), (4, 300), (5, 70000)])
def test_the_fitted_column_count_is_read_without_unpickling(tmp_path: Path, protocol: int,
                                                            count: int) -> None:
    """BININT1, BININT2 and BININT counts, BINUNICODE (2) and SHORT_BINUNICODE (4+) keys; the
    first estimator's count wins (a Pipeline writes its first step first)."""
    import collections
    first = collections.OrderedDict([("n_features_in_", count), ("coef_", [1.0] * 3)])
    later = collections.OrderedDict([("n_features_in_", 5)])
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"steps": [first, later]}, protocol=protocol))
    assert pickles.feature_count(path) == count
    joblib = tmp_path / "model.joblib"
    joblib.write_bytes(gzip.compress(path.read_bytes()))
    assert pickles.feature_count(joblib) == count


def test_no_fitted_column_count(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"n_features": 12}, protocol=4))
    assert pickles.feature_count(path) is None
    weights = tmp_path / "model.pt"  # torch.save's zip: weights, no estimator
    weights.write_bytes(b"PK\x03\x04")
    assert pickles.feature_count(weights) is None
    assert pickles.feature_count(tmp_path / "absent.pkl") is None
