"""Values exchanged with the S3 client: object descriptions, listing pages and request bodies."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One object version. `etag` is stored without the surrounding quotes S3 puts on it, so
    HEAD, listings and uploads agree; the client re-quotes it for If-Match."""

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
    """A request body read from a file descriptor on demand (os.preadv into a reusable
    per-thread buffer), so uploading a part of any size needs only `CHUNK` bytes of memory and
    a retry simply reads the range again."""

    fd: int
    offset: int
    length: int

    CHUNK = 1 << 20

    def chunks(self) -> Iterator[memoryview]:
        """Yield views of consecutive pieces; each view is valid until the next one is yielded.
        Raises StagingChanged when the file is shorter than the range or unreadable (never
        OSError, which the client would take for a network error and retry)."""
        buf = _thread_buffer(self.CHUNK)
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


class StagingChanged(Exception):
    """The local file shrank while a part of it was being sent."""


_local = threading.local()


def _thread_buffer(size: int) -> memoryview:
    buf = getattr(_local, "buf", None)
    if buf is None or len(buf) < size:
        buf = memoryview(bytearray(size))
        _local.buf = buf
    return buf


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
