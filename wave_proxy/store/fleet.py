"""What replicas of a fleet share besides the metadata store: the blob store (`--blob-store`),
the leases that make fleet-wide work happen once, and whether the blob store answers.

While the blob store fails, the replica is degraded, not down: it relays blobs from upstream
uncached, says so on /readyz and /metrics, and a probe every few seconds notices the store's
return, after which it is used again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from cachetools import LRUCache

from wave_proxy import metrics
from wave_proxy.image.digest import parse_digest
from wave_proxy.store.leases import Leases
from wave_proxy.store.shared import BlobStoreUnavailable, SharedBlobStore

log = logging.getLogger(__name__)

PROBE_SECONDS = 5.0
KNOWN_BLOBS = 100_000  # sizes of blobs known to be in the store (they never change)


class Fleet:
    def __init__(self, store: SharedBlobStore, leases: Leases, redirect: bool) -> None:
        self.store = store
        self.leases = leases
        self.redirect = redirect
        self.problem: str | None = None  # why the blob store counts as down; None while up
        self._known: LRUCache[str, int] = LRUCache(KNOWN_BLOBS)
        self._background: set[asyncio.Future[bool]] = set()
        metrics.BLOB_STORE_UP.set(1)

    @property
    def healthy(self) -> bool:
        return self.problem is None

    def failed(self, exc: Exception) -> None:
        if self.problem is None:
            log.warning("blob store degraded, relaying from upstream uncached: %s", exc)
        self.problem = str(exc)
        metrics.BLOB_STORE_UP.set(0)

    def _recovered(self) -> None:
        if self.problem is not None:
            log.warning("blob store %s is back", self.store.description)
        self.problem = None
        metrics.BLOB_STORE_UP.set(1)

    async def size(self, digest: str) -> int | None:
        """The blob's size in the store; None when absent or while the store is down."""
        if (known := self._known.get(digest)) is not None:
            return known
        if not self.healthy:
            return None
        try:
            size = await self.store.size(digest)
        except BlobStoreUnavailable as exc:
            self.failed(exc)
            return None
        if size is not None:
            self._known[digest] = size
        return size

    async def publish(self, digest: str, path: Path) -> bool:
        """Put a verified local file into the store unless it is there; False on failure."""
        if await self.size(digest) is not None:
            return True
        if not self.healthy:
            return False
        try:
            await self.store.put_file(digest, path)
        except BlobStoreUnavailable as exc:
            self.failed(exc)
            return False
        self._known[digest] = path.stat().st_size
        return True

    def publish_soon(self, digest: str, path: Path) -> None:
        """Publish in the background, unless the blob is known to be in the store already."""
        if digest in self._known or not self.healthy:
            return
        task = asyncio.ensure_future(self.publish(digest, path))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def download(self, digest: str, target: Path) -> None:
        """Copy a stored blob to `target`, verified against its digest before it appears there.
        BlobStoreUnavailable when the store fails or holds something else under that key."""
        size = await self.size(digest)
        if size is None:
            raise BlobStoreUnavailable(f"{digest} is not in {self.store.description}")
        algorithm, encoded = parse_digest(digest)
        hasher = hashlib.new(algorithm)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=".download-")
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in self.store.read(digest, 0, size):
                    hasher.update(chunk)
                    await asyncio.to_thread(f.write, chunk)
            if hasher.hexdigest() != encoded:
                raise BlobStoreUnavailable(f"{self.store.description} holds corrupt {digest}")
            os.replace(name, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)

    async def probe(self) -> None:
        try:
            await self.store.ping()
        except BlobStoreUnavailable as exc:
            self.failed(exc)
        else:
            self._recovered()

    @contextlib.asynccontextmanager
    async def probing(self) -> AsyncIterator[None]:
        """Check the store every few seconds while the app runs, so recovery needs no request."""

        async def loop() -> None:
            while True:
                await self.probe()
                await asyncio.sleep(PROBE_SECONDS)

        task = asyncio.ensure_future(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
