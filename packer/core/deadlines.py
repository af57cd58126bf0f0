"""Every deadline tritonpack gives a process or a download, named, in one place: nothing
waits forever, and what bounds each wait can be read (and tuned) here. Each is the whole run
of one command, in seconds, generous on a loaded 2-core machine; a run that passes it fails
with ProcessError ("timed out after Ns") and the output it had."""

from __future__ import annotations

# resolvers and installers (packer.lock.backend)
RESOLVE_UV = 900.0  # uv pip compile: seconds usually; a slow or large index
RESOLVE_PIP_COMPILE = 1800.0  # pip-compile downloads what it cannot read metadata of
INSTALL = 3600.0  # uv or pip installing the locked wheels (torch: GBs over a slow link)
BUILD_SDIST = 900.0  # uv build of one source-only package into a wheel
TOOL_VENV = 300.0  # uv venv for pip-tools in the target's Python
TOOL_INSTALL = 900.0  # pip-tools into that venv

# the environment's own interpreter and tools (packer.pack, packer.build, packer.lock)
LOCAL_CHANNEL = 600.0  # another run making the same local Python channel (seconds, usually)
PATCHELF = 120.0  # one RUNPATH rewrite of a local CPython's file
STRIP = 300.0  # binutils' strip --strip-debug of one ELF file (torch's: hundreds of MB)
IMPORT_CHECK = 180.0  # the env's python3 importing what a start imports
SOURCE_HASHES = 600.0  # the env's python3 hashing the sources bytecode is checked against
COMPILE = 1800.0  # the env's python3 compiling bytecode for what a start loads

# a registry (packer.caches.deadline): the whole of each phase, not only each read
REGISTRY_PHASE = 30.0  # a ping, a manifest, the metadata (TRITONPACK_REGISTRY_TIMEOUT replaces it)
REGISTRY_RATE = float(1 << 20)  # a blob: twice the phase plus a second per MiB it declares

# network reads (urllib; the remote cache has its own, packer.caches.remote)
INDEX_READ = 15.0  # an index's page for one project (sdist lookups)
DOWNLOAD_READ = 60.0  # a read of a package download: the socket's timeout, not the whole file

# tritonpack bench (packer.cost): the measuring time is the user's --duration; these bound the rest
STUBS_FOUND = 10.0  # a READY model's stubs listed in /proc (they exist already: no start to wait for)
LOAD_JOIN_SLACK = 5.0  # a client-loop thread's last call, past --duration and verify's --timeout

# the watchdog (packer.core.proc) at a normal exit: one pass over /proc, then it ends; up to
# 10 s only while what it kills keeps appearing, and then it finishes on its own
WATCHDOG_EXIT = 5.0
