"""Version and platform guards: the scan keeps only the branch the target takes."""

from __future__ import annotations

import ast
import json

import pytest

from packer.scan.conditions import Target

from .conftest import MODELS, run_cli


@pytest.mark.parametrize(("release", "third_party", "stdlib"), [
    ("24.10", ["numpy", "tomli", "typing_extensions"], ["platform", "sys"]),  # Python 3.10
    ("24.12", ["numpy"], ["platform", "sys", "tomllib", "typing"]),  # Python 3.12
])
def test_version_guarded_imports(release: str, third_party: list[str], stdlib: list[str]) -> None:
    res = run_cli("scan", MODELS / "version_guard", "--triton", release, "--json")
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    kinds: dict[str, list[str]] = {}
    for row in data["imports"]:
        kinds.setdefault(row["kind"], []).append(row["import"])
    assert kinds == {"third-party": third_party, "stdlib": stdlib}
    assert data["warnings"] == []


@pytest.mark.parametrize(("test", "py310", "py312"), [
    ("sys.version_info >= (3, 11)", False, True),
    ("sys.version_info < (3, 11, 0)", True, False),
    ("sys.version_info >= (3, 10, 4)", None, True),  # the micro version is unknown
    ("sys.version_info[:2] == (3, 12)", False, True),
    ("sys.version_info[1] >= 11", False, True),
    ("sys.version_info.minor < 12", True, False),
    ("(3, 8) <= sys.version_info < (3, 11)", True, False),
    ("sys.platform == 'linux'", True, True),
    ("sys.platform in ('win32', 'cygwin')", False, False),
    ("sys.platform.startswith('linux')", True, True),
    ("platform.system() == 'Darwin'", False, False),
    ("not sys.platform == 'win32' and sys.version_info >= (3, 12)", False, True),
    ("sys.platform == 'win32' or os.environ.get('X')", None, None),
    ("sys.version_info >= (3, 12) or os.environ.get('X')", None, True),
    ("os.name == 'nt'", None, None),
])
def test_decide(test: str, py310: bool | None, py312: bool | None) -> None:
    expr = ast.parse(test, mode="eval").body
    assert (Target("3.10").decide(expr), Target("3.12").decide(expr)) == (py310, py312)
