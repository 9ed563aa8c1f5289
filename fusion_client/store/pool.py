"""Keep-alive HTTP connection pools, one per endpoint (scheme, host, port), optionally through
an HTTP proxy (a CONNECT tunnel per connection).

Bounded: at most `max_connections` connections per endpoint exist at once (callers beyond that
wait), and idle ones are reused most-recently-used first and dropped after IDLE_TIMEOUT, before
the store would close them under us. A connection that saw any error is closed, never pooled.
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys
import threading
import time
from collections.abc import Callable

from .endpoints import Endpoint, Proxy
from .errors import StoreUnavailable

IDLE_TIMEOUT = 20.0


class ConnectionPool:
    def __init__(
        self,
        endpoint: Endpoint,
        *,
        max_connections: int,
        timeout: float,
        connect_timeout: float,
        ssl_context: ssl.SSLContext | None,
        proxy: Proxy | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._proxy = proxy
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._ssl = ssl_context
        self._slots = threading.BoundedSemaphore(max_connections)
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []
        self._lock = threading.Lock()

    def acquire(self) -> tuple[http.client.HTTPConnection, bool]:
        """A connection and whether it is reused (reused ones may have been closed by the peer
        since; the caller retries such a failure at once on a fresh connection)."""
        self._slots.acquire()
        try:
            now = time.monotonic()
            with self._lock:
                while self._idle:
                    conn, since = self._idle.pop()
                    if now - since < IDLE_TIMEOUT:
                        return conn, True
                    conn.close()
            conn = self._new_connection()
            try:
                # A short connect timeout, so an unreachable endpoint fails fast (and is
                # retried), then the longer read timeout for waiting on S3 itself.
                conn.timeout = self._connect_timeout
                conn.connect()
                assert conn.sock is not None
                conn.sock.settimeout(self._timeout)
            finally:
                conn.timeout = self._timeout
            return conn, False
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: http.client.HTTPConnection, *, reusable: bool) -> None:
        try:
            if reusable and conn.sock is not None:
                with self._lock:
                    self._idle.append((conn, time.monotonic()))
            else:
                conn.close()
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def _new_connection(self) -> http.client.HTTPConnection:
        ep, proxy = self.endpoint, self._proxy
        host, port = (proxy.host, proxy.port) if proxy else (ep.host, ep.port)
        conn: http.client.HTTPConnection
        if ep.scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=self._timeout, context=self._ssl)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self._timeout)
        if proxy:
            conn.set_tunnel(ep.host, ep.port, headers=dict(proxy.headers))
        return conn


class PoolManager:
    def __init__(
        self,
        *,
        max_connections: int,
        timeout: float,
        connect_timeout: float,
        ca_bundle: str | None,
        proxy_for: Callable[[Endpoint], Proxy | None] = lambda endpoint: None,
    ) -> None:
        self._proxy_for = proxy_for
        self._max = max_connections
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._ca_bundle = ca_bundle
        self._ssl: ssl.SSLContext | None = None  # built on first https use
        self._pools: dict[Endpoint, ConnectionPool] = {}
        self._lock = threading.Lock()

    def pool(self, endpoint: Endpoint) -> ConnectionPool:
        pool = self._pools.get(endpoint)
        if pool is None:
            with self._lock:
                pool = self._pools.get(endpoint)
                if pool is None:
                    if endpoint.scheme == "https" and self._ssl is None:
                        self._ssl = self._ssl_context()
                    pool = ConnectionPool(
                        endpoint,
                        max_connections=self._max,
                        timeout=self._timeout,
                        connect_timeout=self._connect_timeout,
                        ssl_context=self._ssl,
                        proxy=self._proxy_for(endpoint),
                    )
                    self._pools[endpoint] = pool
        return pool

    def _ssl_context(self) -> ssl.SSLContext:
        cafile = self._ca_bundle or _bundled_ca_when_image_has_none()
        try:
            return ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise StoreUnavailable(f"cannot load CA bundle {cafile}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            pool.close()


def _bundled_ca_when_image_has_none() -> str | None:
    """Busybox and scratch images bring no CA certificates; the Fusion layer ships Mozilla's
    next to its interpreter (<sys.prefix>/etc/ssl/certs), used only when the system has none."""
    paths = ssl.get_default_verify_paths()
    if (paths.cafile and os.path.exists(paths.cafile)) or (
        paths.capath and os.path.isdir(paths.capath) and os.listdir(paths.capath)
    ):
        return None
    bundled = os.path.join(sys.prefix, "etc", "ssl", "certs", "ca-certificates.crt")
    return bundled if os.path.exists(bundled) else None
