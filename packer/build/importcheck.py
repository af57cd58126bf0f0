"""Import the scanned modules with the environment's own Python, once per pack.

This runs third-party code (the packages the lock installed) and the standard library, never
the user's: the user's model is not imported. It exists to prove that pruning removed nothing
a package reads at import time (the import failures it sees are compared by the caller with
what was pruned), and to say which source files those imports loaded: what a server start
loads, so what ships with bytecode (``pack.bytecode``).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..core import proc
from ..core.errors import ProcessError

TIMEOUT_S = 180.0
_SEPARATOR = "--load-only--"
_SCRIPT = r"""
import importlib, json, os, sys
args = sys.argv[1:]
cut = args.index("--load-only--")
failed = {}
for name in args[cut + 1:]:  # what the server loads anyway: failures are not this check's
    try:
        importlib.import_module(name)
    except BaseException:
        pass
for name in args[:cut]:
    try:
        importlib.import_module(name)
    except BaseException as exc:  # SystemExit and friends are failures too
        failed[name] = f"{type(exc).__name__}: {exc}"[:300]
root = os.path.realpath(sys.prefix) + os.sep
loaded = set()
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None)
    if isinstance(path, str) and path.endswith(".py"):
        real = os.path.realpath(path)
        if real.startswith(root):
            loaded.add(real[len(root):])
sys.stdout.write("\n@@TRITONPACK@@" + json.dumps([failed, sorted(loaded)]))
sys.stdout.flush()
"""


class CheckFailed(Exception):
    """The check itself could not run to its end (a crash, a timeout)."""


@dataclass(frozen=True)
class Outcome:
    failed: dict[str, str]  # module -> why it does not import, for each checked one
    loaded: tuple[str, ...]  # the .py files the imports loaded, relative to the env root


def run(root: Path, python: str, modules: tuple[str, ...], load: tuple[str, ...] = (),
        timeout: float = TIMEOUT_S, pycache: Path | None = None) -> Outcome:
    """Import ``load`` (failures ignored), then ``modules``; say which of ``modules`` do not
    import, and which source files of the environment all of them loaded. ``pycache``: where
    bytecode compiled before is read from (``-X pycache_prefix``), never written."""
    if not modules and not load:
        return Outcome({}, ())
    # -B: no .pyc written into the tree being packed; HOME: caches some packages write at
    # import (matplotlib, numba) go to a scratch dir, not the user's home or the archive.
    argv: list[str | Path] = [root / "bin" / f"python{python}", "-I", "-B",
                              *(["-X", f"pycache_prefix={pycache}"] if pycache else []),
                              "-c", _SCRIPT, *modules, _SEPARATOR, *load]
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
    try:
        failed, loaded = json.loads(payload)
        return Outcome({str(k): str(v) for k, v in failed.items()},
                       tuple(str(p) for p in loaded))
    except (ValueError, TypeError, AttributeError) as exc:
        raise CheckFailed("an unreadable report from the import check") from exc

