"""A shared environment cache in an OCI registry: a fleet of runners builds each lock once.

Like ``docker buildx --cache-from/--cache-to``: no server of tritonpack's own, the registry a
team already runs (Harbor, GHCR, ECR, the CNCF distribution registry) stores each packed
environment as an ORAS artifact tagged with the local cache's content key (the lock hash, the
pack options, the bundled modules and tritonpack's format version). The registry protocol is
the ``oras`` SDK's (manifests, blob uploads, token and basic auth, Docker credential
helpers); this module adds what a cache needs around it:

* integrity: every pulled blob is hashed and compared with the digest in the manifest, and the
  archive with the sha256 recorded beside it, before anything enters the local cache;
* bounded time: a registry is pinged first with a short timeout, requests have timeouts and
  are not retried for minutes (the SDK's own retry sleeps up to 83 s);
* credentials from ``TRITONPACK_REGISTRY_USER``/``_PASSWORD`` or Docker's config
  (``DOCKER_CONFIG``, credential helpers); never written, never printed;
* plain HTTP only for loopback registries or the ones named by ``--insecure-registry``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import tarfile
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_write_bytes
from ..core.cachehome import cache_dir, cache_root
from ..core.errors import RemoteCacheError, RemoteIntegrityError
from ..core.integrity import manifest as file_manifest
from ..core.progress import Reporter
from ..core.redact import redact
from ..core.reproducible import anonymous
from ..core.storefile import open_entry
from ..core.version import install_hint
from ..envcheck.inspect import first_unsafe_entry

SCHEME = "oci://"
CONFIG_MEDIA = "application/vnd.tritonpack.env.config.v1+json"  # the artifact's type
ARCHIVE_MEDIA = "application/vnd.tritonpack.env.v1.tar+gzip"
DIR_MEDIA = "application/vnd.tritonpack.env.dir.v1.tar"  # a --format dir env, as a plain tar
META_MEDIA = "application/vnd.tritonpack.env.meta.v1+json"
ANNOTATION = "dev.tritonpack"
LOOPBACK = ("localhost", "127.0.0.1", "[::1]", "::1")
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 120.0
ENV_FROM = "TRITONPACK_CACHE_FROM"
ENV_TO = "TRITONPACK_CACHE_TO"
ENV_USER = "TRITONPACK_REGISTRY_USER"
ENV_PASSWORD = "TRITONPACK_REGISTRY_PASSWORD"  # noqa: S105 (a variable's name, not a secret)
_REPO = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::[0-9]{1,5})?")


@dataclass(frozen=True)
class RemoteRef:
    """``oci://REGISTRY/REPO``: where environments are looked up and pushed."""

    registry: str  # host[:port]
    repository: str
    insecure: bool = False  # plain HTTP

    def __str__(self) -> str:
        return f"{SCHEME}{self.registry}/{self.repository}"

    def target(self, key: str) -> str:
        return f"{self.registry}/{self.repository}:{key}"

    @property
    def host(self) -> str:
        return self.registry.rsplit(":", 1)[0] if not self.registry.endswith("]") else self.registry

    @property
    def port(self) -> int:
        head, _, tail = self.registry.rpartition(":")
        if head and tail.isdigit() and not self.registry.endswith("]"):
            return int(tail)
        return 80 if self.insecure else 443


def parse_ref(text: str, insecure_registries: Iterable[str] = ()) -> RemoteRef:
    """Parse ``oci://REGISTRY/REPO``; refuse anything else in one sentence."""
    if not text.startswith(SCHEME):
        raise RemoteCacheError(f"remote cache {text!r} is not an oci:// reference",
                               hint="write it as oci://REGISTRY/REPOSITORY, e.g. "
                               "oci://ghcr.io/acme/tritonpack-cache")
    registry, _, repository = text[len(SCHEME):].partition("/")
    repository = repository.rstrip("/")
    if "@" in registry:
        raise RemoteCacheError(
            f"remote cache {redact(text)!r} carries credentials in the URL, where they would "
            "be seen (logs, process lists, tritonpack.toml)",
            hint=f"drop them from the URL and set {ENV_USER} and {ENV_PASSWORD}, or "
            "`docker login` the registry")
    if not _HOST.fullmatch(registry) or not repository:
        raise RemoteCacheError(f"remote cache {text!r} names no registry and repository",
                               hint="write it as oci://REGISTRY/REPOSITORY")
    if not _REPO.fullmatch(repository):
        raise RemoteCacheError(
            f"remote cache {text!r}: {repository!r} is not a valid OCI repository name",
            hint="lowercase letters, digits and . _ - separators, components joined by /")
    if not 0 < RemoteRef(registry, repository).port < 65536:  # 99999: no connection to refuse
        raise RemoteCacheError(
            f"remote cache {text!r}: port {RemoteRef(registry, repository).port} is not a TCP "
            "port (1-65535)", hint="write it as oci://HOST:PORT/REPOSITORY")
    host = registry.rsplit(":", 1)[0] if not registry.endswith("]") else registry
    insecure = host in LOOPBACK or registry in set(insecure_registries) \
        or host in set(insecure_registries)
    return RemoteRef(registry, repository, insecure)


def refs_from(values: Iterable[str], insecure: Iterable[str] = ()) -> tuple[RemoteRef, ...]:
    """Every reference of a repeatable option (a value may list several, comma-separated)."""
    out: list[RemoteRef] = []
    for value in values:
        for part in value.split(","):
            if part.strip():
                out.append(parse_ref(part.strip(), insecure))
    return tuple(dict.fromkeys(out))


# -- the client: the oras SDK with bounded time and the right auth scheme --------------------

def _ping(ref: RemoteRef) -> str:
    """``GET /v2/`` with a short timeout: the auth scheme the registry asks for ('' for none).
    An unreachable registry fails here in seconds, not after the SDK's minutes of retries."""
    import requests  # the oras SDK's own HTTP library (installed with it)

    try:
        with socket.create_connection((ref.host.strip("[]"), ref.port), timeout=CONNECT_TIMEOUT):
            pass
        scheme = "http" if ref.insecure else "https"
        resp = requests.get(f"{scheme}://{ref.registry}/v2/", timeout=(CONNECT_TIMEOUT, 30))
    except (OSError, requests.RequestException) as exc:
        raise RemoteCacheError(f"registry {ref.registry} is unreachable: {_why(exc)}",
                               hint=_insecure_hint(ref, exc)) from exc
    if resp.status_code == 401:
        challenge = resp.headers.get("Www-Authenticate", "")
        return "basic" if challenge.lower().startswith("basic") else "token"
    if resp.status_code >= 400:
        raise RemoteCacheError(f"registry {ref.registry} answered HTTP {resp.status_code} "
                               "to /v2/: it does not look like an OCI registry")
    return ""


def _why(exc: BaseException) -> str:
    text = str(exc)
    for pattern, say in (("Connection refused", "connection refused"),
                         ("timed out", "timed out"), ("Name or service not known", "unknown host"),
                         ("CERTIFICATE_VERIFY_FAILED", "its TLS certificate is not trusted"),
                         ("WRONG_VERSION_NUMBER", "it does not speak HTTPS")):
        if pattern in text:
            return say
    return type(exc).__name__


def _insecure_hint(ref: RemoteRef, exc: BaseException) -> str | None:
    if not ref.insecure and "WRONG_VERSION_NUMBER" in str(exc):
        return (f"a plain-HTTP registry: pass --insecure-registry {ref.registry} "
                "(only on a network you trust)")
    return None


def _docker_config() -> str | None:
    base = os.environ.get("DOCKER_CONFIG")
    path = Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"
    return str(path) if path.is_file() else None


def _client(ref: RemoteRef) -> Any:
    try:
        from oras.provider import Registry
    except ImportError as exc:
        raise RemoteCacheError("remote caches need the oras SDK, which is not installed",
                               hint=install_hint("remote")) from exc

    scheme = _ping(ref)

    class _Bounded(Registry):  # type: ignore[misc]
        """The SDK's request path without its minutes-long retry loop."""

        def do_request(self, *args: Any, **kwargs: Any) -> Any:
            return Registry.do_request.__wrapped__(self, *args, **kwargs)

    client = _Bounded(hostname=ref.registry, insecure=ref.insecure,
                      auth_backend="basic" if scheme == "basic" else "token")
    client.session.request = partial(client.session.request,
                                     timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
    if scheme:
        config = _docker_config()
        client.auth.load_configs(client.get_container(ref.target("x")),
                                 configs=[config] if config else None)
        user, password = os.environ.get(ENV_USER), os.environ.get(ENV_PASSWORD)
        if user and password:
            client.auth.set_basic_auth(user, password)
        if not getattr(client.auth, "_basic_auth", None) and scheme == "basic":
            raise RemoteCacheError(
                f"registry {ref.registry} requires a login and no credentials were found",
                hint=f"set {ENV_USER} and {ENV_PASSWORD}, or `docker login {ref.registry}`")
    return client


def _check(resp: Any, ref: RemoteRef, what: str) -> None:
    if resp.status_code in (200, 201, 202):
        return
    if resp.status_code in (401, 403):
        raise RemoteCacheError(f"registry {ref.registry} refused the credentials ({what}: "
                               f"HTTP {resp.status_code})",
                               hint=f"check {ENV_USER}/{ENV_PASSWORD} or your docker login")
    raise RemoteCacheError(f"registry {ref.registry}: {what} failed (HTTP {resp.status_code})")


# -- pull ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Transfer:
    """One push or pull, for the progress line and ``cache info``."""

    ref: str
    key: str
    result: str  # hit | miss | pushed | present | error
    bytes: int = 0
    seconds: float = 0.0
    error: str = ""

    @property
    def rate(self) -> str:
        mb = self.bytes / 1e6
        return f"{mb:.1f} MB in {self.seconds:.1f}s ({mb / max(self.seconds, 1e-3):.0f} MB/s)"


@dataclass(frozen=True)
class Pulled:
    """An environment pulled and verified, in a private temp dir until the cache adopts it."""

    path: Path  # the archive file or the env directory
    meta: dict[str, Any]
    transfer: Transfer


def _manifest_request(ref: RemoteRef, key: str, method: str) -> tuple[Any, Any, Any]:
    """(client, container, response) of a GET or HEAD of ``key``'s manifest."""
    client = _client(ref)
    container = client.get_container(ref.target(key))
    resp = client.do_request(f"{client.prefix}://{container.manifest_url()}", method,
                             headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    return client, container, resp


def pull(ref: RemoteRef, key: str, work: Path) -> Pulled | None:
    """The environment for ``key`` from ``ref`` into ``work``, verified; None when absent."""
    client, container, resp = _manifest_request(ref, key, "GET")
    if resp.status_code == 404:
        return None
    _check(resp, ref, "reading the manifest")
    manifest = resp.json()
    if manifest.get("config", {}).get("mediaType") != CONFIG_MEDIA:
        raise RemoteCacheError(f"{ref}:{key[:12]} is not a tritonpack environment "
                               f"(config {manifest.get('config', {}).get('mediaType')!r})")
    t0 = time.monotonic()
    layers = {layer.get("mediaType"): layer for layer in manifest.get("layers", [])}
    env_layer = layers.get(ARCHIVE_MEDIA) or layers.get(DIR_MEDIA)
    if env_layer is None or META_MEDIA not in layers:
        raise RemoteCacheError(f"{ref}:{key[:12]} lacks its environment or its metadata layer")
    meta_file = _download(client, container, layers[META_MEDIA], work / "meta.json", ref)
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    blob = _download(client, container, env_layer, work / "blob", ref)
    annotations = manifest.get("annotations", {})
    if env_layer["mediaType"] == ARCHIVE_MEDIA:
        recorded = {str(meta.get("sha256", "")),
                    annotations.get(f"{ANNOTATION}.archive-sha256") or str(meta.get("sha256"))}
        actual = env_layer["digest"].removeprefix("sha256:")
        if recorded != {actual}:
            raise RemoteIntegrityError(
                f"{ref}:{key[:12]}: the archive's sha256 ({actual[:12]}) differs from the one "
                "recorded with it: refused", hint="the entry was altered; nothing was used")
        path = work / "env.tar.gz"
        blob.rename(path)
        if (why := first_unsafe_entry(path)) is not None:  # whoever can push can sign anything
            raise RemoteIntegrityError(
                f"{ref}:{key[:12]}: the pulled environment holds an unsafe entry ({why}): "
                "refused", hint="the registry holds an environment tritonpack would never "
                "pack; nothing was used")
    else:
        path = work / "env"
        with tarfile.open(blob) as tar:
            tar.extractall(path, filter="data")  # no absolute paths, no escape through links
        blob.unlink()
        want = {str(a): str(b) for a, b in meta.get("manifest", ())}
        if not want or file_manifest(path) != want:
            raise RemoteIntegrityError(
                f"{ref}:{key[:12]}: the environment's files differ from the manifest recorded "
                "with it: refused", hint="the entry was altered; nothing was used")
    size = int(env_layer.get("size", 0)) + int(layers[META_MEDIA].get("size", 0))
    return Pulled(path, meta, Transfer(str(ref), key, "hit", size, time.monotonic() - t0))


def _download(client: Any, container: Any, layer: dict[str, Any], dest: Path,
              ref: RemoteRef) -> Path:
    """Stream one blob to ``dest``, hashing it; a digest or size mismatch is refused."""
    digest = str(layer.get("digest", ""))
    if not digest.startswith("sha256:"):
        raise RemoteCacheError(f"{ref}: a layer has an unsupported digest {digest!r}")
    h = hashlib.sha256()
    size = 0
    with client.get_blob(container, digest, stream=True) as resp:
        _check(resp, ref, f"downloading {digest[:19]}")
        with dest.open("wb") as out:
            for chunk in resp.iter_content(chunk_size=1 << 20):
                h.update(chunk)
                size += len(chunk)
                out.write(chunk)
    if h.hexdigest() != digest.removeprefix("sha256:") or size != int(layer.get("size", size)):
        dest.unlink(missing_ok=True)
        raise RemoteIntegrityError(
            f"{ref}: blob {digest[:19]} does not match its digest (got sha256:{h.hexdigest()[:12]},"
            f" {size} bytes): refused", hint="the registry holds altered content; nothing was used")
    return dest


# -- push ------------------------------------------------------------------------------------

def exists(ref: RemoteRef, key: str) -> bool:
    resp = _manifest_request(ref, key, "HEAD")[2]
    if resp.status_code == 404:
        return False
    _check(resp, ref, "looking up the manifest")
    return True


def push(ref: RemoteRef, key: str, env: Path, meta: dict[str, Any],
         annotations: dict[str, str], attempts: int = 3) -> Transfer:
    """Push one cache entry (the archive or the env directory, and its metadata) under ``key``.
    Runners that push the same key at once race inside the registry (the distribution
    registry may refuse one upload of a blob that another is writing): a failed attempt is
    retried, unless a twin's push has meanwhile made the entry whole."""
    for attempt in range(attempts):
        try:
            return _push_once(ref, key, env, meta, annotations)
        except (ValueError, RemoteCacheError):
            if exists(ref, key):
                return Transfer(str(ref), key, "present")
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _push_once(ref: RemoteRef, key: str, env: Path, meta: dict[str, Any],
               annotations: dict[str, str]) -> Transfer:
    client = _client(ref)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="push-", dir=cache_dir("tmp")) as tmp:
        work = Path(tmp)
        shared = {k: v for k, v in meta.items() if k != "created"}  # same lock, same bytes
        (work / "meta.json").write_text(json.dumps(shared, indent=2, sort_keys=True),
                                        encoding="utf-8")
        (work / "config.json").write_text(json.dumps({"key": key}), encoding="utf-8")
        if env.is_dir():
            blob, media = work / "env.tar", DIR_MEDIA
            _tar_dir(env, blob)
        else:
            blob, media = work / "env.tar.gz", ARCHIVE_MEDIA
            os.link(env, blob) if _same_fs(env, work) else shutil.copy2(env, blob)
        resp = client.push(
            target=ref.target(key), files=[f"{blob}:{media}", f"{work / 'meta.json'}:{META_MEDIA}"],
            manifest_config=f"{work / 'config.json'}:{CONFIG_MEDIA}",
            manifest_annotations={f"{ANNOTATION}.{k}": v for k, v in
                                  {**annotations, "archive-sha256": str(meta.get("sha256", "")),
                                   "format": str(meta.get("format", ""))}.items()},
            disable_path_validation=True, quiet=True)
        _check(resp, ref, "pushing the manifest")
        size = blob.stat().st_size
    return Transfer(str(ref), key, "pushed", size, time.monotonic() - t0)


def _same_fs(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


def _tar_dir(root: Path, dest: Path) -> None:
    """A plain, sorted tar of a directory env (gzip would only re-compress its .so files)."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False, filter=anonymous)


# -- what the last run did, for `tritonpack cache info` ----------------------------------------

def _stats_file() -> Path:
    return cache_root() / "remote-last-run.json"


def record(transfers: list[Transfer]) -> None:
    """Keep the last run's pulls and pushes (best-effort: the cache may be read-only); a
    new temporary file renamed over the last, so a planted symlink is replaced, not followed."""
    try:
        cache_dir()
        data = {"time": time.time(), "transfers": [t.__dict__ for t in transfers]}
        atomic_write_bytes(_stats_file(), json.dumps(data, indent=2).encode(), mode=0o644)
    except OSError:
        pass


def last_run() -> list[Transfer]:
    """What ``record`` kept; nothing when the file is missing, not a regular file (a FIFO
    would block, a symlink is not followed) or not the shape ``record`` writes."""
    fh = open_entry(_stats_file())
    if fh is None:
        return []
    try:
        with fh:
            data = json.loads(fh.read(1 << 20).decode("utf-8"))
        rows = data.get("transfers", []) if isinstance(data, dict) else []
        return [Transfer(str(t["ref"]), str(t["key"]), str(t["result"]), int(t.get("bytes", 0)),
                         float(t.get("seconds", 0.0)), str(t.get("error", "")))
                for t in rows if isinstance(t, dict)
                and all(isinstance(t.get(k), str) for k in ("ref", "key", "result"))]
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return []


def configured() -> dict[str, tuple[str, ...]]:
    """The remote caches set by environment variable (a model's tritonpack.toml may add more)."""
    return {"cache-from": tuple(v for v in os.environ.get(ENV_FROM, "").split(",") if v.strip()),
            "cache-to": tuple(v for v in os.environ.get(ENV_TO, "").split(",") if v.strip())}


# -- the pipeline's two calls ------------------------------------------------------------------

def fetch(refs: Iterable[RemoteRef], key: str, rep: Reporter,
          transfers: list[Transfer]) -> bool:
    """Pull ``key`` from the first remote cache that has it into the local cache. A registry
    that cannot be reached or refuses us is a warning (the lock is built here instead); one
    that serves altered content is an error, never silently rebuilt over."""
    from . import envs as envcache

    for ref in refs:
        rep.start("remote", f"looking up this lock's environment in {ref}")
        try:
            with tempfile.TemporaryDirectory(prefix="pull-", dir=cache_dir("tmp")) as tmp:
                pulled = pull(ref, key, Path(tmp))
                if pulled is None:
                    transfers.append(Transfer(str(ref), key, "miss"))
                    continue
                envcache.adopt(key, pulled.path, pulled.meta)
        except RemoteIntegrityError:
            transfers.append(Transfer(str(ref), key, "error", error="altered content"))
            record(transfers)
            raise
        except RemoteCacheError as exc:
            rep.note(f"remote cache {ref} not used: {exc.message}"
                     + (f" ({exc.hint})" if exc.hint else ""))
            transfers.append(Transfer(str(ref), key, "error", error=exc.message))
            continue
        transfers.append(pulled.transfer)
        rep.done("remote", f"pulled the environment for this lock from {ref}: "
                 f"{pulled.transfer.rate}", pulled.transfer.seconds)
        return True
    return False


def publish(refs: Iterable[RemoteRef], key: str, env: Path, meta: dict[str, Any],
            annotations: dict[str, str], rep: Reporter, transfers: list[Transfer]) -> None:
    """Push the entry to every ``--cache-to`` registry that lacks it; failures are warnings
    (the model was packed; only other machines miss out)."""
    for ref in refs:
        try:
            if exists(ref, key):
                transfers.append(Transfer(str(ref), key, "present"))
                continue
            rep.start("remote", f"pushing this lock's environment to {ref}")
            done = push(ref, key, env, meta, annotations)
        except (RemoteCacheError, OSError, ValueError) as exc:
            why = exc.message if isinstance(exc, RemoteCacheError) else str(exc)
            rep.note(f"could not push to {ref}: {why}: the pack succeeded, other machines will "
                     "build this lock themselves")
            transfers.append(Transfer(str(ref), key, "error", error=why))
            continue
        transfers.append(done)
        rep.done("remote", f"pushed to {ref}: {done.rate}", done.seconds)
