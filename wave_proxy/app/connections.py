"""Bounds on client connections: an idle timeout and a maximum number served at once.

Without them, idle sockets (20,000 of them in a test) exhaust the process's file descriptors.
A connection over the bound is answered 503 and closed at once, and that is logged at most once
a minute, so a flood does not also flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from aiohttp import web

log = logging.getLogger("wave_proxy.app")

_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n"
    b"Content-Length: 0\r\n\r\n"
)
LOG_EVERY = 60.0


def default_max_connections() -> int:
    """Half the open-files limit: the rest is for upstream connections, cache and store files."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(64, soft // 2) if soft != resource.RLIM_INFINITY else 32768


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(_REFUSAL)
        transport.close()


class _BoundedServer:
    """aiohttp's protocol factory, handing out a refusal once `limit` connections are open."""

    def __init__(self, inner: web.Server, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self._refused = 0
        self._logged = -LOG_EVERY

    def __call__(self) -> asyncio.Protocol:
        if len(self._inner.connections) < self._limit:
            return self._inner()
        self._refused += 1
        now = time.monotonic()
        if now - self._logged >= LOG_EVERY:
            log.warning(
                "connection limit (%d) reached: %d connection(s) refused since the last report",
                self._limit,
                self._refused,
            )
            self._logged, self._refused = now, 0
        return _Refused()

    def __getattr__(self, name: str) -> Any:  # shutdown, connections, ...: aiohttp's own
        return getattr(self._inner, name)


class BoundedRunner(web.AppRunner):
    """An AppRunner whose listeners serve at most `max_connections` connections at once, each
    closed after `idle_timeout` seconds without a request."""

    def __init__(
        self, app: web.Application, *, idle_timeout: float, max_connections: int, **kwargs: Any
    ) -> None:
        super().__init__(app, keepalive_timeout=idle_timeout, **kwargs)
        self._max_connections = max_connections or default_max_connections()

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _BoundedServer(server, self._max_connections)  # type: ignore[return-value]
