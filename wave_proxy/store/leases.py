"""Leases: which replica does a piece of fleet-wide work (fill a cold blob from the upstream,
build the Fusion layers), so it is done once however many replicas want it.

A lease is a Redis key holding its holder's random token, set with NX and a short expiry and
renewed while the work runs; renewing and releasing check the token (a Lua script), so a holder
that stalled past its expiry never extends or deletes a successor's lease. A holder that dies
simply stops renewing: its lease expires and the next replica that asks takes over.
RedisLeases (wave_proxy/store/redis.py) for a fleet; `LocalLeases` is the same within one
process (one machine, and tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Protocol

log = logging.getLogger(__name__)

LEASE_SECONDS = 10.0


class LeaseUnavailable(Exception):
    """The lease service (Redis) did not answer."""


class Leases(Protocol):
    async def acquire(self, name: str, seconds: float) -> str | None:
        """A token when this caller now holds `name`; None when someone else does."""

    async def renew(self, name: str, token: str, seconds: float) -> bool:
        """Extend a held lease; False when it was lost (expired and maybe taken)."""

    async def release(self, name: str, token: str) -> None: ...

    async def held(self, name: str) -> bool:
        """Whether anyone holds `name` now."""

    async def close(self) -> None: ...


class LocalLeases:
    """Leases within one process."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}

    def _live(self, name: str) -> tuple[str, float] | None:
        entry = self._held.get(name)
        if entry is not None and entry[1] <= time.monotonic():
            del self._held[name]
            entry = None
        return entry

    async def acquire(self, name: str, seconds: float) -> str | None:
        if self._live(name) is not None:
            return None
        token = secrets.token_hex(16)
        self._held[name] = (token, time.monotonic() + seconds)
        return token

    async def renew(self, name: str, token: str, seconds: float) -> bool:
        entry = self._live(name)
        if entry is None or entry[0] != token:
            return False
        self._held[name] = (token, time.monotonic() + seconds)
        return True

    async def release(self, name: str, token: str) -> None:
        entry = self._live(name)
        if entry is not None and entry[0] == token:
            del self._held[name]

    async def held(self, name: str) -> bool:
        return self._live(name) is not None

    async def close(self) -> None:
        return None


@contextlib.asynccontextmanager
async def holding(
    leases: Leases, name: str, token: str, seconds: float = LEASE_SECONDS
) -> AsyncIterator[None]:
    """Renew a held lease every third of its lifetime while the block runs; release it after.
    A renewal failing (Redis away) is logged: the work goes on, at worst done twice."""

    async def renew() -> None:
        while True:
            await asyncio.sleep(seconds / 3)
            try:
                if not await leases.renew(name, token, seconds):
                    log.warning("lease %s was lost; another replica may repeat the work", name)
                    return
            except LeaseUnavailable as exc:
                log.warning("cannot renew lease %s: %s", name, exc)

    renewing = asyncio.ensure_future(renew())
    try:
        yield
    finally:
        renewing.cancel()
        with contextlib.suppress(LeaseUnavailable):
            await leases.release(name, token)
