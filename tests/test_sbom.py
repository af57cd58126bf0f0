"""The SBOM's licenses: SPDX ids and expressions where the text parses as one (PEP 639's
reading), the name as written otherwise; the document stays valid CycloneDX 1.5 (checked by
the CycloneDX library's own strict validator)."""

from __future__ import annotations

import json

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from packer.lock.conda import CondaPackage
from packer.lock.lockfile import Lockfile
from packer.lock.pypi import Pin
from packer.pack.sbom import licenses, render


@pytest.mark.parametrize(("value", "expected"), [
    ("MIT", [{"license": {"id": "MIT"}}]),
    ("mit", [{"license": {"id": "MIT"}}]),  # SPDX ids are case-insensitive: written canonically
    ("Apache-2.0 OR mit", [{"expression": "Apache-2.0 OR MIT"}]),
    ("BSD-3-Clause AND (MIT OR Apache-2.0)",
     [{"expression": "BSD-3-Clause AND (MIT OR Apache-2.0)"}]),
    ("GPL-2.0-only WITH Classpath-exception-2.0",
     [{"expression": "GPL-2.0-only WITH Classpath-exception-2.0"}]),
    ("LicenseRef-Proprietary", [{"expression": "LicenseRef-Proprietary"}]),
    ("BSD License", [{"license": {"name": "BSD License"}}]),  # a classifier's words
    ("Copyright (c) 2005, NumPy Developers", [{"license": {"name": (
        "Copyright (c) 2005, NumPy Developers")}}]),
    ("", []),
    (None, []),
])
def test_license_as_spdx_where_it_parses(value: str | None, expected: list[object]) -> None:
    assert licenses(value) == expected


def test_the_document_is_valid_cyclonedx() -> None:
    conda = CondaPackage(name="python", version="3.10.13", build="h0_0", build_number=0,
                         subdir="linux-64", url="https://conda.anaconda.org/conda-forge/x.conda",
                         sha256="a" * 64, channel="https://conda.anaconda.org/conda-forge",
                         file_name="x.conda", license="Python-2.0")
    pins = (Pin("numpy", "1.26.4", (f"sha256:{'b' * 64}",)),
            Pin("attrs", "23.2.0", (f"sha256:{'c' * 64}",)),
            Pin("oddity", "1.0", (f"sha256:{'d' * 64}",)))
    lock = Lockfile(inputs={}, target={"release": "24.10"}, resolver="uv", conda=(conda,),
                    pypi=pins)
    text = render(lock, "m", {"numpy": "BSD License", "attrs": "MIT OR Apache-2.0",
                              "oddity": "LicenseRef-Oddity"},
                  (("m_utils/__init__.py", "e" * 64),)).decode()
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(text) is None
    by_name = {c["name"]: c.get("licenses") for c in json.loads(text)["components"]}
    assert by_name["python"] == [{"license": {"id": "Python-2.0"}}]
    assert by_name["attrs"] == [{"expression": "MIT OR Apache-2.0"}]
    assert by_name["numpy"] == [{"license": {"name": "BSD License"}}]
