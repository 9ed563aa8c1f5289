"""MetadataStore on Redis: the state several replicas share (`--store redis://HOST:PORT/DB`).

Documents are content-addressed and immutable, so they are written with SET NX and never expire;
values carry their TTL in Redis itself (PX), so an expired token or tag answer disappears for
every replica at the same moment. Keys are prefixed so one Redis database can hold other data.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from wave_proxy.store.leases import LeaseUnavailable
from wave_proxy.store.metadata import StoredDocument, StoreUnavailable

PREFIX = "wave-proxy:"
_SEPARATOR = b"\n"  # media types never contain a newline

# Renew and release only a lease this holder still has (its token), atomically.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class RedisMetadataStore:
    def __init__(self, client: aioredis.Redis, url: str) -> None:
        self._client = client
        self._url = url

    @classmethod
    async def open(cls, url: str) -> RedisMetadataStore:
        """Connect and check the server answers, so a wrong URL fails at start, not per pull."""
        client = aioredis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
        store = cls(client, url)
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise StoreUnavailable(f"cannot reach the Redis store {_safe(url)}: {exc}") from None
        return store

    async def get_document(self, digest: str) -> StoredDocument | None:
        raw = await self._call(self._client.get(f"{PREFIX}doc:{digest}"))
        if raw is None:
            return None
        media_type, _, body = raw.partition(_SEPARATOR)
        return StoredDocument(media_type.decode(), body)

    async def put_document(self, digest: str, document: StoredDocument) -> None:
        value = document.media_type.encode() + _SEPARATOR + document.body
        await self._call(self._client.set(f"{PREFIX}doc:{digest}", value, nx=True))

    async def get_value(self, key: str) -> str | None:
        raw = await self._call(self._client.get(f"{PREFIX}kv:{key}"))
        return None if raw is None else raw.decode()

    async def set_value(self, key: str, value: str, ttl: float | None = None) -> None:
        px = max(1, int(ttl * 1000)) if ttl is not None else None
        await self._call(self._client.set(f"{PREFIX}kv:{key}", value.encode(), px=px))

    async def count_values(self, prefix: str) -> int:
        async def count() -> int:
            keys = self._client.scan_iter(match=f"{PREFIX}kv:{prefix}*", count=1000)
            return sum([1 async for _ in keys])

        return int(await self._call(count()))

    async def purge_expired(self) -> int:
        return 0  # Redis expires values itself (PX), for every replica at once

    async def ping(self) -> None:
        await self._call(self._client.ping())

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, command: Awaitable[Any]) -> Any:
        try:
            return await command
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis store {_safe(self._url)} failed: {exc}") from None


class RedisLeases:
    """Leases (wave_proxy/store/leases.py) as Redis keys: SET NX PX, renewed by their holder."""

    def __init__(self, url: str) -> None:
        self._client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)

    async def _call(self, command: Awaitable[Any]) -> Any:
        try:
            return await command
        except (RedisError, OSError) as exc:
            raise LeaseUnavailable(f"Redis leases failed: {exc}") from None

    async def acquire(self, name: str, seconds: float) -> str | None:
        token = secrets.token_hex(16)
        done = await self._call(
            self._client.set(f"{PREFIX}lease:{name}", token, nx=True, px=int(seconds * 1000))
        )
        return token if done else None

    async def renew(self, name: str, token: str, seconds: float) -> bool:
        args = [token, int(seconds * 1000)]
        return bool(await self._call(self._renew(keys=[f"{PREFIX}lease:{name}"], args=args)))

    async def release(self, name: str, token: str) -> None:
        await self._call(self._release(keys=[f"{PREFIX}lease:{name}"], args=[token]))

    async def held(self, name: str) -> bool:
        return bool(await self._call(self._client.exists(f"{PREFIX}lease:{name}")))

    async def close(self) -> None:
        await self._client.aclose()


def _safe(url: str) -> str:
    """The URL without a password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    _, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{host}" if at else url
