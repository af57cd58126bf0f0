"""Triton release -> what the environment must match: Python, CUDA, numpy bound, platform."""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass

from ..core.errors import TargetError
from .recipebook import Recipes

PLATFORMS = {
    # conda subdir, manylinux tag family for the PyPI resolver, uname machine
    "linux-64": ("linux-64", "x86_64", "x86_64"),
    "linux-aarch64": ("linux-aarch64", "aarch64", "aarch64"),
}


def _release_key(release: str) -> tuple[int, int]:
    year, month = release.split(".")
    return int(year), int(month)


def host_platform() -> str:
    return "linux-aarch64" if _platform.machine() in ("aarch64", "arm64") else "linux-64"


@dataclass(frozen=True)
class Target:
    """The deployment target a lock is made for."""

    release: str
    python: str  # major.minor of the stub
    cuda: str
    numpy: str  # PEP 440 specifier ("<2") or ""
    platform: str  # conda subdir
    glibc: str
    glibcxx: str
    image: str
    torch: str  # "cpu", "cuXYZ", or "none" (no PyTorch index: the given indexes only)

    @property
    def arch(self) -> str:
        return PLATFORMS[self.platform][1]

    @property
    def pypi_platform(self) -> str:
        """The platform tag the PyPI resolver locks for (the image's glibc)."""
        glibc = self.glibc.replace(".", "_")
        return f"{self.arch}-manylinux_{glibc}"

    def as_dict(self) -> dict[str, str]:
        return {
            "release": self.release,
            "python": self.python,
            "cuda": self.cuda,
            "numpy": self.numpy,
            "platform": self.platform,
            "glibc": self.glibc,
            "glibcxx": self.glibcxx,
            "image": self.image,
            "torch": self.torch,
        }


def releases(recipes: Recipes) -> list[str]:
    return sorted(recipes.triton, key=_release_key)


def torch_variant(recipes: Recipes, cuda: str) -> str:
    """The torch wheel index for a CUDA version: highest recipe key not above it."""
    cuda_mm = _release_key(".".join(cuda.split(".")[:2]))
    best = "cpu"
    best_key = (0, 0)
    for key, tag in recipes.torch.get("cuda", {}).items():
        k = _release_key(key)
        if best_key < k <= cuda_mm:
            best, best_key = str(tag), k
    return best


def torch_index(recipes: Recipes, target: Target, requirements: tuple[str, ...]) -> str | None:
    """The PyTorch wheel index a lock needs: when torch & co. are required and the variant is
    not "none" (= resolve them from the given indexes only, e.g. a local wheelhouse)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    wanted = {canonicalize_name(p) for p in recipes.torch.get("packages", [])}
    names = {canonicalize_name(Requirement(r).name) for r in requirements}
    if target.torch == "none" or not wanted & names:
        return None
    return f"{recipes.torch.get('base', 'https://download.pytorch.org/whl')}/{target.torch}"


def resolve_target(
    recipes: Recipes,
    release: str | None = None,
    *,
    python: str | None = None,
    platform: str | None = None,
    torch: str | None = None,
) -> Target:
    known = releases(recipes)
    chosen = release or known[-1]
    if chosen not in recipes.triton:
        raise TargetError(
            f"Triton release {chosen} is not in the release table",
            hint=f"known releases: {known[0]} to {known[-1]} (tritonpack targets); "
            "add one in a recipe dir of your own with --recipes DIR",
        )
    row = recipes.triton[chosen]
    plat = platform or host_platform()
    if plat not in PLATFORMS:
        raise TargetError(f"platform {plat} is not supported", hint="use linux-64 or linux-aarch64")
    if python is not None and (python.count(".") != 1 or not python.replace(".", "").isdigit()):
        raise TargetError(f"--python {python}: expected MAJOR.MINOR, e.g. 3.12")
    if python is not None and python not in recipes.stdlib:
        raise TargetError(
            f"Python {python} is not supported",
            hint=f"supported: {', '.join(sorted(recipes.stdlib))}",
        )
    if torch is not None and not (torch in ("cpu", "none") or
                                  (torch.startswith("cu") and torch[2:].isdigit())):
        raise TargetError(f"--torch {torch}: expected cpu, cuXYZ (e.g. cu126) or none")
    torch_tag = torch or torch_variant(recipes, str(row["cuda"]))
    return Target(
        release=chosen,
        python=python or str(row["python"]),
        cuda=str(row["cuda"]),
        numpy=str(row.get("numpy", "")),
        platform=plat,
        glibc=str(row["glibc"]),
        glibcxx=str(row["glibcxx"]),
        image=str(row["image"]),
        torch=torch_tag,
    )
