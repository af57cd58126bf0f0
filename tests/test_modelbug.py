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


def test_other_exceptions_are_not_bugs_of_the_model() -> None:
    """A ValueError, or an AttributeError of an object (None.shape), may be the inputs' doing."""
    for what in ("ValueError: image too small: 1x1", "AttributeError: 'NoneType' object has no "
                 "attribute 'shape'"):
        message = (f"Failed to process the request(s) for model 'm_0', message: {what}\n\nAt:\n"
                   "  /tmp/r/m/1/model.py(9): execute\n")
        assert model_bug(message, requirements=NUMPY) == ""
    assert model_bug((LOGS / "raised.log").read_text()) == ""
