"""Values exchanged with every object store: object descriptions, listing pages, request bodies
and the per-store request counters."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One object version. `etag` is the store's opaque version token, which a ranged read can
    be pinned to: S3's and Azure's ETag without the surrounding quotes (HEAD, listings and
    uploads agree; the client re-quotes it for If-Match), GCS's generation number."""

    key: str
    size: int
    etag: str
    last_modified_ns: int
    metadata: dict[str, str] = field(default_factory=dict)  # x-amz-meta-* without the prefix


@dataclass(frozen=True, slots=True)
class ListPage:
    objects: list[ObjectInfo]
    prefixes: list[str]  # common prefixes, each ending with the delimiter
    next_token: str | None  # continuation token, None on the last page


@dataclass(frozen=True, slots=True)
class FileRange:
    """A request body read from a file descriptor on demand (os.preadv into a pooled buffer),
    so uploading a part of any size needs only `CHUNK` bytes of memory and a retry simply reads
    the range again."""

    fd: int
    offset: int
    length: int

    CHUNK = 1 << 20

    def chunks(self) -> Iterator[memoryview]:
        """Yield views of consecutive pieces; each view is valid until the next one is yielded.
        Raises StagingChanged when the file is shorter than the range or unreadable (never
        OSError, which the client would take for a network error and retry)."""
        small = self.length < self.CHUNK
        buf = memoryview(bytearray(self.length)) if small else _buffers.take()
        try:
            pos, end = self.offset, self.offset + self.length
            while pos < end:
                want = min(self.CHUNK, end - pos)
                try:
                    n = os.preadv(self.fd, [buf[:want]], pos)
                except OSError as exc:  # e.g. closed under an aborted upload: not a network error
                    raise StagingChanged(f"cannot read the local file: {exc}") from exc
                if n <= 0:
                    raise StagingChanged(
                        f"file ended at byte {pos} while reading bytes {self.offset}-{end - 1}"
                    )
                yield buf[:n]
                pos += n
        finally:
            if not small:
                _buffers.give_back(buf)


class StagingChanged(Exception):
    """The local file shrank while a part of it was being sent."""


class _BufferPool:
    """Reusable CHUNK-sized send buffers. At most KEEP stay allocated between uploads, however
    many threads (upload workers, FUSE threads finishing small files) have sent bodies."""

    KEEP = 8

    def __init__(self) -> None:
        self._free: list[memoryview] = []
        self._lock = threading.Lock()

    def take(self) -> memoryview:
        with self._lock:
            if self._free:
                return self._free.pop()
        return memoryview(bytearray(FileRange.CHUNK))

    def give_back(self, buf: memoryview) -> None:
        with self._lock:
            if len(self._free) < self.KEEP:
                self._free.append(buf)


_buffers = _BufferPool()


def strip_etag(etag: str) -> str:
    return etag.strip().strip('"')


def iso8601_ns(text: str) -> int:
    """'2009-10-12T17:50:30.000Z' (listings) -> epoch nanoseconds."""
    return _datetime_ns(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))


def http_date_ns(text: str) -> int:
    """'Wed, 12 Oct 2009 17:50:00 GMT' (HEAD Last-Modified) -> epoch nanoseconds."""
    return _datetime_ns(parsedate_to_datetime(text))


def _datetime_ns(dt: datetime) -> int:
    whole = int(dt.replace(microsecond=0).timestamp())
    return whole * 1_000_000_000 + dt.microsecond * 1000


class StoreStats:
    """Counters for the exit summary and for tests (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.retries_by_op: dict[str, int] = {}

    def add(self, *, requests: int = 0, sent: int = 0, received: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.bytes_sent += sent
            self.bytes_received += received

    def retried(self, op: str) -> None:
        with self._lock:
            self.retries += 1
            self.retries_by_op[op] = self.retries_by_op.get(op, 0) + 1


Body = bytes | bytearray | memoryview | FileRange
"""A request body: bytes in memory or a range of a local file read on demand."""
