"""A bounded on-disk cache of upstream blobs, filled while they stream through.

Warm pulls are then served from local disk with sendfile (no upstream round trip, no bytes
through Python) and keep working while the upstream is down. Entries are verified against their
digest before they are published, and the least recently used go first when the cache is full.
Only complete, plain GETs fill it. While a blob is being filled, other requests for it follow
the fill (read the growing file) instead of opening their own upstream download, so a cluster
pulling one new image at once costs the upstream one download per blob.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from wave_proxy.image.digest import parse_digest
from wave_proxy.store.blobs import read_chunks

log = logging.getLogger(__name__)

FOLLOW_CHUNK = 1 << 20


class FillBrokenOff(Exception):
    """The fill a request was following stopped before the blob was complete."""


class BlobCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._filling: dict[str, CacheWriter] = {}
        self._background: set[asyncio.Future[Any]] = set()
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        for stale in (root / "tmp").iterdir():  # left by a crash mid-write
            stale.unlink(missing_ok=True)
        self._used = sum(path.stat().st_size for path in self._entries())
        self._evict()  # the bound holds across restarts, also when it was lowered

    @property
    def used_bytes(self) -> int:
        return self._used

    def _entries(self) -> list[Path]:
        return [p for p in self.root.glob("sha*/*") if p.is_file()]

    def path(self, digest: str) -> Path:
        algorithm, encoded = parse_digest(digest)
        return self.root / algorithm / encoded

    def lookup(self, digest: str, touch: bool = True) -> tuple[Path, int] | None:
        """The cached file and its size, marking it recently used; None on a miss."""
        path = self.path(digest)
        try:
            size = path.stat().st_size
            if touch:
                os.utime(path)
        except FileNotFoundError:
            return None
        return path, size

    def digests(self) -> list[str]:
        """The digests of the published entries."""
        return [f"{p.parent.name}:{p.name}" for p in self._entries()]

    def drop(self, digest: str) -> None:
        """Remove an entry (one found damaged): the next request refills it from upstream."""
        path = self.path(digest)
        with self._lock:
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                return
            self._used -= size

    def filling(self, digest: str) -> CacheWriter | None:
        """The fill in progress for this blob, to follow; None when there is none."""
        with self._lock:
            return self._filling.get(digest)

    def writer(self, digest: str, size: int) -> CacheWriter | None:
        """A writer to fill the cache with this blob, None when it should not be cached now."""
        if size > self.max_bytes or self.path(digest).exists():
            return None
        with self._lock:
            if digest in self._filling:
                return None
            fd, name = tempfile.mkstemp(dir=self.root / "tmp")
            writer = self._filling[digest] = CacheWriter(self, digest, size, fd, Path(name))
        return writer

    def commit_soon(self, writer: CacheWriter) -> asyncio.Future[bool]:
        """Verify and publish in a worker thread, without holding up the client's connection."""
        writer.finish()
        committed = asyncio.get_running_loop().run_in_executor(None, writer.commit)
        self.track(committed)
        return committed

    def track(self, work: asyncio.Future[Any]) -> None:
        """Keep background work (fills whose client left, commits) alive until it is done."""
        self._background.add(work)
        work.add_done_callback(self._background.discard)

    async def settled(self) -> None:
        """Wait for background fills and commits (at shutdown, and in tests)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _done(self, digest: str) -> None:
        with self._lock:
            self._filling.pop(digest, None)

    def _publish(self, digest: str, tmp: Path, size: int) -> None:
        target = self.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
        with self._lock:
            self._used += size
        self._evict()

    def _evict(self) -> None:
        with self._lock:
            if self._used <= self.max_bytes:
                return
            entries = sorted(self._entries(), key=lambda p: p.stat().st_mtime)
            for path in entries:
                if self._used <= self.max_bytes:
                    break
                size = path.stat().st_size
                path.unlink(missing_ok=True)
                self._used -= size


class CacheWriter:
    """One blob being collected as it streams. Made, written and followed on the event loop;
    `commit` runs in a worker thread to verify and publish it."""

    def __init__(self, cache: BlobCache, digest: str, size: int, fd: int, tmp: Path) -> None:
        self._cache = cache
        self._digest = digest
        self.size = size
        self._file = os.fdopen(fd, "wb")
        self._tmp = tmp
        self._written = 0
        self._failed = False
        self._finished = False
        self._aborted = False
        self._progress = asyncio.Event()

    def write(self, chunk: bytes) -> None:
        """Write through to the page cache (followers read it at once); cheap enough for the
        event loop. Never raises: a full disk only means this blob is not cached."""
        if self._failed:
            return
        try:
            self._file.write(chunk)
            self._file.flush()
        except OSError as exc:
            log.warning("not caching %s: %s", self._digest, exc)
            self._failed = True
        self._written += len(chunk)
        self._wake()

    def finish(self) -> None:
        """The stream is complete: followers may read to the end."""
        self._finished = True
        self._wake()

    def _wake(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    async def follow(self, start: int, length: int) -> AsyncIterator[bytes]:
        """The bytes [start, start+length) as they arrive; FillBrokenOff if the fill stops."""
        try:
            f = self._tmp.open("rb")  # the descriptor outlives the rename that publishes it
        except FileNotFoundError:  # published (or dropped) just now
            try:
                f = self._cache.path(self._digest).open("rb")
            except FileNotFoundError:
                raise FillBrokenOff(f"the download of {self._digest} failed") from None
        with f:
            position, end = start, start + length
            while position < end:
                available = min(self._written, end) - position
                if available > 0 and not self._failed:
                    chunk = os.pread(f.fileno(), min(available, FOLLOW_CHUNK), position)
                    position += len(chunk)
                    yield chunk
                elif self._failed or (self._aborted and not self._finished):
                    raise FillBrokenOff(f"the download of {self._digest} broke off")
                else:
                    await self._progress.wait()

    def commit(self) -> bool:
        """fsync, check length and digest, publish. False (and nothing kept) on any mismatch."""
        try:
            if self._failed or self._written != self.size:
                return False
            os.fsync(self._file.fileno())
            self._file.close()
            if not self._matches():
                log.warning("not caching %s: content does not match its digest", self._digest)
                return False
            self._cache._publish(self._digest, self._tmp, self.size)
            return True
        except OSError as exc:
            log.warning("not caching %s: %s", self._digest, exc)
            return False
        finally:
            self._release()

    def _matches(self) -> bool:
        algorithm, encoded = parse_digest(self._digest)
        hasher = hashlib.new(algorithm)
        with self._tmp.open("rb") as f:
            for chunk in read_chunks(f):
                hasher.update(chunk)
        return hasher.hexdigest() == encoded

    def abort(self) -> None:
        """The stream broke off (on the event loop): followers are cut, nothing is kept."""
        self._aborted = True
        self._wake()
        self._release()

    def _release(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        self._tmp.unlink(missing_ok=True)
        self._cache._done(self._digest)
