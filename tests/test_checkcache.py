"""The import check's answer is reused only while every byte it read is the same, and only
when this cache signed it: a changed byte, a file added to a folder it listed, a forged entry
or --no-cache run the check again (a real interpreter in a venv, a real subprocess)."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
from pathlib import Path

from packer.build import checkcache
from packer.core.cachehome import distrusted
from packer.pack.bytecode import store_entry

PY = f"{sys.version_info.major}.{sys.version_info.minor}"


def make_env(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A venv whose ``pkg`` counts its imports in ``runs`` (outside the env, so not an input
    of the check): each line there is one real run of the check."""
    root = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root], check=True)
    site = root / "lib" / f"python{PY}" / "site-packages"
    runs = tmp_path / "runs"
    (site / "pkg").mkdir()
    (site / "pkg" / "__init__.py").write_text(
        f"with open({str(runs)!r}, 'a') as fh:\n    fh.write('x')\nfrom . import used\n")
    (site / "pkg" / "used.py").write_text("import json\n")
    return root, site, runs


def count(runs: Path) -> int:
    return len(runs.read_text()) if runs.exists() else 0


def test_an_unchanged_tree_reuses_the_answer_and_a_changed_byte_reruns(tmp_path: Path) -> None:
    root, site, runs = make_env(tmp_path)
    store = tmp_path / "store"
    first = checkcache.run(root, PY, ("pkg",), (), store)
    assert first.failed == {} and count(runs) == 1
    assert f"lib/python{PY}/site-packages/pkg/used.py" in first.read
    assert f"lib/python{PY}/site-packages/pkg" in first.listed
    again = checkcache.run(root, PY, ("pkg",), (), store)
    assert again == first and count(runs) == 1  # answered from the store: nothing imported

    (site / "pkg" / "used.py").write_text("raise ImportError('broken byte')\n")
    broken = checkcache.run(root, PY, ("pkg",), (), store)
    assert count(runs) == 2 and broken.failed == {"pkg": "ImportError: broken byte"}

    (site / "pkg" / "used.py").write_text("import json\n")
    checkcache.run(root, PY, ("pkg",), (), store)
    assert count(runs) == 3
    (site / "pkg" / "json.py").write_text("")  # a file added to a folder the imports listed
    checkcache.run(root, PY, ("pkg",), (), store)
    assert count(runs) == 4
    checkcache.run(root, PY, ("pkg", "json"), (), store)  # another module list: another key
    assert count(runs) == 5
    (site / "pkg" / "__init__.py").write_text(  # reads an optional file if it is there
        (site / "pkg" / "__init__.py").read_text()
        + "try:\n    open(__file__ + '.cfg').close()\n    raise ImportError('cfg')\n"
        "except FileNotFoundError:\n    pass\n")
    assert checkcache.run(root, PY, ("pkg",), (), store).failed == {} and count(runs) == 6
    assert checkcache.run(root, PY, ("pkg",), (), store).failed == {} and count(runs) == 6
    (site / "pkg" / "__init__.py.cfg").write_text("")  # appears: the answer changes
    assert checkcache.run(root, PY, ("pkg",), (), store).failed == {"pkg": "ImportError: cfg"}
    assert count(runs) == 7
    (site / "pkg" / "__init__.py.cfg").unlink()
    (site / "pkg" / "__init__.py").write_text(  # back as it was: one answer is kept a question
        (site / "pkg" / "__init__.py").read_text().split("try:")[0])
    assert checkcache.run(root, PY, ("pkg",), (), store).failed == {} and count(runs) == 8
    with distrusted():  # --no-cache: written, never read
        checkcache.run(root, PY, ("pkg",), (), store)
    assert count(runs) == 9


def test_a_forged_entry_cannot_make_a_broken_env_pass(tmp_path: Path) -> None:
    """The entry is rewritten for the broken tree (its digests right, its answer 'all
    import', its own sha256 right) but signed with another key: the check runs and fails."""
    root, site, runs = make_env(tmp_path)
    store = tmp_path / "store"
    checkcache.run(root, PY, ("pkg",), (), store)
    (entry,) = [p for p in store.glob("??/*") if p.is_file()]
    (site / "pkg" / "used.py").write_text("raise ImportError('broken byte')\n")
    data = json.loads(entry.read_bytes()[64:])
    data["digests"] = checkcache.digests(root, tuple(data["read"]), tuple(data["listed"]))
    forged = json.dumps(data, sort_keys=True).encode()
    store_entry(store, entry.name, hmac.digest(b"k" * 32, forged, "sha256") + forged)
    assert hashlib.sha256(entry.read_bytes()[32:]).digest() == entry.read_bytes()[:32]
    out = checkcache.run(root, PY, ("pkg",), (), store)
    assert out.failed == {"pkg": "ImportError: broken byte"} and count(runs) == 2
    # the same forgery signed with this cache's key is honoured: the key is the trust root
    key = (store / "check.key").read_bytes()
    store_entry(store, entry.name, hmac.digest(key, forged, "sha256") + forged)
    assert checkcache.run(root, PY, ("pkg",), (), store).failed == {} and count(runs) == 2
    assert (store / "check.key").stat().st_mode & 0o077 == 0
