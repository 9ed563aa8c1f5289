"""Periodic clean-up, so the store and the data dir do not grow forever: expired entries leave
SQLite (Redis expires them itself), and local copies of requested layers (`data:` and http) go
once no token may use them. Every replica sweeps its own data dir."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from wave_proxy.api.handlers import SERVICE
from wave_proxy.server.keys import AUGMENTER
from wave_proxy.store.metadata import MetadataStoreError

SWEEP_INTERVAL = 600.0

log = logging.getLogger("wave_proxy.app")


async def sweep(app: web.Application) -> None:
    augmenter = app[AUGMENTER]
    purged = await augmenter.store.purge_expired()
    keep = {layer.digest for layer in augmenter.layers}
    removed = await app[SERVICE].resolver.forget_unused(keep)
    if purged or removed:
        log.info(
            "sweep: %d expired store entries, %d unused layer blobs removed", purged, len(removed)
        )


@contextlib.asynccontextmanager
async def sweeping(app: web.Application, interval: float = SWEEP_INTERVAL) -> AsyncIterator[None]:
    task = asyncio.create_task(_every(app, interval))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _every(app: web.Application, interval: float) -> None:
    while True:
        try:
            await sweep(app)
        except (MetadataStoreError, OSError) as exc:
            log.warning("sweep failed, retrying in %gs: %s", interval, exc)
        await asyncio.sleep(interval)
