"""An overall deadline for talking to a registry, not only a timeout per read.

``requests``' read timeout bounds the wait for each piece of an answer: a registry that
sends one byte every 2 s never trips it, and a pack would wait forever. Here every socket a
session opens is remembered, and when the deadline of the operation passes a timer shuts
them down: the read in progress fails at once, whatever the SDK on top is doing, and the
caller says the registry was too slow. Each phase of an operation (the manifest, a blob of
a declared size) sets its own budget with :meth:`Deadline.phase`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import weakref
from typing import Any

from ..core.deadlines import REGISTRY_PHASE as SMALL
from ..core.deadlines import REGISTRY_RATE as RATE

ENV_TIMEOUT = "TRITONPACK_REGISTRY_TIMEOUT"


def budget(size: int = 0) -> float:
    """Seconds for one phase: ``SMALL`` for small answers, more for a blob of ``size`` bytes
    (TRITONPACK_REGISTRY_TIMEOUT, when set, replaces the base)."""
    try:
        base = float(os.environ.get(ENV_TIMEOUT, "") or SMALL)
    except ValueError:
        base = SMALL
    base = base if base > 0 else SMALL
    return base if size <= 0 else 2 * base + size / RATE


class Deadline:
    """Sockets to shut down when the current phase runs out of time."""

    def __init__(self) -> None:
        self._socks: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self.expired = False
        self.seconds = 0.0
        self.what = "talking to it"

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._socks.add(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def phase(self, seconds: float, what: str) -> None:
        """From now on, ``seconds`` at most for ``what`` (the previous phase's timer is
        dropped)."""
        self.cancel()
        with self._lock:
            self.expired = False
            self.seconds = seconds
            self.what = what
            self._timer = threading.Timer(seconds, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            socks = list(self._socks)
        for sock in socks:
            _shut(sock)

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()

    def mount(self, session: Any) -> None:
        """Route ``session``'s connections through sockets this deadline watches."""
        adapter = _adapter(self)
        session.mount("http://", adapter)
        session.mount("https://", adapter)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _adapter(deadline: Deadline) -> Any:
    """A requests adapter whose pools open sockets ``deadline`` watches (requests and urllib3
    come with the oras SDK, the remote extra: imported only when a registry is used)."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Conn(HTTPConnection):
        def _new_conn(self) -> socket.socket:  # before TLS: a slow handshake is bounded too
            sock = super()._new_conn()
            deadline.watch(sock)
            return sock

    class SConn(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            deadline.watch(sock)
            return sock

    class Pool(HTTPConnectionPool):
        ConnectionCls = Conn

    class SPool(HTTPSConnectionPool):
        ConnectionCls = SConn

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": SPool}

    return Adapter(max_retries=0)
