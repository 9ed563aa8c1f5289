"""Find cached blobs whose bytes no longer match their digest, drop them, let a pull refill them.

A blob is verified before the cache publishes it, but the disk may change it later (a fault, a
full disk mid-rewrite, a hand edit); served as is, docker fails "filesystem layer verification
failed" on every pull, forever. So every entry is re-hashed in the background after start and
then on a schedule, and a blob that was just served is re-hashed soon after (at most once per
`recheck_after` seconds each): a client that rejected it finds it refilled from upstream when it
retries. Hashing runs in worker threads, one blob at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

from wave_proxy import metrics
from wave_proxy.image.digest import parse_digest
from wave_proxy.store.blobcache import BlobCache
from wave_proxy.store.blobs import read_chunks

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 24 * 3600.0
RECHECK_AFTER = 3600.0


def digest_matches(path: Path, digest: str) -> bool:
    """Whether the file's content hashes to `digest` (blocks: run in a thread)."""
    algorithm, encoded = parse_digest(digest)
    hasher = hashlib.new(algorithm)
    with path.open("rb") as f:
        for chunk in read_chunks(f):
            hasher.update(chunk)
    return hasher.hexdigest() == encoded


class CacheVerifier:
    def __init__(self, cache: BlobCache, recheck_after: float = RECHECK_AFTER) -> None:
        self.cache = cache
        self.recheck_after = recheck_after
        self._checked: dict[str, float] = {}  # digest -> when it was last hashed
        self._lock = asyncio.Lock()  # one blob hashed at a time

    async def check(self, digest: str) -> bool:
        """Re-hash one cached blob; drop it when it does not match. False when dropped."""
        async with self._lock:
            self._checked[digest] = time.monotonic()
            hit = self.cache.lookup(digest, touch=False)
            if hit is None:
                return True
            try:
                good = await asyncio.to_thread(digest_matches, hit[0], digest)
            except OSError as exc:
                log.warning("cannot read cached blob %s (%s): dropping it", digest, exc)
                good = False
            if not good:
                log.warning("cached blob %s does not match its digest: dropped", digest)
                metrics.BLOB_CACHE_CORRUPT.inc()
                self.cache.drop(digest)
            return good

    def recheck_soon(self, digest: str) -> None:
        """After serving a cached blob: hash it again in the background, unless done lately."""
        last = self._checked.get(digest)
        if last is not None and time.monotonic() - last < self.recheck_after:
            return
        self._checked[digest] = time.monotonic()
        self.cache.track(asyncio.ensure_future(self.check(digest)))

    async def sweep(self) -> None:
        for digest in self.cache.digests():
            await self.check(digest)

    @contextlib.asynccontextmanager
    async def running(self, interval: float = SWEEP_INTERVAL) -> AsyncIterator[None]:
        """Sweep now (the cache's `settled()` waits for it), then every `interval` seconds."""
        first = asyncio.ensure_future(self.sweep())
        self.cache.track(first)
        periodic = asyncio.ensure_future(self._periodic(first, interval))
        try:
            yield
        finally:
            periodic.cancel()
            first.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await periodic

    async def _periodic(self, first: asyncio.Future[None], interval: float) -> None:
        with contextlib.suppress(Exception):
            await first
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("cache verification sweep failed")
