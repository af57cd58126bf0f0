"""Can the chosen runtime run the target, and what does a pass there prove?

Two questions verify must answer honestly. Before a ``--verify`` pack writes anything: will
the runtime accept the environment this lock makes (the local server is one fixed release,
whatever the target)? After a pass: was it the target's own image, or a stand-in, and what
did the stand-in leave unproved (the image's libstdc++, glibc and CUDA)?
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from ..core.errors import ModelError, RuntimeMissingError

if TYPE_CHECKING:
    from ..context import Context
    from ..lock.lockfile import Lockfile
    from ..resolve.target import Target
    from ..scan.model import ModelDir


@dataclass(frozen=True)
class Proof:
    """What a verify run stands for: the server it ran, and what that leaves unproved."""

    runtime: str  # local | docker
    server_release: str  # the Triton release of the server that answered
    target: str  # the release the environment was packed for
    image: str | None  # docker: the image the server ran in
    own_image: bool  # the target release's own image (nothing stood in for it)
    not_covered: tuple[str, ...]

    @property
    def statement(self) -> str:
        if self.own_image:
            return f"the target's own image {self.image} (Triton {self.target})"
        if self.runtime == "docker":  # --image: whatever release it is, it is not the target's
            return f"image {self.image} (--image) standing in for target {self.target}'s image"
        image = "'s image" if self.server_release == self.target else ""
        return f"local {self.server_release} server standing in for target {self.target}{image}"


def proof(runtime: str, server_release: str, target: Target, image: str | None) -> Proof:
    """The proof a run gives: only the target release's own image stands for itself."""
    own = runtime == "docker" and image == target.image
    gaps: tuple[str, ...] = ()
    if not own:
        gaps = (f"the target image's libstdc++ (GLIBCXX {target.glibcxx}) and glibc "
                f"({target.glibc}): checked from the ELF symbol versions, not run",
                f"CUDA {target.cuda} and GPUs: not used" if runtime == "local"
                else f"CUDA {target.cuda}: as the --image has it, not as the target's",
                f"the Python backend of {target.release} itself: the stub that ran was "
                f"{server_release}'s" if server_release != target.release else
                "the image's other contents (its tritonserver build, its libraries)")
    return Proof(runtime, server_release, target.release, image, own, gaps)


def locked_numpy(lock: Lockfile) -> str | None:
    """The numpy version a lock installs (PyPI or conda), if any."""
    versions = [p.version for p in lock.pypi if p.name == "numpy"]
    versions += [p.version for p in lock.conda if p.name == "numpy"]
    return versions[0] if versions else None


def numpy_refusal(runtime: str, release: str, bound: str, numpy: str | None,
                  target: str, *, locked: bool) -> RuntimeMissingError | None:
    """The runtime's own release must accept the environment's numpy, not only the target's."""
    try:
        fits = numpy is None or not bound or Version(numpy) in SpecifierSet(bound)
    except InvalidVersion:
        fits = True  # a version packaging cannot read: the server will judge it
    if fits:
        return None
    has = f"the lock for Triton {target} pins numpy {numpy}" if locked else \
        f"this environment has numpy {numpy} (right for Triton {target})"
    return RuntimeMissingError(
        f"the {runtime} runtime is Triton {release}, whose Python backend needs numpy{bound}; "
        f"{has}" + (": it cannot run this target, so nothing was written" if locked else ""),
        hint="verify in the target's image (--runtime docker), or pack for "
        f"--triton {release} to verify here")


def before_lock(model: ModelDir, target: Target, runtime: str, release: str,
                stubs: tuple[str, ...] | None) -> None:
    """Refuse a ``--verify`` the runtime cannot carry out for what the model dir and the target
    alone decide, before anything is resolved against an index, locked or built: Triton loads a
    model only from a directory of its config's name, and runs it only with a stub for the
    target's Python.

    ``stubs``: the Pythons the runtime has a backend stub for (None: any, as in an image)."""
    misnamed = model.warnings()
    if misnamed:
        raise ModelError(misnamed[0] + "; nothing was written",
                         hint="verify it from a directory of that name (a copy will do), or make "
                         "the name in config.pbtxt the directory's")
    python = target.python
    if stubs is not None and python not in stubs:
        raise RuntimeMissingError(
            f"the {runtime} runtime is Triton {release}, which has no backend stub for "
            f"Python {python} (Triton {target.release}'s): it cannot run this target, so "
            "nothing was written", hint="verify in the target's image (--runtime docker)")


def before_write(ctx: Context, lock: Lockfile, runtime: str, release: str) -> None:
    """Refuse a ``--verify`` the runtime cannot carry out, before the lock, the environment
    or config.pbtxt are written: packing for 26.10 and then learning that the local 24.10
    server cannot load it leaves a model dir changed for a check that never ran."""
    bound = str(ctx.recipes.triton.get(release, {}).get("numpy", ""))
    refused = numpy_refusal(runtime, release, bound, locked_numpy(lock), ctx.target.release,
                            locked=True)
    if refused is not None:
        raise refused
