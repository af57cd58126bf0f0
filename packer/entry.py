"""The ``tritonpack`` console script and ``python -m packer``.

SIGINT and SIGTERM are taken before anything else (``packer/__init__`` in this process, and
again here): a Ctrl-C while Python imports click and the pipeline prints one line and exits
130, never a traceback nor click's "Aborted!" (``packer.core.signals``; a command's run then
turns them into KeyboardInterrupt).

``tritonpack --version`` is answered here, before click is imported (about a third of the
start of any command): a version check in a release pipeline or a shell prompt costs the
interpreter's start and little more. Everything else goes to ``packer.cli``.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from .core import signals


def console() -> NoReturn:
    signals.exit_on_interrupt()  # again: a caller may have set its own since the import
    if sys.argv[1:] == ["--version"]:
        from .core.version import __version__

        sys.stdout.write(f"tritonpack, version {__version__}\n")  # click's version_option's words
        sys.stdout.flush()
        os._exit(0)
    from .cli import console as run

    run()
