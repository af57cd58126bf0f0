"""The import check's answer, kept and reused while the bytes it read are the same.

The check (``importcheck``) is a function of what it reads: the interpreter, the modules it
is asked to import and the files of the environment those imports read (sources, extension
modules, the libraries mapped, files opened or looked for, folders listed). It reports them;
each answer is kept with the sha256 of every one of those files and of each folder's listing,
and is used again only after all of them are hashed again in the tree being packed and
match: a changed byte, a file gone or added to a listed folder runs the check again. A folder only the import
system listed (its finders, site's ``.pth`` look-up) counts by the names it can act on
(``importcheck.import_names``): a tree pip installed and tritonpack's own build of the same
wheels differ in files no import reads (``INSTALLER``, ``RECORD``, ``direct_url.json``,
``REQUESTED``: never inputs) and may differ in names beside the packages no finder matches
(a ``.dist-info`` folder, ``README.txt``), which no longer run it again. A pack of a lock
packed before then skips importing the model's packages (torch alone: 1.2 s), keeping the
proof.

An entry is also signed (HMAC-SHA256) with a key this cache made for itself (``check.key``,
mode 0600): an entry written by anything else, or copied from another cache, with inputs
that hash right for a broken environment and an answer saying all imports, is not honoured.
Like the other stores, the cache stays a trust root: who can read the key can sign.
Under ``--no-cache`` answers are written, never read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..core import deadlines, reused
from ..core.cachehome import reuse
from ..core.integrity import regular_sha256
from ..core.storefile import open_entry, real_dir, store_secret
from . import importcheck

_FORMAT = b"import check answer 3\0"
_KEY_FILE = "check.key"
_MAX_ENTRY = 16 << 20  # a check of torch reads about 1,500 files: far below


def run(root: Path, python: str, modules: tuple[str, ...], load: tuple[str, ...] = (),
        store: Path | None = None, timeout: float = deadlines.IMPORT_CHECK,
        pycache: Path | None = None, ahead: bool = False,
        layout: str = "", before: Callable[[], object] | None = None,
        ) -> importcheck.Outcome:
    """``importcheck.run``, answered from ``store`` when every byte the last same check read
    is unchanged; else run (``ahead``: writing the bytecode it compiles), and its answer kept
    there.
    ``layout`` names a second question about the same modules in another layout of the tree
    (the site zip's): one answer is kept per question, so two layouts asked in turn in one
    pack would each find the other's answer and run every time.
    ``before`` is called just before the check runs, not when a kept answer is used (the
    caller places what the check would read there)."""
    if store is None or (not modules and not load):
        if before is not None:
            before()
        return importcheck.run(root, python, modules, load, timeout, pycache, ahead)
    secret = _secret(store)
    key = _key(root, python, modules, load, layout)
    if secret is not None and reuse():
        kept = _recall(store, key, secret, root)
        if kept is not None:
            reused.check(kept=True)
            return kept
    if before is not None:
        before()
    outcome = importcheck.run(root, python, modules, load, timeout, pycache, ahead)
    if secret is not None:
        _keep(store, key, secret, root, outcome)
    return outcome


def _key(root: Path, python: str, modules: tuple[str, ...], load: tuple[str, ...],
         layout: str = "") -> str:
    from ..pack.bytecode import interpreter_key

    asked = json.dumps([python, list(modules), list(load), layout,
                        hashlib.sha256(importcheck.SCRIPT.encode()).hexdigest()]).encode()
    return hashlib.sha256(_FORMAT + interpreter_key(root, python) + asked).hexdigest()


def _secret(store: Path) -> bytes | None:
    """This cache's signing key (``core.storefile.store_secret``)."""
    return store_secret(store, _KEY_FILE)


def digests(root: Path, files: tuple[str, ...], folders: tuple[str, ...],
            scanned: tuple[str, ...] = ()) -> list[str] | None:
    """The sha256 of each file's bytes, of each folder's sorted names and of each ``scanned``
    folder's names an import can act on, in order; None when one is not there (or not a
    regular file / a real folder: nothing is followed)."""
    def one_file(rel: str) -> str | None:
        return regular_sha256(root / rel)

    def one_folder(rel: str, narrow: bool = False) -> str | None:
        path = root / rel
        if not real_dir(path):
            return None
        try:
            names = sorted(os.listdir(path))
        except OSError:
            return None
        if narrow:
            names = ["import names:", *importcheck.import_names(names)]
        return hashlib.sha256("\0".join(names).encode("utf-8", "surrogateescape")).hexdigest()

    if any(_outside(p) for p in (*files, *folders, *scanned)):
        return None
    with ThreadPoolExecutor(2) as pool:  # hashlib lets go of the GIL: two cores, two files
        found = [*pool.map(one_file, files), *map(one_folder, folders),
                 *(one_folder(rel, narrow=True) for rel in scanned)]
    return None if any(d is None for d in found) else [d for d in found if d is not None]


def _outside(rel: str) -> bool:
    return rel.startswith("/") or ".." in rel.split("/") or "\0" in rel


def _keep(store: Path, key: str, secret: bytes, root: Path,
          outcome: importcheck.Outcome) -> None:
    hashed = digests(root, outcome.read, outcome.listed, outcome.scanned)
    if hashed is None or not set(outcome.loaded) <= set(outcome.read):
        return  # a file it read is gone already: nothing to vouch for
    if any(_outside(p) or os.path.lexists(root / p) for p in outcome.absent):
        return  # appeared since: nothing to vouch for
    data = json.dumps({"key": key, "failed": outcome.failed, "loaded": list(outcome.loaded),
                       "read": list(outcome.read), "listed": list(outcome.listed),
                       "absent": list(outcome.absent), "scanned": list(outcome.scanned),
                       "digests": hashed},
                      sort_keys=True).encode()
    from ..pack.bytecode import store_entry

    store_entry(store, key, hmac.digest(secret, data, "sha256") + data)


def _recall(store: Path, key: str, secret: bytes, root: Path) -> importcheck.Outcome | None:
    """The kept answer, if it is signed with this cache's key, was kept for ``key``, and
    every file and folder it read hashes the same in ``root`` now; else None (run it)."""
    fh = open_entry(store / key[:2] / key)
    if fh is None:
        return None
    with fh:
        raw = fh.read(_MAX_ENTRY + 1)
    digest, mac, data = raw[:32], raw[32:64], raw[64:]
    if (len(raw) > _MAX_ENTRY or hashlib.sha256(raw[32:]).digest() != digest
            or not hmac.compare_digest(mac, hmac.digest(secret, data, "sha256"))):
        return None
    try:
        entry = json.loads(data)
        read, listed, absent, scanned = (tuple(entry[k]) for k in ("read", "listed", "absent",
                                                                   "scanned"))
        outcome = importcheck.Outcome(
            {str(k): str(v) for k, v in entry["failed"].items()},
            tuple(str(p) for p in entry["loaded"]), read, listed, absent, scanned)
        if (entry["key"] != key or not set(outcome.loaded) <= set(read)
                or not all(isinstance(p, str) for p in (*read, *listed, *absent, *scanned))
                or any(_outside(p) or os.path.lexists(root / p) for p in absent)):
            return None
        return outcome if digests(root, read, listed, scanned) == entry["digests"] else None
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return None
