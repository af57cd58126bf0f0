"""Import the scanned modules with the environment's own Python, once per pack.

This runs third-party code (the packages the lock installed), never the user's: the user's
model is not imported. It exists to prove that pruning removed nothing a package reads at
import time; the import failures it sees are compared by the caller with what was pruned.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..core import proc
from ..core.errors import ProcessError

TIMEOUT_S = 180.0
_SCRIPT = r"""
import importlib, json, sys
failed = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except BaseException as exc:  # SystemExit and friends are failures too
        failed[name] = f"{type(exc).__name__}: {exc}"[:300]
sys.stdout.write("\n@@TRITONPACK@@" + json.dumps(failed))
sys.stdout.flush()
"""


class CheckFailed(Exception):
    """The check itself could not run to its end (a crash, a timeout)."""


def failures(root: Path, python: str, modules: tuple[str, ...],
             timeout: float = TIMEOUT_S) -> dict[str, str]:
    """Module -> why it does not import, for each of ``modules`` that does not."""
    if not modules:
        return {}
    # -B: no .pyc written into the tree being packed; HOME: caches some packages write at
    # import (matplotlib, numba) go to a scratch dir, not the user's home or the archive.
    argv: list[str | Path] = [root / "bin" / f"python{python}", "-I", "-B", "-c", _SCRIPT,
                              *modules]
    try:
        with tempfile.TemporaryDirectory(prefix="tritonpack-import-") as home:
            out = proc.run(argv, env=proc.clean_env({"HOME": home, "PYTHONDONTWRITEBYTECODE": "1"}),
                           cwd=Path(home), timeout=timeout)
    except ProcessError as exc:
        raise CheckFailed(exc.output.strip().splitlines()[-1] if exc.output.strip()
                          else f"exit {exc.returncode}") from exc
    _, marker, payload = out.rpartition("@@TRITONPACK@@")
    if not marker:
        raise CheckFailed("no report from the import check")
    result: dict[str, str] = json.loads(payload)
    return result
