"""The --json output's JSON Schemas (docs/schema/*.json), and one check of a real output
against them. ``run_cli`` checks every --json output a test produces; tests/test_json_schema.py
checks one of each kind on purpose."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schema"
URN = "urn:tritonpack:schema:v1:"


@functools.cache
def registry() -> Registry:  # type: ignore[type-arg]
    """Every schema under its ``$id``, so pack-repository's ``$ref`` finds pack and verify."""
    resources = []
    for path in sorted(SCHEMAS.glob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        assert contents["$id"] == URN + path.stem, f"{path}: $id must be {URN}{path.stem}"
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


def kind(payload: dict[str, Any]) -> str:
    """The schema an output is checked against: ``error`` for a failure, else its command's."""
    return "error" if "error" in payload else str(payload.get("command"))


def has_schema(payload: dict[str, Any]) -> bool:
    return (SCHEMAS / f"{kind(payload)}.json").is_file()


def validate(payload: dict[str, Any]) -> None:
    """Raise AssertionError naming the schema file and the first violation."""
    name = kind(payload)
    path = SCHEMAS / f"{name}.json"
    assert path.is_file(), (f"`tritonpack {payload.get('command')} --json` has no schema: "
                            f"describe it in docs/schema/{name}.json")
    schema = registry().get_or_retrieve(URN + name).value.contents
    validator = jsonschema.Draft202012Validator(schema, registry=registry())
    error = jsonschema.exceptions.best_match(validator.iter_errors(payload))
    if error is not None:
        where = "/".join(map(str, error.absolute_path)) or "(top level)"
        raise AssertionError(f"--json output does not match docs/schema/{name}.json at "
                             f"{where}: {error.message}")
