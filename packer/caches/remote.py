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

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import socket
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..archive.writer import read_stamp
from ..core.atomic import atomic_write_bytes
from ..core.cachehome import cache_dir, cache_root
from ..core.debris import sweep, tagged
from ..core.errors import PackError, RemoteCacheError, RemoteIntegrityError
from ..core.integrity import manifest as file_manifest
from ..core.progress import Reporter
from ..core.redact import redact
from ..core.reproducible import anonymous
from ..core.storefile import open_entry
from ..core.version import install_hint
from ..envcheck.inspect import enforce, first_unsafe_entry, inspect_env
from ..resolve.target import Target
from . import meta as entrymeta
from .deadline import ENV_TIMEOUT, Deadline, budget
from .meta import EntryMeta, MetaError

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
MANIFEST_LIMIT = 4 << 20  # bytes: what registries accept for a manifest
BLOB_LIMIT = 1 << 40  # bytes a layer may declare
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
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

def _ping(ref: RemoteRef, deadline: Deadline) -> str:
    """``GET /v2/`` with a short timeout: the auth scheme the registry asks for ('' for none).
    An unreachable registry fails here in seconds, not after the SDK's minutes of retries."""
    import requests  # the oras SDK's own HTTP library (installed with it)

    try:
        with socket.create_connection((ref.host.strip("[]"), ref.port), timeout=CONNECT_TIMEOUT):
            pass
        scheme = "http" if ref.insecure else "https"
        with requests.Session() as session:
            deadline.mount(session)
            resp = session.get(f"{scheme}://{ref.registry}/v2/", timeout=(CONNECT_TIMEOUT, 30),
                               stream=True)
            resp.close()
    except (OSError, requests.RequestException) as exc:
        if deadline.expired:
            raise _too_slow(ref, deadline) from exc
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
    return _BY_CLASS.get(type(exc).__name__, type(exc).__name__)


# requests' exceptions whose text is no sentence (a redirect to file://, a realm elsewhere)
_BY_CLASS = {"InvalidSchema": "it sent tritonpack to a URL that is not http or https",
             "MissingSchema": "it sent tritonpack to a URL without a scheme",
             "InvalidURL": "it sent tritonpack to a malformed URL",
             "TooManyRedirects": "it redirected in a loop",
             "ChunkedEncodingError": "its answer was cut off",
             "ContentDecodingError": "its answer could not be decompressed"}


def _too_slow(ref: RemoteRef, deadline: Deadline) -> RemoteCacheError:
    return RemoteCacheError(f"registry {ref.registry} was too slow: {deadline.what} took more "
                            f"than {deadline.seconds:.0f} s", hint="the registry or the network "
                            f"is slow; {ENV_TIMEOUT} sets the budget in seconds")


@contextlib.contextmanager
def _bounded(ref: RemoteRef, deadline: Deadline) -> Iterator[None]:
    """Any failure of the network or of the SDK is one RemoteCacheError (a miss and a
    warning), said as too slow when the deadline cut it off."""
    import requests

    try:
        yield
    except RemoteCacheError:
        raise
    except (requests.RequestException, OSError, ValueError, KeyError, TypeError,
            AttributeError) as exc:
        if deadline.expired:
            raise _too_slow(ref, deadline) from exc
        raise RemoteCacheError(f"registry {ref.registry}: {deadline.what} failed: "
                               f"{_why(exc)}") from exc
    finally:
        deadline.cancel()


def _insecure_hint(ref: RemoteRef, exc: BaseException) -> str | None:
    if not ref.insecure and "WRONG_VERSION_NUMBER" in str(exc):
        return (f"a plain-HTTP registry: pass --insecure-registry {ref.registry} "
                "(only on a network you trust)")
    return None


def _docker_config() -> str | None:
    base = os.environ.get("DOCKER_CONFIG")
    path = Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"
    return str(path) if path.is_file() else None


def _client(ref: RemoteRef, deadline: Deadline) -> Any:
    try:
        from oras.provider import Registry
    except ImportError as exc:
        raise RemoteCacheError("remote caches need the oras SDK, which is not installed",
                               hint=install_hint("remote")) from exc

    scheme = _ping(ref, deadline)

    class _Bounded(Registry):  # type: ignore[misc]
        """The SDK's request path without its minutes-long retry loop."""

        def do_request(self, *args: Any, **kwargs: Any) -> Any:
            return Registry.do_request.__wrapped__(self, *args, **kwargs)

    client = _Bounded(hostname=ref.registry, insecure=ref.insecure,
                      auth_backend="basic" if scheme == "basic" else "token")
    deadline.mount(client.session)
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
    meta: EntryMeta
    transfer: Transfer


@dataclass(frozen=True)
class Expect:
    """What a pulled environment must be to be used: packed from this lock (the hash in its
    stamp), and passing the gate a local build's output passes, for this target."""

    target: Target
    lock_hash: str
    allow_incompatible: bool = False


@dataclass(frozen=True)
class Layer:
    media: str
    digest: str
    size: int


def _layers(manifest: Any, where: str) -> tuple[dict[str, Layer], dict[str, Any]]:
    """The layers of a manifest by media type, and its annotations; a manifest of any other
    shape is not a tritonpack environment (a miss, said once)."""
    def odd(why: str) -> RemoteCacheError:
        return RemoteCacheError(f"{where}: the registry's manifest {why}")

    if not isinstance(manifest, dict):
        raise odd("is not a JSON object")
    config = manifest.get("config")
    media = config.get("mediaType") if isinstance(config, dict) else None
    if media != CONFIG_MEDIA:
        raise RemoteCacheError(f"{where} is not a tritonpack environment "
                               f"(config {str(media)[:80]!r})")
    items = manifest.get("layers")
    if not isinstance(items, list) or not 0 < len(items) <= 16:
        raise odd("has no list of layers")
    layers: dict[str, Layer] = {}
    for item in items:
        if not isinstance(item, dict):
            raise odd("lists a layer that is not an object")
        kind, digest, size = item.get("mediaType"), item.get("digest"), item.get("size")
        if not (isinstance(kind, str) and isinstance(digest, str) and _DIGEST.fullmatch(digest)):
            raise odd("lists a layer without a media type and a sha256 digest")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= BLOB_LIMIT:
            raise odd(f"lists a layer of size {str(size)[:40]}")
        layers[kind] = Layer(kind, digest, size)
    annotations = manifest.get("annotations", {})
    return layers, annotations if isinstance(annotations, dict) else {}


def _read_body(resp: Any, limit: int, what: str, where: str) -> bytes:
    """An answer's body, refused beyond ``limit`` bytes (its declared length first)."""
    declared = str(resp.headers.get("Content-Length", ""))
    if declared.isdigit() and int(declared) > limit:
        raise RemoteCacheError(f"{where}: the registry's {what} is {int(declared)} bytes, more "
                               f"than the {limit} a tritonpack {what} may be")
    body = bytearray()
    for chunk in resp.iter_content(chunk_size=1 << 16):
        body += chunk
        if len(body) > limit:
            raise RemoteCacheError(f"{where}: the registry's {what} runs past {limit} bytes, "
                                   f"more than a tritonpack {what} may be")
    return bytes(body)


def _json(raw: bytes, what: str, where: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        why = "nested too deeply" if isinstance(exc, RecursionError) else "not JSON"
        raise RemoteCacheError(f"{where}: the registry's {what} is {why}") from exc


def pull(ref: RemoteRef, key: str, work: Path, entries: bool = True) -> Pulled | None:
    """The environment for ``key`` from ``ref`` into ``work``, verified; None when absent.
    Every phase has a deadline and every read a bound (the size the manifest declares).
    ``entries=False`` leaves an archive's entries to ``vet``, which reads them all once
    anyway (unpacking an archive is most of a pull's time); a directory env is always
    judged here, before it is extracted."""
    deadline = Deadline()
    with _bounded(ref, deadline):
        return _pull(ref, key, work, deadline, entries)


def _pull(ref: RemoteRef, key: str, work: Path, deadline: Deadline,
          entries: bool = True) -> Pulled | None:
    where = f"{ref}:{key[:12]}"
    deadline.phase(budget(), "reading the manifest")
    client = _client(ref, deadline)
    container = client.get_container(ref.target(key))
    resp = client.do_request(f"{client.prefix}://{container.manifest_url()}", "GET",
                             headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
                             stream=True)
    if resp.status_code == 404:
        return None
    _check(resp, ref, "reading the manifest")
    layers, annotations = _layers(_json(_read_body(resp, MANIFEST_LIMIT, "manifest", where),
                                        "manifest", where), where)
    env_layer = layers.get(ARCHIVE_MEDIA) or layers.get(DIR_MEDIA)
    meta_layer = layers.get(META_MEDIA)
    if env_layer is None or meta_layer is None:
        raise RemoteCacheError(f"{where} lacks its environment or its metadata layer")
    if meta_layer.size > entrymeta.LIMIT:
        raise RemoteCacheError(f"{where}: the registry's metadata is {meta_layer.size} bytes, "
                               f"more than the {entrymeta.LIMIT} tritonpack's may be")
    t0 = time.monotonic()
    deadline.phase(budget(meta_layer.size), "downloading the metadata")
    raw = _download(client, container, meta_layer, work / "meta.json", ref).read_bytes()
    try:
        meta = entrymeta.read(raw)
    except MetaError as exc:
        raise RemoteCacheError(f"{where}: the registry's metadata is not tritonpack's "
                               f"({exc})") from exc
    want = "dir" if env_layer.media == DIR_MEDIA else "tar.gz"
    if meta.format != want:
        raise RemoteCacheError(f"{where}: the metadata says {meta.format}, the layer is {want}")
    deadline.phase(budget(env_layer.size), "downloading the environment")
    blob = _download(client, container, env_layer, work / "blob", ref)
    deadline.cancel()
    if want == "tar.gz":
        path = _vet_archive(blob, meta, env_layer, annotations, where, entries)
    else:
        path = _vet_dir(blob, meta, work / "env", where)
    size = env_layer.size + meta_layer.size
    return Pulled(path, meta, Transfer(str(ref), key, "hit", size, time.monotonic() - t0))


def _vet_archive(blob: Path, meta: EntryMeta, layer: Layer, annotations: dict[str, Any],
                 where: str, entries: bool = True) -> Path:
    recorded = {meta.sha256, str(annotations.get(f"{ANNOTATION}.archive-sha256") or meta.sha256)}
    actual = layer.digest.removeprefix("sha256:")
    if recorded != {actual}:
        raise RemoteIntegrityError(
            f"{where}: the archive's sha256 ({actual[:12]}) differs from the one "
            "recorded with it: refused", hint="the entry was altered; nothing was used")
    path = blob.with_name("env.tar.gz")
    blob.rename(path)
    if entries and (why := first_unsafe_entry(path)) is not None:  # whoever can push can
        raise _unsafe_entry(where, why)  # sign anything
    return path


def _unsafe_entry(where: str, why: str) -> RemoteIntegrityError:
    return RemoteIntegrityError(
        f"{where}: the pulled environment holds an unsafe entry ({why}): refused",
        hint="the registry holds an environment tritonpack would never pack; nothing was used")


def _vet_dir(blob: Path, meta: EntryMeta, path: Path, where: str) -> Path:
    """A --format dir env travels as a plain tar: judged entry by entry like an archive
    (``..``, absolute names, links leaving it), extracted with the ``data`` filter, then
    compared with the manifest recorded with it."""
    why = first_unsafe_entry(blob, mode="r:")
    if why is not None and why.startswith("an unreadable archive"):
        raise RemoteCacheError(f"{where}: the registry's environment layer is not a tar "
                               "archive")
    if why is not None:
        raise _unsafe_entry(where, why)
    try:
        with tarfile.open(blob, "r:") as tar:
            tar.extractall(path, filter="data")  # no absolute paths, no escape through links
    except (tarfile.TarError, OSError) as exc:
        raise RemoteIntegrityError(f"{where}: the pulled environment cannot be unpacked "
                                   f"safely ({exc}): refused",
                                   hint="nothing was used") from exc
    blob.unlink()
    if file_manifest(path) != dict(meta.manifest):
        raise RemoteIntegrityError(
            f"{where}: the environment's files differ from the manifest recorded "
            "with it: refused", hint="the entry was altered; nothing was used")
    return path


def vet(ref: RemoteRef, key: str, pulled: Pulled, expect: Expect, rep: Reporter) -> Pulled:
    """The same gate a local build's output passes (``inspect_env`` and ``enforce``), and
    this lock's hash in its stamp: an environment holding an unsafe entry, one for another
    lock, without bin/python3 or with a start-up hook no package owns is refused, never
    used. Its entries are read once, for all of these (``pull(entries=False)``)."""
    where = f"{ref}:{key[:12]}"
    report = inspect_env(pulled.path, expect.target)
    if report.unsafe:
        raise _unsafe_entry(where, report.unsafe[0])
    stamp = read_stamp(pulled.path) or {}
    if stamp.get("lock") != expect.lock_hash:
        raise RemoteIntegrityError(
            f"{where}: the pulled environment was not packed from this lock (its stamp says "
            f"{str(stamp.get('lock'))[:19]!r}): refused",
            hint="the registry holds an entry altered or made for another lock; nothing was "
            "used")
    findings = tuple((f.level, f.message) for f in report.findings)
    try:
        enforce(findings, expect.target, expect.allow_incompatible, rep)
    except PackError as exc:
        raise RemoteIntegrityError(
            f"{where}: the pulled environment fails the checks a local build passes "
            f"({exc.detail.splitlines()[0] if exc.detail else exc.message}): refused",
            hint="the registry holds an environment tritonpack would not pack; nothing was "
            "used") from exc
    return dataclasses.replace(pulled, meta=dataclasses.replace(pulled.meta,
                                                                findings=findings))


def _download(client: Any, container: Any, layer: Layer, dest: Path, ref: RemoteRef) -> Path:
    """Stream one blob to ``dest``, hashing it, never past the size the manifest declares; a
    digest or size mismatch is refused."""
    h = hashlib.sha256()
    size = 0
    with client.get_blob(container, layer.digest, stream=True) as resp:
        _check(resp, ref, f"downloading {layer.digest[:19]}")
        with dest.open("wb") as out:
            for chunk in resp.iter_content(chunk_size=1 << 20):
                size += len(chunk)
                if size > layer.size:
                    break
                h.update(chunk)
                out.write(chunk)
    if h.hexdigest() != layer.digest.removeprefix("sha256:") or size != layer.size:
        dest.unlink(missing_ok=True)
        raise RemoteIntegrityError(
            f"{ref}: blob {layer.digest[:19]} does not match its digest (got "
            f"sha256:{h.hexdigest()[:12]}, {size} bytes): refused",
            hint="the registry holds altered content; nothing was used")
    return dest


# -- push ------------------------------------------------------------------------------------

def exists(ref: RemoteRef, key: str) -> bool:
    deadline = Deadline()
    with _bounded(ref, deadline):
        deadline.phase(budget(), "looking up the manifest")
        client = _client(ref, deadline)
        container = client.get_container(ref.target(key))
        resp = client.do_request(f"{client.prefix}://{container.manifest_url()}", "HEAD",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        if resp.status_code == 404:
            return False
        _check(resp, ref, "looking up the manifest")
        return True


def push(ref: RemoteRef, key: str, env: Path, meta: EntryMeta,
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


def _push_once(ref: RemoteRef, key: str, env: Path, meta: EntryMeta,
               annotations: dict[str, str]) -> Transfer:
    deadline = Deadline()
    with _bounded(ref, deadline):
        deadline.phase(budget(), "connecting")
        client = _client(ref, deadline)
        t0 = time.monotonic()
        sweep(cache_dir("tmp"), ["push-", "pull-"])  # left by a killed run
        with tempfile.TemporaryDirectory(prefix=tagged("push-"), dir=cache_dir("tmp")) as tmp:
            work = Path(tmp)
            (work / "meta.json").write_bytes(meta.render(created=False))  # same lock, same bytes
            (work / "config.json").write_text(json.dumps({"key": key}), encoding="utf-8")
            if env.is_dir():
                blob, media = work / "env.tar", DIR_MEDIA
                _tar_dir(env, blob)
            else:
                blob, media = work / "env.tar.gz", ARCHIVE_MEDIA
                os.link(env, blob) if _same_fs(env, work) else shutil.copy2(env, blob)
            size = blob.stat().st_size
            deadline.phase(budget(size), "pushing the environment")
            resp = client.push(
                target=ref.target(key),
                files=[f"{blob}:{media}", f"{work / 'meta.json'}:{META_MEDIA}"],
                manifest_config=f"{work / 'config.json'}:{CONFIG_MEDIA}",
                manifest_annotations={f"{ANNOTATION}.{k}": v for k, v in
                                      {**annotations, "archive-sha256": meta.sha256,
                                       "format": meta.format}.items()},
                disable_path_validation=True, quiet=True)
            _check(resp, ref, "pushing the manifest")
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
          transfers: list[Transfer], expect: Expect | None = None) -> bool:
    """Pull ``key`` from the first remote cache that has it into the local cache. A registry
    that cannot be reached, refuses us or answers what tritonpack never pushes is a warning
    (the lock is built here instead); one that serves altered content, or an environment
    that fails ``expect`` (``vet``), is an error, never silently rebuilt over."""
    from . import envs as envcache

    sweep(cache_dir("tmp"), ["pull-", "push-"])  # what a killed pull or push left
    for ref in refs:
        rep.start("remote", f"looking up this lock's environment in {ref}")
        try:
            with tempfile.TemporaryDirectory(prefix=tagged("pull-"), dir=cache_dir("tmp")) as tmp:
                pulled = pull(ref, key, Path(tmp), entries=expect is None)
                if pulled is None:
                    transfers.append(Transfer(str(ref), key, "miss"))
                    continue
                if expect is not None:
                    pulled = vet(ref, key, pulled, expect, rep)
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


def publish(refs: Iterable[RemoteRef], key: str, env: Path, meta: EntryMeta,
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
