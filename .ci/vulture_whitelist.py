"""What vulture (.ci/run) cannot see used. Click commands, found by name through
packer.cli.COMMANDS, are left out by its --ignore-decorators; here: the package's lazy
__getattr__, signal-handler and callback parameters, attributes set on tarfile, zipfile and
protobuf objects, an ast visitor method, exit codes documented for users, and patch_config
(the patch stage in one call, for Python callers and the tests)."""

__getattr__  # unused function (packer/__init__.py:70)
OK  # unused variable (packer/core/errors.py:16)
CHECK_FAILED  # unused variable (packer/core/errors.py:17)
_.gid  # unused attribute (packer/core/reproducible.py:18)
_.uid  # unused attribute (packer/core/reproducible.py:18)
_.gname  # unused attribute (packer/core/reproducible.py:19)
_.uname  # unused attribute (packer/core/reproducible.py:19)
_.mtime  # unused attribute (packer/core/reproducible.py:28)
frame  # unused variable (packer/core/signals.py:59)
frame  # unused variable (packer/core/signals.py:63)
frame  # unused variable (packer/core/signals.py:109)
_.on_download_start  # unused method (packer/build/condainstall.py: rattler calls it by name)
cache_entry  # unused variable (packer/build/condainstall.py: rattler calls it by name)
_.on_download_progress  # unused method (packer/build/condainstall.py: rattler calls it by name)
_.external_attr  # unused attribute (packer/lock/pychannel.py:237)
_.create_system  # unused attribute (packer/pack/stdlibzip.py:141)
_.compress_type  # unused attribute (packer/pack/stdlibzip.py:142)
_.external_attr  # unused attribute (packer/pack/stdlibzip.py:144)
_.external_attr  # unused attribute (packer/pack/stdlibzip.py:147)
patch_config  # unused function (packer/patch/config.py:268)
visit_TryStar  # unused variable (packer/scan/imports.py:271)
_.label  # unused attribute (packer/scan/modelconfig.py:347)
_.map_entry  # unused attribute (packer/scan/modelconfig.py:350)
_.oneof_index  # unused attribute (packer/scan/modelconfig.py:363)
tb  # __exit__'s traceback parameter (packer/cost/procs.py)
ConnectionCls  # urllib3 reads a pool's connection class by name (packer/caches/deadline.py)
_.pool_classes_by_scheme  # urllib3's PoolManager reads it by name (packer/caches/deadline.py)
