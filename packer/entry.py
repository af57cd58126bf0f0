"""The ``tritonpack`` console script and ``python -m packer``.

``tritonpack --version`` is answered here, before click is imported (about a third of the
start of any command): a version check in a release pipeline or a shell prompt costs the
interpreter's start and little more. Everything else goes to ``packer.cli``.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def console() -> NoReturn:
    if sys.argv[1:] == ["--version"]:
        from .core.version import __version__

        sys.stdout.write(f"tritonpack, version {__version__}\n")  # click's version_option's words
        sys.stdout.flush()
        os._exit(0)
    from .cli import console as run

    run()
