"""Check the built distributions before anything is installed from them: the wheel holds
every module of packer/ and every recipe (recipes/*.toml, Dockerfile.base), declares the
console script and the extras the docs name, and the sdist holds the sources it builds from.

    python .ci/check_dist.py DIST_DIR

(``twine check --strict`` has already judged the metadata's rendering.) Exit 1 naming each
file or field that is missing.
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = {"verify", "docker", "remote", "bench", "pip-tools", "test"}


def wanted_in_wheel() -> set[str]:
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "packer").rglob("*.py")}
    recipes = {f"packer/recipes/{p.name}" for p in (ROOT / "recipes").iterdir()
               if p.suffix == ".toml" or p.name in ("Dockerfile.base", "__init__.py")}
    return modules | recipes


def check_wheel(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(f"{dist_info}/METADATA").decode())
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
        dockerfile = zf.read("packer/recipes/Dockerfile.base").decode() \
            if "packer/recipes/Dockerfile.base" in names else ""
    problems = [f"wheel lacks {n}" for n in sorted(wanted_in_wheel() - names)]
    if "FROM ${TRITON_IMAGE}" not in dockerfile:
        problems.append("wheel's packer/recipes/Dockerfile.base is not the Dockerfile")
    if "tritonpack = packer.entry:console" not in entry_points:
        problems.append("wheel declares no tritonpack console script")
    for field in ("Name", "Version", "Summary", "License-Expression", "Requires-Python"):
        if not meta.get(field):
            problems.append(f"wheel METADATA has no {field}")
    missing = EXTRAS - set(meta.get_all("Provides-Extra") or [])
    problems += [f"wheel METADATA has no extra {e!r}" for e in sorted(missing)]
    return problems


def check_sdist(sdist: Path) -> list[str]:
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    wanted = {"pyproject.toml", "README.md", "recipes/triton.toml", "packer/cli.py"}
    return [f"sdist lacks {n}" for n in sorted(wanted - names)]


def main(dist: Path) -> int:
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"{dist}: expected one wheel and one sdist, found {wheels + sdists}")
        return 1
    problems = check_wheel(wheels[0]) + check_sdist(sdists[0])
    for line in problems:
        print(line)
    if not problems:
        print(f"{wheels[0].name}, {sdists[0].name}: every module, recipe and field there")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
