"""A bounded on-disk cache of upstream blobs, filled while they stream through.

Warm pulls are then served from local disk with sendfile (no upstream round trip, no bytes
through Python) and keep working while the upstream is down. Entries are verified against their
digest before they are published, and the least recently used go first when the cache is full.
Only complete, plain GETs fill it; concurrent cold requests for one blob stream independently,
and only the first of them writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

from wave_proxy.image.digest import parse_digest
from wave_proxy.store.blobs import read_chunks

log = logging.getLogger(__name__)


class BlobCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._filling: set[str] = set()
        self._commits: set[asyncio.Future[bool]] = set()
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        for stale in (root / "tmp").iterdir():  # left by a crash mid-write
            stale.unlink(missing_ok=True)
        self._used = sum(path.stat().st_size for path in self._entries())

    def _entries(self) -> list[Path]:
        return [p for p in self.root.glob("sha*/*") if p.is_file()]

    def path(self, digest: str) -> Path:
        algorithm, encoded = parse_digest(digest)
        return self.root / algorithm / encoded

    def lookup(self, digest: str) -> tuple[Path, int] | None:
        """The cached file and its size, marking it recently used; None on a miss."""
        path = self.path(digest)
        try:
            size = path.stat().st_size
            os.utime(path)
        except FileNotFoundError:
            return None
        return path, size

    def writer(self, digest: str, size: int) -> CacheWriter | None:
        """A writer to fill the cache with this blob, None when it should not be cached now."""
        if size > self.max_bytes or self.path(digest).exists():
            return None
        with self._lock:
            if digest in self._filling:
                return None
            self._filling.add(digest)
        try:
            fd, name = tempfile.mkstemp(dir=self.root / "tmp")
        except OSError:
            self._done(digest)
            raise
        return CacheWriter(self, digest, size, fd, Path(name))

    def commit_soon(self, writer: CacheWriter) -> None:
        """Verify and publish in a worker thread, without holding up the client's connection."""
        future = asyncio.get_running_loop().run_in_executor(None, writer.commit)
        self._commits.add(future)
        future.add_done_callback(self._commits.discard)

    async def settled(self) -> None:
        """Wait for pending commits (at shutdown, and in tests)."""
        if self._commits:
            await asyncio.gather(*self._commits, return_exceptions=True)

    def _done(self, digest: str) -> None:
        with self._lock:
            self._filling.discard(digest)

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
    """Collects one blob as it streams; `commit` (run in a thread) verifies and publishes it."""

    def __init__(self, cache: BlobCache, digest: str, size: int, fd: int, tmp: Path) -> None:
        self._cache = cache
        self._digest = digest
        self._size = size
        self._file = os.fdopen(fd, "wb")
        self._tmp = tmp
        self._written = 0
        self._failed = False

    def write(self, chunk: bytes) -> None:
        """Buffered write into the page cache: cheap enough for the event loop. Never raises:
        a full disk only means this blob is not cached."""
        if self._failed:
            return
        try:
            self._file.write(chunk)
        except OSError as exc:
            log.warning("not caching %s: %s", self._digest, exc)
            self._failed = True
        self._written += len(chunk)

    def commit(self) -> bool:
        """fsync, check length and digest, publish. False (and nothing kept) on any mismatch."""
        try:
            if self._failed or self._written != self._size:
                return False
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            if not self._matches():
                log.warning("not caching %s: content does not match its digest", self._digest)
                return False
            self._cache._publish(self._digest, self._tmp, self._size)
            return True
        except OSError as exc:
            log.warning("not caching %s: %s", self._digest, exc)
            return False
        finally:
            self.abort()

    def _matches(self) -> bool:
        algorithm, encoded = parse_digest(self._digest)
        hasher = hashlib.new(algorithm)
        with self._tmp.open("rb") as f:
            for chunk in read_chunks(f):
                hasher.update(chunk)
        return hasher.hexdigest() == encoded

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        self._tmp.unlink(missing_ok=True)
        self._cache._done(self._digest)
