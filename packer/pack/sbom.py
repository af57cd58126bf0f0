"""``--sbom``: a CycloneDX 1.5 JSON bill of materials of the environment, beside it.

Every conda package and PyPI pin from the lock, with version, package URL, SHA-256
hashes and license (an SPDX id or expression where it parses as one). No timestamp and a
serial number derived from the lock: the same lock gives the same bytes, like the archive.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

from ..core.redact import strip
from ..core.version import __version__
from ..lock.lockfile import Lockfile

SPEC = "1.5"


def sbom_path(env: Path) -> Path:
    return env.with_name(env.name.removesuffix(".tar.gz") + ".cdx.json")


def licenses(value: str | None) -> list[dict[str, Any]]:
    """A component's ``licenses``: an SPDX id (``{"license": {"id": "MIT"}}``) or expression
    (``{"expression": "MIT OR Apache-2.0"}``) where ``value`` parses as one (PEP 639's reading,
    ``packaging.licenses``, which also spells ``mit`` as ``MIT``), else the name as written
    (``BSD License``, a classifier's words)."""
    if not value or not value.strip():
        return []
    try:
        spdx = str(canonicalize_license_expression(value))
    except InvalidLicenseExpression:
        return [{"license": {"name": value}}]
    if " " in spdx or spdx.startswith("LicenseRef-"):  # AND / OR / WITH, or not a listed id
        return [{"expression": spdx}]
    return [{"license": {"id": spdx}}]


def document(lock: Lockfile, model: str, by_name: dict[str, str],
             bundled: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """The bill of materials; ``by_name``: each PyPI distribution's license as its METADATA
    says; ``bundled``: (site-packages path, sha256) of every file bundled from --src."""
    components: list[dict[str, Any]] = []
    for pkg in lock.conda:
        purl = (f"pkg:conda/{pkg.name}@{quote(pkg.version)}?build={quote(pkg.build)}"
                f"&subdir={pkg.subdir}&channel={quote(strip(pkg.channel), safe='')}")
        components.append({
            "type": "library", "bom-ref": purl, "name": pkg.name, "version": pkg.version,
            "purl": purl, "hashes": [{"alg": "SHA-256", "content": pkg.sha256}],
            "licenses": licenses(pkg.license),
            "properties": [{"name": "tritonpack:source", "value": "conda"},
                           {"name": "tritonpack:url", "value": strip(pkg.url)}],
        })
    for pin in lock.pypi:
        purl = f"pkg:pypi/{pin.name}@{quote(pin.version)}"
        components.append({
            "type": "library", "bom-ref": purl, "name": pin.name, "version": pin.version,
            "purl": purl,
            "hashes": [{"alg": "SHA-256", "content": h.split(":", 1)[1]} for h in pin.hashes],
            "licenses": licenses(by_name.get(pin.name)),
            "properties": [{"name": "tritonpack:source", "value": "pypi"}],
        })
    for rel, sha in bundled:
        components.append({
            "type": "file", "bom-ref": f"bundled:{rel}", "name": rel,
            "hashes": [{"alg": "SHA-256", "content": sha}],
            "properties": [{"name": "tritonpack:source", "value": "--src"}],
        })
    serial = uuid.UUID(hashlib.sha256(lock.content_hash.encode()).hexdigest()[:32])
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC,
        "serialNumber": serial.urn,
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "tritonpack",
                                      "version": __version__}]},
            "component": {"type": "application", "bom-ref": f"triton-model:{model}",
                          "name": model},
            "properties": [{"name": "tritonpack:triton", "value": lock.target.get("release", "")},
                           {"name": "tritonpack:lock", "value": lock.content_hash},
                           *_strip_property(lock)],
        },
        "components": components,
        "dependencies": [{"ref": f"triton-model:{model}",
                          "dependsOn": [c["bom-ref"] for c in components]}],
    }


def render(lock: Lockfile, model: str, by_name: dict[str, str],
           bundled: tuple[tuple[str, str], ...] = ()) -> bytes:
    return (json.dumps(document(lock, model, by_name, bundled), indent=2) + "\n").encode()


def _strip_property(lock: Lockfile) -> list[dict[str, str]]:
    """``--strip``: the wheels' ELF files ship without their debug sections, so their bytes
    differ from the wheels' (hashed above); their RECORDs in the environment say the new ones."""
    if lock.inputs.get("pack_options", {}).get("strip") is not True:
        return []
    return [{"name": "tritonpack:strip",
             "value": "debug sections removed from the ELF files of unsigned wheels "
                      "(strip --strip-debug); their RECORD rows hold the stripped sha256"}]
