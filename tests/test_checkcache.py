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

from packer.build import checkcache, importcheck
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
    assert f"lib/python{PY}/site-packages/pkg" in first.scanned  # by the import system
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
    data["digests"] = checkcache.digests(root, tuple(data["read"]), tuple(data["listed"]),
                                         tuple(data["scanned"]))
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


def test_metadata_no_import_reads_keeps_the_answer_and_what_an_import_reads_reruns(
        tmp_path: Path) -> None:
    """The bench's recipe tree (pip) and tritonpack's own (uv) of the same wheels differ in
    metadata: an INSTALLER, a RECORD, a dist-info beside the packages, a README, __pycache__.
    No import reads those, so the answer stands; a new .pth (site reads it), a new module
    name, a changed byte of a file the imports read, or a new file in a folder a package
    lists itself (not the import system) run the check again."""
    root, site, runs = make_env(tmp_path)
    store = tmp_path / "store"
    (site / "lister").mkdir()  # a package that lists its own folder: every name counts
    (site / "lister" / "__init__.py").write_text(
        "import os\nFOUND = os.listdir(os.path.dirname(__file__))\n")
    first = checkcache.run(root, PY, ("pkg", "lister"), (), store)
    assert first.failed == {} and count(runs) == 1
    assert f"lib/python{PY}/site-packages/lister" in first.listed
    info = site / "pkg-1.0.dist-info"
    info.mkdir()
    for name, text in (("METADATA", "Name: pkg\n"), ("INSTALLER", "pip\n"), ("RECORD", ""),
                       ("REQUESTED", ""), ("direct_url.json", "{}")):
        (info / name).write_text(text)
    (site / "README.txt").write_text("metadata\n")
    (site / "pkg" / "py.typed").write_text("")
    (site / "pkg" / "__pycache__").mkdir()
    assert checkcache.run(root, PY, ("pkg", "lister"), (), store) == first
    assert count(runs) == 1  # answered from the store
    (info / "INSTALLER").write_text("uv\n")
    assert checkcache.run(root, PY, ("pkg", "lister"), (), store) == first and count(runs) == 1

    for change in (lambda: (site / "extra.pth").write_text(""),  # site reads .pth files
                   lambda: (site / "pkg" / "other.py").write_text(""),  # a module name
                   lambda: (site / "pkg" / "used.py").write_text("import json  \n"),  # a byte
                   lambda: (site / "lister" / "data.txt").write_text("")):  # listed by code
        before = count(runs)
        change()
        assert checkcache.run(root, PY, ("pkg", "lister"), (), store).failed == {}
        assert count(runs) == before + 1, change
        assert checkcache.run(root, PY, ("pkg", "lister"), (), store).failed == {}
        assert count(runs) == before + 1  # and the new answer is kept


def test_import_names_are_what_a_finder_or_site_can_act_on() -> None:
    names = ["numpy", "numpy-2.1.0.dist-info", "numpy.libs", "six.py", "six.pyc",
             "_cffi.cpython-310-x86_64-linux-gnu.so", "_x.abi3.so", "README.txt",
             "distutils-precedence.pth", "__pycache__", "py.typed", "libfoo.so.1"]
    assert importcheck.import_names(names) == sorted(
        ["numpy", "six.py", "six.pyc", "_cffi.cpython-310-x86_64-linux-gnu.so", "_x.abi3.so",
         "distutils-precedence.pth"])


def test_an_answer_about_modules_in_a_zip_is_kept_and_a_changed_zip_reruns(
        tmp_path: Path) -> None:
    """The site zip's layout: modules imported from a zip on sys.path (a .pth names it). The
    zip's bytes are the input (its members are not files): the answer is kept, reused, and
    a zip with another byte runs the check again; asked as another layout, it is its own
    question, so the first layout's answer stays."""
    import zipfile

    root, site, runs = make_env(tmp_path)
    store = tmp_path / "store"

    def write_zip(extra: str) -> None:
        with zipfile.ZipFile(site / "z.zip", "w") as zf:
            zf.writestr("zpkg/__init__.py", f"with open({str(runs)!r}, 'a') as fh:\n"
                                            f"    fh.write('z')\n{extra}")

    write_zip("")
    (site / "z.pth").write_text("z.zip\n")
    first = checkcache.run(root, PY, ("zpkg",), (), store, layout="zipped")
    assert first.failed == {} and count(runs) == 1
    assert f"lib/python{PY}/site-packages/z.zip" in first.read
    assert checkcache.run(root, PY, ("zpkg",), (), store, layout="zipped") == first
    assert count(runs) == 1  # answered from the store
    write_zip("raise ImportError('zipped byte')\n")
    again = checkcache.run(root, PY, ("zpkg",), (), store, layout="zipped")
    assert again.failed == {"zpkg": "ImportError: zipped byte"} and count(runs) == 2
    checkcache.run(root, PY, ("zpkg",), (), store)  # the other layout's own question
    assert count(runs) == 3
    checkcache.run(root, PY, ("zpkg",), (), store, layout="zipped")
    assert count(runs) == 3  # its answer was kept beside, not replaced


def test_a_file_an_import_only_looks_for_reruns_the_check_when_it_appears(
        tmp_path: Path) -> None:
    """``os.path.exists`` raises no audit event and the import system's listing of a package
    folder counts only the names a finder can act on (``DISABLED.txt`` is none): a file an
    import only looks for kept the answer given before it appeared."""
    root, site, runs = make_env(tmp_path)
    store = tmp_path / "store"
    init = site / "pkg" / "__init__.py"
    init.write_text(init.read_text() + "import os\nif os.path.exists(os.path.join("
                    "os.path.dirname(__file__), 'DISABLED.txt')):\n"
                    "    raise ImportError('disabled')\n")
    assert checkcache.run(root, PY, ("pkg",), (), store).failed == {} and count(runs) == 1
    assert checkcache.run(root, PY, ("pkg",), (), store).failed == {} and count(runs) == 1
    (site / "pkg" / "DISABLED.txt").write_text("")
    assert checkcache.run(root, PY, ("pkg",), (), store).failed == {
        "pkg": "ImportError: disabled"} and count(runs) == 2
    assert checkcache.run(root, PY, ("pkg",), (), store).failed == {
        "pkg": "ImportError: disabled"} and count(runs) == 2  # kept: it is there, unchanged
    (site / "pkg" / "DISABLED.txt").unlink()
    assert checkcache.run(root, PY, ("pkg",), (), store).failed == {} and count(runs) == 3


def test_before_runs_only_when_the_check_does(tmp_path: Path) -> None:
    """``before`` (the pack places the bytecode the check would read) is called just before a
    real run, never when the kept answer is used: then nothing is imported, and the bytecode
    step places the same entries beside their sources once."""
    root, site, runs = make_env(tmp_path)
    store = tmp_path / "store"
    calls: list[int] = []

    def before() -> None:
        calls.append(count(runs))  # how many runs had happened when it was called

    checkcache.run(root, PY, ("pkg",), (), store, before=before)
    assert calls == [0] and count(runs) == 1  # called, then the check ran
    checkcache.run(root, PY, ("pkg",), (), store, before=before)
    assert calls == [0] and count(runs) == 1  # the kept answer: not called
    (site / "pkg" / "used.py").write_text("import json  # changed\n")
    checkcache.run(root, PY, ("pkg",), (), store, before=before)
    assert calls == [0, 1] and count(runs) == 2
    checkcache.run(root, PY, ("pkg",), (), None, before=before)  # no store: always runs
    assert calls == [0, 1, 2] and count(runs) == 3


def test_a_class_keeping_os_stat_as_an_attribute_still_imports(tmp_path: Path) -> None:
    """Python 3.10's pathlib keeps ``stat = os.stat`` on a class (_NormalAccessor): the
    check's watch on os.stat must not bind as a method there (transformers failed the check
    with "stat() takes exactly 1 positional argument (2 given)", so nothing was pruned)."""
    root, site, runs = make_env(tmp_path)
    init = site / "pkg" / "__init__.py"
    init.write_text(init.read_text() + "import os\nclass Accessor:\n    stat = os.stat\n"
                    "Accessor().stat(__file__)\n")
    found = checkcache.run(root, PY, ("pkg",), (), tmp_path / "store")
    assert found.failed == {} and count(runs) == 1


def test_a_stat_in_a_folder_by_its_descriptor_is_an_input(tmp_path: Path) -> None:
    """``os.stat(name, dir_fd=fd)`` asks about ``name`` in the folder ``fd`` opened, not in
    the current directory: that file appearing reruns the check (the watch recorded it under
    the current directory, outside the env, and the kept 'imports' answer came back)."""
    root, site, runs = make_env(tmp_path)
    init = site / "pkg" / "__init__.py"
    init.write_text(init.read_text() + (
        "import os\nfd = os.open(os.path.dirname(__file__), os.O_RDONLY)\ntry:\n"
        "    os.stat('flag.cfg', dir_fd=fd, follow_symlinks=False)\n"
        "    raise ImportError('flag')\nexcept FileNotFoundError:\n    pass\n"
        "finally:\n    os.close(fd)\n"))
    store = tmp_path / "store"
    assert checkcache.run(root, PY, ("pkg",), (), store).failed == {} and count(runs) == 1
    (site / "pkg" / "flag.cfg").write_text("")
    assert checkcache.run(root, PY, ("pkg",), (), store).failed == {"pkg": "ImportError: flag"}
    assert count(runs) == 2


def test_the_watched_stat_is_what_os_says_it_supports(tmp_path: Path) -> None:
    """``os.stat in os.supports_follow_symlinks`` (shutil asks at import whether rmtree can
    avoid symlink attacks) is answered for the watch as for os.stat: a package that relies
    on it imports in the check as it does in the server."""
    root, site, _runs = make_env(tmp_path)
    init = site / "pkg" / "__init__.py"
    init.write_text(init.read_text() + (
        "import os\nassert os.stat in os.supports_follow_symlinks, 'follow'\n"
        "assert os.stat in os.supports_dir_fd and os.stat in os.supports_fd, 'fd'\n"))
    assert checkcache.run(root, PY, ("pkg",), (), tmp_path / "store").failed == {}
