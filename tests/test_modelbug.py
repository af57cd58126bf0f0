"""A bug in model.py, told apart from rejected inputs: each case from a real server log or
gRPC error message (tritonserver 2.51.0 of Triton 24.10), exact sentence out."""

from __future__ import annotations

import pytest

from packer.resolve.requirements import Requirements, Resolution
from packer.scan.imports import Kind
from packer.verify.modelbug import model_bug

from .conftest import FIXTURES

LOGS = FIXTURES / "logs"
NUMPY = Requirements(rows=(Resolution("numpy", Kind.THIRD_PARTY, "numpy", "recipe", False,
                                      ("model.py:1",)),), pypi=(), conda=(), warnings=())


@pytest.mark.parametrize(("name", "sentence"), [
    ("unbound_execute.msg",
     "unbound_exec/1/model.py:12 raises UnboundLocalError: local variable 'scale' referenced "
     "before assignment (a bug in the model, not in its inputs)"),
    ("syntax_init.log",
     "rules.py:1 raises SyntaxError: invalid syntax (rules.py, line 1) (a bug in the model, not "
     "in its inputs)"),
])
def test_a_bug_whatever_the_inputs_is_named_with_its_line(name: str, sentence: str) -> None:
    assert model_bug((LOGS / name).read_text()) == sentence


def test_a_module_without_the_attribute_names_the_locked_distribution() -> None:
    """numpy's own __getattr__ raised: the line named is the model's, which used np.float."""
    log = (LOGS / "module_attr.log").read_text()
    assert model_bug(log, requirements=NUMPY, versions={"numpy": "1.26.4"}) == (
        "attr_init/1/model.py:7 raises AttributeError: module 'numpy' has no attribute 'float' "
        "(a bug in the model or a wrong package, not in its inputs: the lock has numpy 1.26.4 "
        "for import numpy)")
    bson = log.replace("'numpy'", "'bson'").replace("'float'", "'loads'").replace("/numpy/", "/bson/")
    rows = Requirements(rows=(Resolution("bson", Kind.THIRD_PARTY, "pymongo", "table", False,
                                         ("model.py:1",)),), pypi=(), conda=(), warnings=())
    assert model_bug(bson, requirements=rows, versions={"pymongo": "4.10.1"},
                     providers={"bson": ("pymongo", "bson")}) == (
        "attr_init/1/model.py:7 raises AttributeError: module 'bson' has no attribute 'loads' "
        "(a bug in the model or a wrong package, not in its inputs: the lock has pymongo 4.10.1 "
        "for import bson; other distributions providing bson: bson)")


def _message(what: str, *frames: str) -> str:
    """A failed request's message as the server words it, frames innermost first."""
    at = "".join(f"  {f}\n" for f in frames or ("/tmp/r/m/1/model.py(9): execute",))
    return f"Failed to process the request(s) for model 'm_0', message: {what}\n\nAt:\n{at}"


def test_an_attribute_a_tensor_value_never_has_is_a_bug_of_the_model() -> None:
    """A BYTES tensor's element is a Python bytes, a tensor a numpy array, whatever the request
    holds: an attribute they lack (bytes.tobytes, ndarray.decode) fails for every input."""
    assert model_bug((LOGS / "bytes_tobytes.msg").read_text()) == (
        "bytes_as_array/1/model.py:13 raises AttributeError: 'bytes' object has no attribute "
        "'tobytes' (a bug in the model, not in its inputs: a BYTES tensor's elements are bytes, "
        "whatever the request holds)")
    assert model_bug(_message("AttributeError: 'numpy.ndarray' object has no attribute 'decode'")
                     ) == ("m/1/model.py:9 raises AttributeError: 'numpy.ndarray' object has no "
                           "attribute 'decode' (a bug in the model, not in its inputs: a tensor's "
                           "values are numpy arrays, whatever the request holds)")


def test_a_library_handed_bytes_for_an_array_names_the_models_line() -> None:
    """The library raised, but the line to fix is the model's call that handed it bytes."""
    message = _message("AttributeError: 'bytes' object has no attribute 'shape'",
                       "/env/lib/python3.10/site-packages/cv2/utils.py(40): size",
                       "/tmp/r/m/1/model.py(21): execute")
    assert model_bug(message).startswith("m/1/model.py:21 raises AttributeError: 'bytes' object")


def test_other_exceptions_are_not_bugs_of_the_model() -> None:
    """A ValueError, or an AttributeError of a value the request's content may decide (None from
    a missing optional input or cv2.imdecode, a str or dict from json.loads), may be the inputs'
    doing."""
    for what in ("ValueError: image too small: 1x1", "AttributeError: 'NoneType' object has no "
                 "attribute 'shape'", "AttributeError: 'str' object has no attribute 'get'",
                 "AttributeError: 'dict' object has no attribute 'decode'"):
        message = (f"Failed to process the request(s) for model 'm_0', message: {what}\n\nAt:\n"
                   "  /tmp/r/m/1/model.py(9): execute\n")
        assert model_bug(message, requirements=NUMPY) == ""
    assert model_bug((LOGS / "raised.log").read_text()) == ""
