"""The remote cache against a real OCI registry: the CNCF distribution registry (Debian's
docker-registry, installed by .ci/run), started on a free loopback port with a config of the
test's own and stopped by PID. Two TRITONPACK_CACHE dirs play two CI runners."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from packer.caches import meta as entrymeta
from packer.caches import remote
from packer.caches.meta import EntryMeta
from packer.core.errors import RemoteCacheError
from tests.conftest import copy_model, run_cli
from tests.freshcache import DOWNLOADS, fresh_cache

REGISTRY = shutil.which("docker-registry") or shutil.which("registry")
pytestmark = pytest.mark.skipif(REGISTRY is None,
                                reason="no docker-registry binary (.ci/run installs Debian's)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(tmp: Path, htpasswd: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    auth = (f"auth:\n  htpasswd:\n    realm: tritonpack-test\n    path: {htpasswd}\n"
            if htpasswd else "")
    config = tmp / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {tmp / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{auth}", encoding="utf-8")
    with (tmp / "registry.log").open("wb") as log:
        proc = subprocess.Popen([str(REGISTRY), "serve", str(config)],
                                stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"the registry did not start: {(tmp / 'registry.log').read_text()}")
    return proc, f"127.0.0.1:{port}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "registry"
    root.mkdir()
    proc, address = _start(root)
    yield address, root / "data"
    _stop(proc)


def _runner(tmp: Path, name: str, monkeypatch: pytest.MonkeyPatch,
            session_cache: Path) -> Path:
    """A fresh environment cache. Runner "a" (the one that builds) shares the session's
    download caches; any other runner only the channel, so that a build it should not have
    made shows (its own uv/)."""
    cache = fresh_cache(tmp / f"cache-{name}", session_cache,
                        DOWNLOADS if name == "a" else ("channels",))
    monkeypatch.setenv("TRITONPACK_CACHE", str(cache))
    return cache


def _only_entry(cache: Path) -> Path:
    entries = [p for p in (cache / "envs").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1
    return entries[0]


# -- references, no registry needed --------------------------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ("ghcr.io/acme/cache", "remote cache 'ghcr.io/acme/cache' is not an oci:// reference"),
    ("oci://ghcr.io", "remote cache 'oci://ghcr.io' names no registry and repository"),
    ("oci://ghcr.io/Acme/Cache", "remote cache 'oci://ghcr.io/Acme/Cache': 'Acme/Cache' is not "
     "a valid OCI repository name"),
    ("oci://bad host/x", "remote cache 'oci://bad host/x' names no registry and repository"),
])
def test_bad_reference(text: str, message: str) -> None:
    with pytest.raises(RemoteCacheError) as err:
        remote.parse_ref(text)
    assert err.value.message == message


def test_plain_http_only_for_loopback_or_named() -> None:
    assert remote.parse_ref("oci://127.0.0.1:5000/c").insecure
    assert remote.parse_ref("oci://localhost:5000/c").insecure
    assert not remote.parse_ref("oci://registry.internal:5000/c").insecure
    assert remote.parse_ref("oci://registry.internal:5000/c", ["registry.internal:5000"]).insecure


def test_bad_reference_fails_before_any_work(tmp_path: Path) -> None:
    model = copy_model("plain_numpy", tmp_path)
    before = sorted(p.name for p in model.iterdir())
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--cache-to", "registry/x")
    assert res.exit_code == 16
    assert "error: remote cache 'registry/x' is not an oci:// reference" in res.stderr
    assert sorted(p.name for p in model.iterdir()) == before


# -- against the real registry -------------------------------------------------------------

@pytest.mark.slow
def test_two_runners_build_once(tmp_path: Path, registry: tuple[str, Path],
                                monkeypatch: pytest.MonkeyPatch, session_cache: Path) -> None:
    address, _ = registry
    ref = f"oci://{address}/tritonpack/cache"
    model = copy_model("plain_numpy", tmp_path)
    _runner(tmp_path, "a", monkeypatch, session_cache)
    first = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--cache-to", ref)
    assert first.exit_code == 0, first.stderr
    assert f"pushed to {ref}:" in first.stderr
    archive = model / "tritonpack-env.tar.gz"
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert remote.exists(remote.parse_ref(ref), _only_entry(tmp_path / "cache-a").name)

    # runner B: an empty cache, the lock committed beside the model: it pulls, never builds
    archive.unlink()
    _runner(tmp_path, "b", monkeypatch, session_cache)
    monkeypatch.setenv("TRITONPACK_CACHE_FROM", ref)
    second = run_cli(model, "--frozen", "--python-from", "auto")
    assert second.exit_code == 0, second.stderr
    assert f"pulled the environment for this lock from {ref}:" in second.stderr
    assert "MB/s" in second.stderr
    assert "reused the environment for this lock" in second.stderr
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == sha
    assert not (tmp_path / "cache-b" / "uv").exists()  # nothing was installed: no build
    info = run_cli("cache", "info", "--json")
    last = json.loads(info.stdout)["last_run"]
    assert [t["result"] for t in last] == ["hit"]
    assert json.loads(info.stdout)["remote"]["cache-from"] == [ref]


@pytest.mark.slow
def test_tampered_blob_is_refused(tmp_path: Path, registry: tuple[str, Path],
                                  monkeypatch: pytest.MonkeyPatch, session_cache: Path) -> None:
    address, data = registry
    ref = f"oci://{address}/tritonpack/cache"
    model = copy_model("plain_numpy", tmp_path)
    _runner(tmp_path, "a", monkeypatch, session_cache)
    assert run_cli(model, "--triton", "24.10", "--python-from", "auto", "--cache-to", ref,
                   "-q").exit_code == 0
    blobs = [p for p in (data / "docker/registry/v2/blobs").rglob("data")
             if p.stat().st_size > 1_000_000]
    assert len(blobs) == 1  # the archive
    raw = bytearray(blobs[0].read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    blobs[0].write_bytes(bytes(raw))
    before = (model / "tritonpack-env.tar.gz").read_bytes()
    _runner(tmp_path, "b", monkeypatch, session_cache)
    res = run_cli(model, "--frozen", "--python-from", "auto", "--cache-from", ref)
    assert res.exit_code == 16
    assert "does not match its digest" in res.stderr
    assert "refused" in res.stderr
    assert (model / "tritonpack-env.tar.gz").read_bytes() == before  # nothing used
    assert not any((tmp_path / "cache-b" / "envs").glob("[0-9a-f]*"))


@pytest.mark.slow
def test_unreachable_registry_builds_locally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             session_cache: Path) -> None:
    ref = f"oci://127.0.0.1:{_free_port()}/cache"  # nothing listens there
    model = copy_model("plain_numpy", tmp_path)
    _runner(tmp_path, "a", monkeypatch, session_cache)
    t0 = time.monotonic()
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--cache-from", ref,
                  "--cache-to", ref)
    assert res.exit_code == 0, res.stderr
    assert time.monotonic() - t0 < 120
    port = ref.split(":")[2].split("/")[0]
    assert (f"remote cache {ref} not used: registry 127.0.0.1:{port} is unreachable: "
            "connection refused") in res.stderr
    assert f"could not push to {ref}: registry 127.0.0.1:{port} is unreachable" in res.stderr
    assert (model / "tritonpack-env.tar.gz").is_file()


@pytest.mark.slow
def test_auth_wrong_password_and_right_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           session_cache: Path) -> None:
    bcrypt = pytest.importorskip("bcrypt")
    root = tmp_path / "registry"
    root.mkdir()
    htpasswd = root / "htpasswd"
    htpasswd.write_text("ci:" + bcrypt.hashpw(b"s3cret-pw", bcrypt.gensalt(rounds=4)).decode()
                        + "\n", encoding="utf-8")
    proc, address = _start(root, htpasswd)
    try:
        ref = f"oci://{address}/private/cache"
        model = copy_model("plain_numpy", tmp_path)
        _runner(tmp_path, "a", monkeypatch, session_cache)
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
        monkeypatch.setenv("TRITONPACK_REGISTRY_USER", "ci")
        monkeypatch.setenv("TRITONPACK_REGISTRY_PASSWORD", "wrong-pw")
        res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--cache-to", ref)
        assert res.exit_code == 0, res.stderr  # a failed push is a warning
        assert f"could not push to {ref}: registry {address} refused the credentials" in res.stderr
        assert "wrong-pw" not in res.stderr + res.stdout
        monkeypatch.delenv("TRITONPACK_REGISTRY_PASSWORD")
        res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--cache-to", ref)
        assert (f"registry {address} requires a login and no credentials were found"
                in res.stderr)
        monkeypatch.setenv("TRITONPACK_REGISTRY_PASSWORD", "s3cret-pw")
        res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--cache-to", ref)
        assert f"pushed to {ref}:" in res.stderr, res.stderr
        assert "s3cret-pw" not in res.stderr + res.stdout
        assert not list(tmp_path.rglob("config.json"))  # no credentials written anywhere
    finally:
        _stop(proc)


@pytest.mark.slow
def test_concurrent_pushes_of_one_key(tmp_path: Path, registry: tuple[str, Path],
                                      monkeypatch: pytest.MonkeyPatch,
                                      session_cache: Path) -> None:
    address, _ = registry
    ref = remote.parse_ref(f"oci://{address}/race/cache")
    model = copy_model("plain_numpy", tmp_path)
    cache = _runner(tmp_path, "a", monkeypatch, session_cache)
    assert run_cli(model, "--triton", "24.10", "--python-from", "auto", "-q").exit_code == 0
    entry = _only_entry(cache)
    meta = entrymeta.read((entry / "meta.json").read_bytes())
    errors: list[BaseException] = []

    def one() -> None:
        try:
            remote.push(ref, entry.name, entry / "env.tar.gz", meta, {"triton": "24.10"})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    work = tmp_path / "pulled"
    work.mkdir()
    pulled = remote.pull(ref, entry.name, work)
    assert pulled is not None
    assert pulled.path.read_bytes() == (entry / "env.tar.gz").read_bytes()
    assert os.environ["TRITONPACK_CACHE"] == str(cache)


@pytest.mark.slow
def test_dir_env_and_options_from_tritonpack_toml(tmp_path: Path, registry: tuple[str, Path],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  session_cache: Path) -> None:
    """--format dir travels as a plain tar; the registries may sit in tritonpack.toml."""
    address, _ = registry
    ref = f"oci://{address}/dirs/cache"
    model = copy_model("plain_numpy", tmp_path)
    (model / "tritonpack.toml").write_text(
        f'[options]\ncache-from = "{ref}"\ncache-to = ["{ref}"]\n', encoding="utf-8")
    _runner(tmp_path, "a", monkeypatch, session_cache)
    first = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--format", "dir")
    assert first.exit_code == 0, first.stderr
    assert f"pushed to {ref}:" in first.stderr
    env = model / "tritonpack-env"
    files = sorted(str(p.relative_to(env)) for p in env.rglob("*"))
    links = {str(p.relative_to(env)): os.readlink(p) for p in env.rglob("*") if p.is_symlink()}
    shutil.rmtree(env)
    _runner(tmp_path, "b", monkeypatch, session_cache)
    second = run_cli(model, "--frozen", "--python-from", "auto", "--format", "dir")
    assert second.exit_code == 0, second.stderr
    assert f"pulled the environment for this lock from {ref}:" in second.stderr
    assert sorted(str(p.relative_to(env)) for p in env.rglob("*")) == files
    assert {str(p.relative_to(env)): os.readlink(p)
            for p in env.rglob("*") if p.is_symlink()} == links
    assert os.access(env / "bin" / "python3", os.X_OK)
    shown = run_cli("config", model, "--json")
    assert ref in shown.stdout


LOCK = "sha256:" + "0" * 64


def _push_escaping_link(tmp_path: Path, ref: remote.RemoteRef, key: str,
                        link: bool = True) -> None:
    """An archive whose blobs match their manifest, stamped for ``LOCK``, holding a symlink
    out of the env (or, without ``link``, nothing unsafe and no Python either)."""
    import io
    import tarfile

    archive = tmp_path / "env.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = json.dumps({"lock": LOCK}).encode()
        info = tarfile.TarInfo("tritonpack.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        if link:
            evil = tarfile.TarInfo("lib/evil")
            evil.type = tarfile.SYMTYPE
            evil.linkname = "/etc"
            tar.addfile(evil)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    remote.push(ref, key, archive, EntryMeta("tar.gz", archive.stat().st_size, 2, sha, "3.10"),
                {"triton": "24.10"})


ESCAPE = ("the pulled environment holds an unsafe entry (symlink lib/evil -> /etc leaves the "
          "environment): refused")


def test_a_pushed_environment_with_an_escaping_link_is_refused(tmp_path: Path,
                                                               registry: tuple[str, Path]) -> None:
    """Digests prove only that the blobs match their manifest: whoever can push can sign an
    environment tritonpack would never pack. A pull checks the entries themselves."""
    address, _ = registry
    ref = remote.parse_ref(f"oci://{address}/poison/cache")
    key = "f" * 64
    _push_escaping_link(tmp_path, ref, key)
    work = tmp_path / "pulled"
    work.mkdir()
    with pytest.raises(RemoteCacheError) as err:
        remote.pull(ref, key, work)
    assert err.value.message == f"{ref}:ffffffffffff: {ESCAPE}"


@pytest.mark.parametrize(("link", "said"), [
    (True, ESCAPE),
    (False, "the pulled environment fails the checks a local build passes (the environment "
            "has no bin/python3: Triton would silently run the model on its own Python): "
            "refused")])
def test_a_gated_pull_reads_the_entries_once_and_refuses_in_the_same_words(
        tmp_path: Path, registry: tuple[str, Path], monkeypatch: pytest.MonkeyPatch,
        link: bool, said: str) -> None:
    """With the local gate (``fetch`` with an ``Expect``, what a pack does), the archive's
    entries are read once, by the gate (unpacking was most of a pull's time): an unsafe
    entry is still refused in pull's own sentence, a safe env the gate refuses in the gate's,
    both as integrity errors, and nothing enters the cache."""
    from packer.core.errors import RemoteIntegrityError
    from packer.core.progress import NullReporter
    from packer.envcheck import inspect
    from packer.resolve.recipebook import load
    from packer.resolve.target import resolve_target

    address, _ = registry
    ref = remote.parse_ref(f"oci://{address}/poison/gated")
    key = "e" * 64
    _push_escaping_link(tmp_path, ref, key, link)
    monkeypatch.setenv("TRITONPACK_CACHE", str(tmp_path / "cache"))
    reads: list[Path] = []
    entries = inspect._tar_entries

    def counted(path: Path, *args: object, **kw: object) -> object:
        reads.append(path)
        return entries(path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(inspect, "_tar_entries", counted)
    transfers: list[remote.Transfer] = []
    expect = remote.Expect(resolve_target(load(), "24.10"), LOCK)
    with pytest.raises(RemoteIntegrityError) as err:
        remote.fetch([ref], key, NullReporter(), transfers, expect)
    assert err.value.message == f"{ref}:eeeeeeeeeeee: {said}"
    assert len(reads) == 1  # the gate's read; pull left the entries to it
    assert [t.result for t in transfers] == ["error"]
    assert not (tmp_path / "cache" / "envs" / key).exists()


# -- a pulled environment passes the gate a local build passes, and matches this lock ----------

def _variant(src: Path, dest: Path, change: str) -> None:
    """``src`` (a real packed archive) rewritten: without bin/python3, stamped for another
    lock, or with a sitecustomize.py no package owns."""
    import io
    import tarfile

    with tarfile.open(src, "r:gz") as tin, tarfile.open(dest, "w:gz", compresslevel=1) as tout:
        for member in tin:
            data = tin.extractfile(member).read() if member.isreg() else None
            if change == "no-python" and member.name == "bin/python3":
                continue
            if change == "other-lock" and member.name == "tritonpack.json":
                stamp = {**json.loads(data or b"{}"), "lock": "sha256:" + "0" * 64}
                data = json.dumps(stamp).encode()
                member.size = len(data)
            tout.addfile(member, io.BytesIO(data) if data is not None else None)
        if change == "sitecustomize":
            hook = b"import os; os.system('echo pwned')\n"
            info = tarfile.TarInfo("lib/python3.10/site-packages/sitecustomize.py")
            info.size = len(hook)
            tout.addfile(info, io.BytesIO(hook))


GATE = {
    "no-python": "fails the checks a local build passes (the environment has no bin/python3: "
                 "Triton would silently run the model on its own Python)",
    "other-lock": "was not packed from this lock (its stamp says 'sha256:000000000000')",
    "sitecustomize": "fails the checks a local build passes (unsafe entry: "
                     "lib/python3.10/site-packages/sitecustomize.py runs at every start of the "
                     "environment's Python and no installed package owns it)",
}


@pytest.mark.slow
@pytest.mark.parametrize("change", list(GATE))
def test_a_pulled_environment_passes_the_local_gate_and_matches_the_lock(
        tmp_path: Path, registry: tuple[str, Path], monkeypatch: pytest.MonkeyPatch,
        session_cache: Path, change: str) -> None:
    """Digests prove only that blobs match a manifest anyone with push rights writes: an
    environment without bin/python3, one packed for another lock or one carrying a start-up
    hook is refused (exit 16), and nothing in the model dir or the cache changes."""
    address, _ = registry
    ref = f"oci://{address}/gate/cache"
    model = copy_model("plain_numpy", tmp_path)
    cache = _runner(tmp_path, "a", monkeypatch, session_cache)
    assert run_cli(model, "--triton", "24.10", "--python-from", "auto", "-q").exit_code == 0
    entry = _only_entry(cache)
    bad = tmp_path / "bad.tar.gz"
    _variant(entry / "env.tar.gz", bad, change)
    sha = hashlib.sha256(bad.read_bytes()).hexdigest()
    meta = entrymeta.read((entry / "meta.json").read_bytes())
    meta = EntryMeta(**{**meta.__dict__, "sha256": sha, "size": bad.stat().st_size})
    remote.push(remote.parse_ref(ref), entry.name, bad, meta, {"triton": "24.10"})
    (model / "tritonpack-env.tar.gz").unlink()
    before = {p.name: p.read_bytes() for p in model.iterdir() if p.is_file()}
    _runner(tmp_path, "b", monkeypatch, session_cache)
    res = run_cli(model, "--frozen", "--python-from", "auto", "--cache-from", ref)
    assert res.exit_code == 16, res.stderr
    assert [line for line in res.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {ref}:{entry.name[:12]}: the pulled environment {GATE[change]}: refused"]
    assert {p.name: p.read_bytes() for p in model.iterdir() if p.is_file()} == before
    assert not any((tmp_path / "cache-b" / "envs").glob("[0-9a-f]*"))


@pytest.mark.slow
def test_a_bad_local_entry_is_dropped_and_rebuilt(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  session_cache: Path) -> None:
    """A meta.json that is not tritonpack's (adopted by an older tritonpack from a registry,
    or edited) makes no run exit 70: the entry is dropped and the lock built again."""
    model = copy_model("plain_numpy", tmp_path)
    cache = _runner(tmp_path, "a", monkeypatch, session_cache)
    assert run_cli(model, "--triton", "24.10", "--python-from", "auto", "-q").exit_code == 0
    entry = _only_entry(cache)
    (entry / "meta.json").write_text(json.dumps({"sha256": "0" * 64}))
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == 0, res.stderr
    assert "reused the environment" not in res.stderr
    assert entrymeta.read((_only_entry(cache) / "meta.json").read_bytes()).format == "tar.gz"
    again = run_cli(model, "--triton", "24.10", "--python-from", "auto")
    assert again.exit_code == 0 and "reused the environment for this lock" in again.stderr


@pytest.mark.slow
def test_sigint_during_the_push_says_the_commit_is_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, session_cache: Path) -> None:
    import signal

    from tests.conftest import interrupt_expected

    model = copy_model("plain_numpy", tmp_path)
    _runner(tmp_path, "a", monkeypatch, session_cache)
    monkeypatch.setattr(remote, "exists", lambda ref, key: False)

    def interrupted(*args: object, **kwargs: object) -> remote.Transfer:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
        raise AssertionError("not interrupted")

    monkeypatch.setattr(remote, "push", interrupted)
    with interrupt_expected():
        res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--cache-to",
                      "oci://127.0.0.1:9/cache")
    assert res.exit_code == 130
    assert res.stderr.strip().splitlines()[-1] == (
        "interrupted (SIGINT) after the commit: the new environment, lock and config.pbtxt are "
        "all in place")
    assert "nothing in the model directory was changed" not in res.stderr
    assert (model / "tritonpack-env.tar.gz").is_file() and (model / "tritonpack.lock").is_file()
    assert run_cli("check", model).exit_code == 0
