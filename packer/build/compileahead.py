"""Bytecode compiled by the import check itself, once, for what its imports load.

The check (``importcheck``) loads what a server start loads; the bytecode step then compiles
those same files to ship them (small model: 1.1 s of a 3.8 s empty-cache pack; torch: 2.9 s).
The check's loader compiled each of them in memory to import it, and a compile server beside
it compiled them all again for the bytecode step (1.5 s of processor for the small model's
0.6 s check, on a machine of two cores, with the gzip of the large files wanting the other).
Now the check's own loader compiles each source file of the environment once, as the
bytecode step does (``bytecode._COMPILE``: the file's path in the environment as its name,
``dont_inherit``, marshal format 2, a fixed hash seed: the check runs with
``PYTHONHASHSEED=0``), writes the canonical hash-checked ``.pyc`` under the check's
``-X pycache_prefix`` and runs that same code, its name then set to the file's path as the
loader does for any ``.pyc`` it reads (``_imp._fix_co_filename``). After the check those
files, and those of the modules loaded before the check's imports began (the interpreter's
start-up), are moved into the tree like the ones the bytecode store placed there
(``bytecode.adopt``): the same bytes the bytecode step writes (``tests/test_compileahead.py``
compares them, and the archives). A file the store placed before the check is read by the
loader as before, not compiled.

Marshal format 2 writes no references and no interned flags, so what else the checking
process holds (the packages it imported) cannot change a byte; the hash seed fixes the order
of frozenset constants. The check's answer does not depend on who compiled: the modules are
the same code either way.

It is only a shortcut: a file that is not a regular ``.py`` inside the environment, that does
not compile (the loader then raises as it always did) or whose ``.pyc`` cannot be written
(a full disk) is left to the loader and to the bytecode step, with their usual errors.
"""

from __future__ import annotations

# Inserted in the check's script (``importcheck.SCRIPT``), called before it imports when asked
# to compile. Nothing here imports a module with a file: the check's answer lists the files
# the imports loaded, and this must add none (marshal and _imp are built in, the loader
# classes frozen).
CLIENT = r"""
def _ahead(quiet):
    import _imp, marshal
    external = importlib._bootstrap_external
    head = external.MAGIC_NUMBER + (1).to_bytes(4, "little")
    real = os.path.realpath(sys.prefix) + os.sep
    mask = os.umask(0)
    os.umask(mask)

    def write(target, data):  # a new file of a name no one chose, then renamed over
        quiet.append(True)  # its open is this helper's, not an input of the answer
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = f"{target}.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~mask)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, target)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError:
            pass  # unwritable, full: the bytecode step compiles it (and says so)
        finally:
            quiet.clear()

    def compiled(path):  # the code to run, its canonical .pyc written; None: the loader's
        if (not isinstance(path, str) or not path.endswith(".py") or os.path.islink(path)
                or not os.path.isfile(path)):
            return None
        full = os.path.realpath(path)
        target = external.cache_from_source(path)
        if not full.startswith(real) or os.path.isfile(target):
            return None  # outside the environment, or the store's (placed before the check)
        with open(path, "rb") as fh:
            source = fh.read()
        try:
            code = compile(source, full[len(real):], "exec", dont_inherit=True)
        except Exception:
            return None  # the loader compiles it again and raises what a start would
        write(target, head + _imp.source_hash(external._RAW_MAGIC_NUMBER, source)
              + marshal.dumps(code, 2))
        _imp._fix_co_filename(code, path)  # as the loader names code read from a .pyc
        return code

    for module in list(sys.modules.values()):  # loaded at start-up, before this ran
        try:
            compiled(getattr(module, "__file__", None))
        except Exception:  # the bytecode step's, then
            pass
    loader = external.SourceFileLoader
    plain = loader.get_code

    def get_code(self, fullname):
        try:
            code = compiled(self.get_filename(fullname))
        except Exception:  # unreadable, say: the loader's to read, and to say what is wrong
            code = None
        return code if code is not None else plain(self, fullname)

    loader.get_code = get_code
"""
