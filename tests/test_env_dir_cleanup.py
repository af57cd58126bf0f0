"""What a stopped server's clean-up removes from /tmp: only the env dirs its own log ties to it.
Other jobs on the machine run their own tritonservers, whose Python backends make their
/tmp/python_env_* dirs at any time; an empty one of theirs is about to be extracted into."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from packer.verify.runtime import TRITON_TMP, cleanup_from_log


@pytest.fixture
def env_dirs() -> Iterator[list[Path]]:
    """Env dirs this test makes where Triton makes them; whatever is left goes at the end."""
    made: list[Path] = []
    yield made
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def _env_dir(made: list[Path]) -> Path:
    made.append(Path(tempfile.mkdtemp(prefix="python_env_", dir=TRITON_TMP)))
    return made[-1]


def _log(when: datetime, *, init: bool = True) -> str:
    """A server's log around its Python backend's initialization (the mkdtemp follows the
    "Shared memory configuration" line), as tritonserver 2.51 writes it."""
    stamp = f"I{when:%m%d %H:%M:%S.%f} 4242"
    first = ('python_be.cc:2104] "Shared memory configuration is shm-default-byte-size=1048576"'
             if init else 'python_be.cc:1966] "backend configuration: {}"')
    return (f"{stamp} {first}\n"
            f'{stamp} python_be.cc:2401] "TRITONBACKEND_GetBackendAttribute: setting attributes"\n')


def test_only_the_empty_env_dir_made_as_the_backend_started_is_removed(
        env_dirs: list[Path]) -> None:
    ours = _env_dir(env_dirs)
    made = datetime.fromtimestamp(ours.stat().st_ctime, UTC)
    busy = _env_dir(env_dirs)  # made at the same moment but not empty: never taken
    (busy / "0").mkdir()
    time.sleep(0.3)
    theirs = _env_dir(env_dirs)  # another job's server, a moment later: still empty
    cleanup_from_log(_log(made))
    assert (ours.exists(), busy.is_dir(), theirs.is_dir()) == (False, True, True)


def test_a_log_that_does_not_say_when_the_backend_started_takes_no_unnamed_dir(
        env_dirs: list[Path]) -> None:
    ours = _env_dir(env_dirs)
    cleanup_from_log(_log(datetime.fromtimestamp(ours.stat().st_ctime, UTC), init=False))
    assert ours.is_dir()
    named = _env_dir(env_dirs)  # a dir the log names (an extracted archive) goes in any case
    (named / "0").mkdir()
    cleanup_from_log(f'I1204 17:18:10.972713 4242 stub_launcher.cc:385] "source {named}/0/bin"\n')
    assert not named.exists()
