"""The checks of a response against the config and against --expect (requests given with
--inputs are read by ``samples``).

Triton itself does not check output shapes against the config, so neither does verify beyond a
warning: a wrong datatype or a value other than --expect's is a failure; a shape or rank other
than the config's, or a declared output not returned, is a warning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .infer import Response
from .kinds import DATATYPES, Plan

__all__ = ["DATATYPES", "check_outputs", "compare", "compare_all", "expected_responses"]


def check_outputs(plan: Plan, response: Response) -> tuple[list[str], list[str]]:
    """(failures, warnings) of one response: a wrong datatype fails; a missing output or a
    shape other than the config's is only a warning (Triton serves it)."""
    failures, warnings = [], []
    for out in plan.outputs:
        got = response.get(out.name)
        if got is None:
            warnings.append(f"output {out.name} is declared in config.pbtxt but was not returned")
            continue
        if out.datatype and got.datatype != out.datatype:
            failures.append(f"output {out.name}: datatype {got.datatype}, config says "
                            f"{out.datatype}")
        want = [-1, *out.dims] if plan.batching else list(out.dims)
        shape = list(got.shape)
        if len(shape) != len(want) or any(w not in (-1, s) for w, s in zip(want, shape,
                                                                          strict=False)):
            warnings.append(f"output {out.name}: shape {shape}, config says {want} (Triton "
                            "serves it; clients that trust the config may not)")
    return failures, warnings


def _flat(value: Any) -> list[Any]:
    import numpy as np
    return np.asarray(value, dtype=object).flatten().tolist() if isinstance(value, list) \
        else [value]


def _same(a: Any, b: Any, rtol: float) -> bool:
    if isinstance(a, bytes):
        a = a.decode(errors="replace")
    if isinstance(b, int | float) and isinstance(a, int | float):
        return abs(a - b) <= rtol * max(1.0, abs(b))
    return bool(a == b)


def expected_responses(expected_path: Path) -> list[dict[str, Any]] | dict[str, Any]:
    """--expect's content: one object (every response must equal it) or a list of objects
    (the responses in order, as many as listed: a decoupled model's stream)."""
    expected = json.loads(expected_path.read_text(encoding="utf-8"))
    if isinstance(expected, list):
        return [dict(e) for e in expected if isinstance(e, dict)]
    return dict(expected) if isinstance(expected, dict) else {}


def compare_all(responses: list[Response], expected_path: Path, rtol: float = 1e-5) -> list[str]:
    """Differences between every response and --expect: a list compares response i with its
    entry i (and the counts must agree); one object compares every response with it."""
    expected = expected_responses(expected_path)
    if not responses:
        return ["no response to compare with --expect"]
    if isinstance(expected, dict):
        wanted = [expected] * len(responses)
    elif len(expected) != len(responses):
        return [f"{len(responses)} response{'s' * (len(responses) != 1)}, --expect lists "
                f"{len(expected)}"]
    else:
        wanted = expected
    problems = []
    for i, (response, want) in enumerate(zip(responses, wanted, strict=True)):
        where = f"response {i + 1} of {len(responses)}: " if len(responses) > 1 else ""
        problems += [where + p for p in _compare(response, want, rtol)]
    return problems


def compare(response: Response, expected_path: Path, rtol: float = 1e-5) -> list[str]:
    """Differences between one response and --expect (JSON {name: nested list})."""
    return compare_all([response], expected_path, rtol)


def _compare(response: Response, expected: dict[str, Any], rtol: float) -> list[str]:
    import numpy as np
    problems = []
    for name, value in expected.items():
        flat = _flat(value)
        got = response.get(name)
        if got is None or got.data is None:
            problems.append(f"expected output {name} missing")
            continue
        have = np.asarray(got.data).flatten().tolist()
        if len(have) != len(flat) or not all(_same(a, b, rtol) for a, b in zip(have, flat,
                                                                              strict=False)):
            shown = [a.decode(errors="replace") if isinstance(a, bytes) else a for a in have[:8]]
            problems.append(f"output {name}: {shown} differs from the expected {flat[:8]}")
    return problems
