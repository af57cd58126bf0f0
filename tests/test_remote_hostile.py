"""A registry that answers what tritonpack never pushes: a small hostile OCI registry of the
test's own on loopback (http.server in a thread). Each odd answer is a miss with one warning
(or exit 16 for content that is unsafe), never exit 70, never a hang, never adopted."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from packer.caches import remote
from packer.caches.envs import lookup
from packer.caches.meta import EntryMeta
from packer.core.errors import RemoteIntegrityError

KEY = "ab" * 32
WHERE = KEY[:12]


class Notes:
    """A reporter that keeps the warnings (what the user would read)."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def start(self, stage: str, detail: str = "") -> None:
        pass

    def done(self, stage: str, summary: str, seconds: float) -> None:
        pass

    def note(self, message: str) -> None:
        self.notes.append(message)

    def progress(self, stage: str, current: float, total: float | None, unit: str) -> None:
        pass


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Hostile:
    """What the registry answers: a manifest (bytes), blobs by digest, and how slowly."""

    def __init__(self) -> None:
        self.manifest: bytes | None = None
        self.blobs: dict[str, bytes] = {}
        self.trickle = 0.0  # seconds between single bytes of the manifest
        self.served: list[str] = []

    def entry(self, env: bytes, env_media: str, meta: bytes,
              layers: list[dict[str, Any]] | None = None) -> None:
        """A manifest of tritonpack's shape over these blobs (digests right)."""
        self.blobs = {_digest(env): env, _digest(meta): meta, _digest(b"{}"): b"{}"}
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": remote.CONFIG_MEDIA, "digest": _digest(b"{}"), "size": 2},
            "layers": layers if layers is not None else [
                {"mediaType": env_media, "digest": _digest(env), "size": len(env)},
                {"mediaType": remote.META_MEDIA, "digest": _digest(meta), "size": len(meta)}],
        }).encode()


@pytest.fixture
def hostile() -> Iterator[tuple[Hostile, remote.RemoteRef]]:
    state = Hostile()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, body: bytes, status: int = 200, trickle: float = 0.0) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            if self.command == "HEAD":
                return
            try:
                if trickle:
                    for i in range(len(body)):
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(trickle)
                else:
                    self.wfile.write(body)
            except OSError:
                pass  # the client hung up: what a deadline does

        def do_GET(self) -> None:
            state.served.append(self.path)
            if self.path == "/v2/":
                self._send(b"{}")
            elif "/manifests/" in self.path:
                if state.manifest is None:
                    self._send(b"{}", 404)
                else:
                    self._send(state.manifest, trickle=state.trickle)
            elif "/blobs/" in self.path:
                blob = state.blobs.get(self.path.rsplit("/", 1)[1])
                self._send(blob if blob is not None else b"", 200 if blob is not None else 404)
            else:
                self._send(b"", 404)

        do_HEAD = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, remote.parse_ref(f"oci://127.0.0.1:{server.server_address[1]}/hostile/c")
    finally:
        server.shutdown()
        server.server_close()


def _meta(**over: Any) -> bytes:
    base = EntryMeta("tar.gz", 10, 1, "0" * 64, "3.10").to_dict()
    return json.dumps({**base, **over}).encode()


def _fetch(ref: remote.RemoteRef) -> tuple[bool, list[str], list[remote.Transfer]]:
    rep, transfers = Notes(), []
    got = remote.fetch([ref], KEY, rep, transfers)
    return got, rep.notes, transfers


def _miss(hostile: tuple[Hostile, remote.RemoteRef], why: str) -> None:
    """A miss, one warning saying ``why``, and nothing in the local cache."""
    _, ref = hostile
    got, notes, transfers = _fetch(ref)
    assert got is False
    assert notes == [f"remote cache {ref} not used: {ref}:{WHERE}: {why}"]
    assert [t.result for t in transfers] == ["error"]
    assert lookup(KEY) is None


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(("manifest", "why"), [
    (b"<html>nope</html>", "the registry's manifest is not JSON"),
    (b"[1, 2]", "the registry's manifest is not a JSON object"),
    (_nested(100_000), "the registry's manifest is nested too deeply"),
    (b"\xff\xfe{}", "the registry's manifest is not JSON"),
])
def test_a_manifest_that_is_not_an_object_is_a_miss(
        hostile: tuple[Hostile, remote.RemoteRef], manifest: bytes, why: str) -> None:
    hostile[0].manifest = manifest
    _miss(hostile, why)


@pytest.mark.parametrize(("layers", "why"), [
    ("x", "the registry's manifest has no list of layers"),
    ([], "the registry's manifest has no list of layers"),
    (["x"], "the registry's manifest lists a layer that is not an object"),
    ([{"mediaType": remote.META_MEDIA, "digest": "md5:00", "size": 1}],
     "the registry's manifest lists a layer without a media type and a sha256 digest"),
    ([{"mediaType": remote.META_MEDIA, "digest": "sha256:" + "0" * 64, "size": -1}],
     "the registry's manifest lists a layer of size -1"),
    ([{"mediaType": remote.META_MEDIA, "digest": "sha256:" + "0" * 64, "size": "big"}],
     "the registry's manifest lists a layer of size big"),
    ([{"mediaType": remote.META_MEDIA, "digest": "sha256:" + "0" * 64, "size": 1 << 50}],
     f"the registry's manifest lists a layer of size {1 << 50}"),
])
def test_a_manifest_with_bad_layers_is_a_miss(hostile: tuple[Hostile, remote.RemoteRef],
                                              layers: Any, why: str) -> None:
    state, _ = hostile
    state.entry(b"env", remote.ARCHIVE_MEDIA, _meta())
    doc = json.loads(state.manifest or b"")
    doc["layers"] = layers
    state.manifest = json.dumps(doc).encode()
    _miss(hostile, why)


@pytest.mark.parametrize(("meta", "why"), [
    (b"\xff\xfe not utf-8", "the registry's metadata is not tritonpack's (not UTF-8)"),
    (_nested(100_000), "the registry's metadata is not tritonpack's (nested too deeply)"),
    (json.dumps({"sha256": "0" * 64}).encode(),
     "the registry's metadata is not tritonpack's (schema None, not 1)"),
    (_meta(licenses="MIT"), "the registry's metadata is not tritonpack's (licenses is not a list)"),
    (_meta(licenses=[["numpy", 3]]),
     "the registry's metadata is not tritonpack's (licenses is not a list of pairs)"),
    (_meta(size=-5), "the registry's metadata is not tritonpack's (size is not a non-negative "
     "integer)"),
    (_meta(format="zip"), "the registry's metadata is not tritonpack's (format 'zip')"),
])
def test_metadata_that_is_not_tritonpacks_is_a_miss_never_adopted(
        hostile: tuple[Hostile, remote.RemoteRef], meta: bytes, why: str) -> None:
    hostile[0].entry(b"env", remote.ARCHIVE_MEDIA, meta)
    _miss(hostile, why)
    assert not [p for p in hostile[0].served if "/blobs/" in p
                and p.endswith(_digest(b"env"))]  # the environment was never downloaded


def test_a_huge_metadata_layer_is_refused_before_it_is_read(
        hostile: tuple[Hostile, remote.RemoteRef]) -> None:
    state, _ = hostile
    meta = _meta()
    state.entry(b"env", remote.ARCHIVE_MEDIA, meta, layers=[
        {"mediaType": remote.ARCHIVE_MEDIA, "digest": _digest(b"env"), "size": 3},
        {"mediaType": remote.META_MEDIA, "digest": _digest(meta), "size": 400_000_000}])
    _miss(hostile, "the registry's metadata is 400000000 bytes, more than the 67108864 "
                   "tritonpack's may be")
    assert not [p for p in state.served if "/blobs/" in p]


def test_a_blob_longer_than_declared_is_not_read_past_its_size(
        hostile: tuple[Hostile, remote.RemoteRef]) -> None:
    state, ref = hostile
    meta = _meta()
    state.entry(b"env", remote.ARCHIVE_MEDIA, meta)
    state.blobs[_digest(meta)] = meta + b" " * (8 << 20)  # 8 MiB more than the manifest says
    with pytest.raises(RemoteIntegrityError) as err:
        _fetch(ref)
    assert err.value.message.startswith(f"{ref}: blob {_digest(meta)[:19]} does not match its "
                                        "digest")
    assert err.value.exit_code == 16


def test_a_trickling_registry_does_not_hang_the_pack(
        hostile: tuple[Hostile, remote.RemoteRef], monkeypatch: pytest.MonkeyPatch) -> None:
    """One byte every 2 s never trips a per-read timeout; the overall deadline cuts it."""
    state, ref = hostile
    state.entry(b"env", remote.ARCHIVE_MEDIA, _meta())
    state.trickle = 2.0
    monkeypatch.setenv("TRITONPACK_REGISTRY_TIMEOUT", "3")
    t0 = time.monotonic()
    got, notes, _ = _fetch(ref)
    assert time.monotonic() - t0 < 15
    assert got is False
    assert notes == [f"remote cache {ref} not used: registry {ref.registry} was too slow: "
                     "reading the manifest took more than 3 s (the registry or the network is "
                     "slow; TRITONPACK_REGISTRY_TIMEOUT sets the budget in seconds)"]


def _tar(members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info in members:
            body = (data or {}).get(info.name)
            if body is not None:
                info.size = len(body)
            tar.addfile(info, io.BytesIO(body) if body is not None else None)
    return buf.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


DIR_META = _meta(format="dir", sha256="", manifest=[["bin/python3", "0" * 64]])


@pytest.mark.parametrize(("layer", "why"), [
    (_tar([_member("../escape")], {"../escape": b"x"}), "path with '..': ../escape"),
    (_tar([_member("lib/evil", tarfile.SYMTYPE, "/etc")]),
     "symlink lib/evil -> /etc leaves the environment"),
])
def test_a_dir_layer_with_an_unsafe_entry_is_refused(hostile: tuple[Hostile, remote.RemoteRef],
                                                     tmp_path: Path, layer: bytes,
                                                     why: str) -> None:
    state, ref = hostile
    state.entry(layer, remote.DIR_MEDIA, DIR_META)
    with pytest.raises(RemoteIntegrityError) as err:
        _fetch(ref)
    assert err.value.message == (f"{ref}:{WHERE}: the pulled environment holds an unsafe "
                                 f"entry ({why}): refused")
    assert err.value.exit_code == 16
    assert not (tmp_path.parent / "escape").exists()
    assert lookup(KEY) is None


def test_a_dir_layer_that_is_not_a_tar_is_a_miss(
        hostile: tuple[Hostile, remote.RemoteRef]) -> None:
    hostile[0].entry(b"this is not a tar archive" * 40, remote.DIR_MEDIA, DIR_META)
    _miss(hostile, "the registry's environment layer is not a tar archive")


def test_a_killed_pull_leaves_nothing_the_next_one_keeps(
        hostile: tuple[Hostile, remote.RemoteRef], session_cache: Path) -> None:
    """SIGKILL runs no cleanup: tmp/pull-<pid>.… of a dead run is swept by the next fetch."""
    import subprocess
    import sys

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)
    left = session_cache / "tmp" / f"pull-{dead}.r0123456789abcdef.x1"
    (left / "env").mkdir(parents=True)
    (left / "env" / "big").write_bytes(b"x" * 1000)
    mine = session_cache / "tmp" / f"pull-{os.getpid()}.r0123456789abcdef.x2"
    mine.mkdir()
    _fetch(hostile[1])  # a miss (404): the sweep ran first
    assert not left.exists()
    assert mine.is_dir()  # a live run's (this one's) is kept
    mine.rmdir()


@pytest.mark.slow
def test_bad_metadata_from_a_registry_is_never_adopted(
        hostile: tuple[Hostile, remote.RemoteRef], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, session_cache: Path) -> None:
    """Metadata pushed as {"sha256": ...} alone: a miss with one warning, the lock built
    here; the next run is not poisoned (it reuses what this machine built)."""
    from tests.conftest import copy_model, run_cli
    from tests.freshcache import fresh_cache

    state, ref = hostile
    state.entry(b"env", remote.ARCHIVE_MEDIA, json.dumps({"sha256": "0" * 64}).encode())
    cache = fresh_cache(tmp_path / "cache", session_cache)
    monkeypatch.setenv("TRITONPACK_CACHE", str(cache))
    model = copy_model("plain_numpy", tmp_path)
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--cache-from", str(ref))
    assert res.exit_code == 0, res.stderr
    key = next(p.name for p in (cache / "envs").iterdir() if not p.name.startswith("."))
    assert [line for line in res.stderr.splitlines() if "not used" in line] == [
        f"    note  remote cache {ref} not used: {ref}:{key[:12]}: the registry's metadata is "
        "not tritonpack's (schema None, not 1)"]
    again = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--cache-from", str(ref))
    assert again.exit_code == 0, again.stderr
    assert "reused the environment for this lock" in again.stderr


@pytest.mark.parametrize(("location", "why"), [
    ("file:///etc/passwd", "it sent tritonpack to a URL that is not http or https"),
    ("SELF", "it redirected in a loop"),
])
def test_a_redirecting_registry_is_a_miss_said_in_words(location: str, why: str) -> None:
    """A manifest redirected to file:// or to itself: a miss, one warning in words (was the
    exception's class name: InvalidSchema), nothing read, nothing adopted."""

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/v2/":
                self.send_response(200)
                self.send_header("Content-Length", "0")
            else:
                self.send_response(302)
                self.send_header("Location", self.path if location == "SELF" else location)
                self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ref = remote.parse_ref(f"oci://127.0.0.1:{server.server_address[1]}/hostile/c")
        got, notes, transfers = _fetch(ref)
    finally:
        server.shutdown()
        server.server_close()
    assert got is False
    assert notes == [f"remote cache {ref} not used: registry {ref.registry}: reading the "
                     f"manifest failed: {why}"]
    assert [t.result for t in transfers] == ["error"]
    assert lookup(KEY) is None
