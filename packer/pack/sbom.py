"""``--sbom``: a CycloneDX 1.5 JSON bill of materials of the environment, beside it.

Every conda package and PyPI pin from the lock, with version, package URL, SHA-256
hashes and license. No timestamp and a serial number derived from the lock: the same
lock gives the same bytes, like the archive.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..core.redact import strip
from ..core.version import __version__
from ..lock.lockfile import Lockfile

SPEC = "1.5"


def sbom_path(env: Path) -> Path:
    return env.with_name(env.name.removesuffix(".tar.gz") + ".cdx.json")


def _license(value: str | None) -> list[dict[str, Any]]:
    return [{"license": {"name": value}}] if value else []


def document(lock: Lockfile, model: str, licenses: dict[str, str],
             bundled: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """... ``bundled``: (site-packages path, sha256) of every file bundled from --src."""
    components: list[dict[str, Any]] = []
    for pkg in lock.conda:
        purl = (f"pkg:conda/{pkg.name}@{quote(pkg.version)}?build={quote(pkg.build)}"
                f"&subdir={pkg.subdir}&channel={quote(strip(pkg.channel), safe='')}")
        components.append({
            "type": "library", "bom-ref": purl, "name": pkg.name, "version": pkg.version,
            "purl": purl, "hashes": [{"alg": "SHA-256", "content": pkg.sha256}],
            "licenses": _license(pkg.license),
            "properties": [{"name": "tritonpack:source", "value": "conda"},
                           {"name": "tritonpack:url", "value": strip(pkg.url)}],
        })
    for pin in lock.pypi:
        purl = f"pkg:pypi/{pin.name}@{quote(pin.version)}"
        components.append({
            "type": "library", "bom-ref": purl, "name": pin.name, "version": pin.version,
            "purl": purl,
            "hashes": [{"alg": "SHA-256", "content": h.split(":", 1)[1]} for h in pin.hashes],
            "licenses": _license(licenses.get(pin.name)),
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
                           {"name": "tritonpack:lock", "value": lock.content_hash}],
        },
        "components": components,
        "dependencies": [{"ref": f"triton-model:{model}",
                          "dependsOn": [c["bom-ref"] for c in components]}],
    }


def render(lock: Lockfile, model: str, licenses: dict[str, str],
           bundled: tuple[tuple[str, str], ...] = ()) -> bytes:
    return (json.dumps(document(lock, model, licenses, bundled), indent=2) + "\n").encode()
