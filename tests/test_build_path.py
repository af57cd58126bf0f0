"""Two jobs with two caches build one lock at the one fixed build path (reproducible archives)
one after the other: the lock that serializes them lies beside the path, not in a cache."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

JOB = """
import os, shutil, sys, time
from packer.build.prefix import new_build_dir
from packer.build.runlock import key_lock
key = "b" * 64
for _ in range(3):
    with key_lock(key):
        work = new_build_dir(key)
        assert (work.parent / f"{key[:16]}.lock").is_file(), "the lock is not beside the path"
        (work / "owner").write_text(str(os.getpid()))
        time.sleep(0.3)
        seen = (work / "owner").read_text() if (work / "owner").exists() else "gone"
        assert seen == str(os.getpid()), f"build dir taken over: {seen}"
        assert sorted(p.name for p in work.iterdir()) == ["owner"], "another job's files"
        shutil.rmtree(work)
print("ok")
"""


def test_two_jobs_with_two_caches_never_share_the_build_dir(tmp_path: Path) -> None:
    jobs = []
    for n in (1, 2):
        env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path),
               "TRITONPACK_CACHE": str(tmp_path / f"cache{n}")}
        jobs.append(subprocess.Popen([sys.executable, "-c", JOB], env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outs = [job.communicate(timeout=60)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], outs
    # the lock went with the last build, and neither cache held one
    assert sorted(p.name for p in (tmp_path / "tritonpack-build").iterdir()) == []
    assert [list((tmp_path / f"cache{n}").rglob("*.lock")) for n in (1, 2)] == [[], []]
