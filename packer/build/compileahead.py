"""Bytecode compiled while the import check imports, by one process of the environment's
Python on the other core.

The check (``importcheck``) loads what a server start loads; the bytecode step then compiles
those same files to ship them (small model: 1.1 s of a 3.8 s empty-cache pack; torch: 2.9 s),
after the check. Here the check names each source file of the environment to a compile
server (a fresh process of the same interpreter doing nothing but compile, as ``bytecode``'s
compile processes do) as its loader reads it, and goes on without waiting; the server writes
each file's canonical hash-checked ``.pyc`` under the check's ``-X pycache_prefix``, and after
the check those files are moved into the tree like the ones the bytecode store placed there
(``bytecode.adopt``): the same bytes the bytecode step writes (``tests/test_compileahead.py``
compares the archives). A file the store placed before the check is not compiled again.

It is only a shortcut. A server that cannot start or dies is left behind by the check (it
waits at most ``_CONNECT_S`` for the server's end, less once the server is gone); what the
server did not compile the bytecode step compiles, with today's errors. The two talk through
a FIFO in a private temp dir that neither opens blocking; when the check ends, however it
ended, the server finishes the file at hand and exits (and is waited for): what it had not
reached the bytecode step compiles, in its parallel processes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from ..core import deadlines, proc
from ..core.errors import ProcessError

log = logging.getLogger("tritonpack.compileahead")

_CONNECT_S = 10.0  # the check's wait for the server to open its end before it goes alone
_STOP_POLL_S = 1.0  # how often a server waiting for a request looks for the stop file

# Run by the environment's Python: -S -s -B, PYTHONHASHSEED=0 and marshal format 2, as
# bytecode._COMPILE, so a file's .pyc is byte for byte what the bytecode step would write.
# Each request is a source's path, as the check's loader has it, on a line: its .pyc is
# written where cache_from_source puts it under -X pycache_prefix, unless it is not a regular
# .py file inside the environment, already there (the store's, placed before the check), or
# not Python this interpreter compiles (the bytecode step then says so, as without a server).
_SERVE = r"""
import sys
sys.path[:] = [p for p in sys.path if p not in ("", ".")]  # nothing from the cwd
import importlib.util, marshal, os, select, tempfile
root, ask, stop, poll = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
real = os.path.realpath(root) + os.sep
head = importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little")
mask = os.umask(0)
os.umask(mask)

def compiled(path):
    if (not path.endswith(".py") or os.path.islink(path) or not os.path.isfile(path)
            or not os.path.realpath(path).startswith(real)):
        return "no"
    target = importlib.util.cache_from_source(path)
    if os.path.isfile(target):
        return "ok"  # the bytecode store's, placed there before the check (checked then)
    rel = os.path.relpath(os.path.realpath(path), real)
    with open(path, "rb") as fh:
        source = fh.read()
    try:
        code = compile(source, rel, "exec", dont_inherit=True)
    except Exception:  # what compileall reports as "Error compiling"
        return "skip"
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".", suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(head + importlib.util.source_hash(source) + marshal.dumps(code, 2))
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, target)
    return "ok"

asked = os.open(ask, os.O_RDONLY | os.O_NONBLOCK)  # never blocks: select waits for the check
pending = b""
while True:
    if not select.select([asked], [], [], poll)[0]:
        if os.path.exists(stop):
            break  # the check is over and never came, or left nothing to read
        continue
    chunk = os.read(asked, 1 << 16)
    if not chunk:
        break  # the check closed its end
    pending += chunk
    while b"\n" in pending and not os.path.exists(stop):  # the check is over: the rest is
        line, _, pending = pending.partition(b"\n")       # the bytecode step's, on every core
        try:
            compiled(os.fsdecode(line))
        except Exception:  # unreadable, unwritable: the bytecode step's to compile or say
            pass
    if os.path.exists(stop):
        break
"""

# Inserted in the check's script before it imports (``importcheck.SCRIPT`` runs it when given
# the FIFOs): each source file the check's loader is about to read is first asked for.
CLIENT = r"""
def _ahead(ask, stop, wait):
    import importlib.machinery, time
    until = time.monotonic() + wait
    while True:  # the server's end may not be open yet: never block on it
        try:
            asking = os.open(ask, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:
            if os.path.exists(stop) or time.monotonic() > until:
                return  # no server: the check compiles alone, as without one
            time.sleep(0.002)
    os.set_blocking(asking, True)
    for module in list(sys.modules.values()):  # loaded at start-up, before this ran
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path.endswith(".py"):
            os.write(asking, os.fsencode(path) + b"\n")
    loader = importlib.machinery.SourceFileLoader
    plain, state = loader.get_code, {"on": True}

    def get_code(self, fullname):
        path = self.get_filename(fullname)
        if state["on"] and isinstance(path, str) and path.endswith(".py"):
            try:  # told, not waited for: the server compiles on the other core meanwhile
                os.write(asking, os.fsencode(path) + b"\n")
            except (OSError, ValueError):
                state["on"] = False  # the server is gone: the bytecode step compiles these
        return plain(self, fullname)

    loader.get_code = get_code
"""


@contextlib.contextmanager
def serve(root: Path, python: str, into: Path) -> Iterator[tuple[Path, Path, float]]:
    """A compile server for ``root``'s interpreter writing under ``into`` (the check's pycache
    prefix) while the block runs; yields what the check is given: the FIFO it names files on,
    the file that says the server is gone, and how long to wait for the server to open its
    end. When the block ends the server stops after the file at hand and is waited for."""
    with tempfile.TemporaryDirectory(prefix="tritonpack-ahead-") as tmp:
        ask, stop = Path(tmp) / "ask", Path(tmp) / "stop"
        os.mkfifo(ask, 0o600)
        worker = threading.Thread(target=_run, args=(root, python, into, ask, stop),
                                  name="tritonpack-compile-ahead", daemon=True)
        worker.start()
        try:
            yield ask, stop, _CONNECT_S
        finally:
            stop.touch()
            with contextlib.suppress(OSError):  # a server never reached: wakes it at once
                os.close(os.open(ask, os.O_WRONLY | os.O_NONBLOCK))
            worker.join()


def _run(root: Path, python: str, into: Path, ask: Path, stop: Path) -> None:
    # the environment bytecode._compile_listed gives its compile processes, and the prefix
    env = {k: v for k, v in proc.clean_env({"PYTHONHASHSEED": "0"}).items()
           if not k.startswith("PYTHON") or k == "PYTHONHASHSEED"}
    try:
        proc.run([root / "bin" / f"python{python}", "-S", "-s", "-B", "-X", "utf8",
                  "-X", f"pycache_prefix={into}", "-c", _SERVE, root, ask, stop,
                  str(_STOP_POLL_S)], env=env, cwd=ask.parent, timeout=deadlines.COMPILE)
    except ProcessError as exc:  # a shortcut only: the bytecode step compiles what is left
        log.debug("the compile server stopped: %s", exc)
    finally:  # gone, however: the check stops waiting for it at once
        with contextlib.suppress(OSError):
            stop.touch()
