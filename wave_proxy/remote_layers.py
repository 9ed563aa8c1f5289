"""Fetch containerConfig layers from http(s) URLs without becoming an SSRF tool.

A client of the Wave API names a URL and the proxy fetches it, so by default only public
addresses are contacted: every address a host name resolves to is checked, and connections go
only to checked addresses (no second DNS lookup an attacker could rebind). Redirects are followed
by hand, each hop checked the same way. Loopback, link-local (cloud instance metadata), private,
shared, multicast and reserved ranges are refused unless the operator allows them
(--allow-private-layer-hosts). Bodies are streamed to a temporary file with a hard size limit.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

MAX_REDIRECTS = 5
CHUNK = 1 << 20
REDIRECTS = (301, 302, 303, 307, 308)


class RemoteLayerError(ValueError):
    """A layer URL that cannot or may not be fetched; the message says why."""


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known prefix: the IPv4 address is the tail
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215, operator-chosen mappings
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated `::a.b.c.d`


def refused_address(address: str) -> bool:
    """Whether connecting to `address` could reach something private to the proxy's network.

    IPv6 forms that carry an IPv4 address (mapped, NAT64, 6to4, IPv4-compatible, Teredo) are
    judged by that IPv4 address too: a gateway would forward to it."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if not ip.is_global or ip.is_multicast:
        return True
    if isinstance(ip, ipaddress.IPv4Address):
        return False
    if ip in _LOCAL_NAT64:
        return True
    return any(refused_address(str(v4)) for v4 in _embedded_ipv4(ip))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found = [ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None]
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [v4 for v4 in found if v4 is not None]


class PublicOnlyResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, minus refused addresses."""

    def __init__(self, refused: Callable[[str], bool] = refused_address) -> None:
        self._inner = DefaultResolver()
        self._refused = refused

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if not self._refused(r["host"])]
        if not allowed:
            addresses = ", ".join(sorted({r["host"] for r in results}))
            raise RemoteLayerError(
                f"layer host {host} resolves to {addresses}: loopback, link-local and private "
                "addresses are refused (an operator may allow them with "
                "--allow-private-layer-hosts)"
            )
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class RemoteLayerFetcher:
    def __init__(
        self,
        allow_private: bool = False,
        timeout: float = 60.0,
        refused: Callable[[str], bool] = refused_address,
    ) -> None:
        """`refused` decides which addresses are off limits (tests narrow it)."""
        self.allow_private = allow_private
        self._refused = refused
        resolver = None if allow_private else PublicOnlyResolver(refused)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=resolver, limit=32),
            timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout),
            auto_decompress=False,
        )

    async def close(self) -> None:
        await self._session.close()

    @contextlib.asynccontextmanager
    async def download(self, url: str, limit: int, tmp_dir: Path) -> AsyncIterator[Path]:
        """A temporary file holding the body of `url` (at most `limit` bytes), removed after."""
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="remote-layer-")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                async with self._open(url) as response:
                    declared = response.content_length
                    if declared is not None and declared > limit:
                        raise RemoteLayerError(
                            f"layer {url} is {declared} bytes, more than its gzipSize {limit}"
                        )
                    received = 0
                    async for chunk in response.content.iter_chunked(CHUNK):
                        received += len(chunk)
                        if received > limit:
                            raise RemoteLayerError(f"layer {url} is larger than its gzipSize")
                        out.write(chunk)
            yield path
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    @contextlib.asynccontextmanager
    async def _open(self, url: str) -> AsyncIterator[aiohttp.ClientResponse]:
        for _ in range(MAX_REDIRECTS + 1):
            self._check_url(url)
            try:
                response = await self._session.get(url, allow_redirects=False)
            except RemoteLayerError:
                raise
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise RemoteLayerError(f"cannot fetch layer {url}: {_describe(exc)}") from None
            if response.status in REDIRECTS and "Location" in response.headers:
                response.release()
                url = urljoin(url, response.headers["Location"])
                continue
            try:
                if response.status != 200:
                    raise RemoteLayerError(f"cannot fetch layer {url}: HTTP {response.status}")
                yield response
            finally:
                response.release()
            return
        raise RemoteLayerError(f"layer {url}: more than {MAX_REDIRECTS} redirects")

    def _check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteLayerError(f"layer location {url[:200]!r} is not an http(s) URL")
        if parts.username or parts.password:
            raise RemoteLayerError("layer URLs must not carry credentials")
        if self.allow_private:
            return
        try:
            ipaddress.ip_address(parts.hostname)
        except ValueError:
            return  # a host name: the resolver checks every address it resolves to
        if self._refused(parts.hostname):
            raise RemoteLayerError(
                f"layer address {parts.hostname} is loopback, link-local or private: refused "
                "(an operator may allow it with --allow-private-layer-hosts)"
            )


def _describe(exc: Any) -> str:
    return str(exc) or exc.__class__.__name__
