"""A file being written: its local staging file and the upload that makes it durable in S3.

Every byte written lands in the staging file first, so the writer can read it back and the
uploader can (re)send any part from it. New files and O_TRUNC overwrites stream: each completed
part is uploaded while the writer goes on. A change to an existing object (append, random write,
truncate to a non-zero size) first copies the object into the staging file, then uploads the
whole result when the file is closed or synced: S3 has no partial update.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fusion_client.store import ObjectInfo
    from fusion_client.upload import ObjectUpload, Uploader

Download = Callable[[int], None]
"""Fill the staging fd with the current object (called once, before the first change)."""


class WriteState:
    """Shared by every handle that writes one file; methods are thread-safe."""

    def __init__(self, path: str, *, size: int, download: Download | None) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self.size = size
        self.mtime_ns = time.time_ns()
        self.handles = 0
        self.dirty = download is None  # a new or truncated file must be uploaded even if empty
        self.unlinked = False
        self.closed = False  # closed with content since the staging file was made
        self.reopened = False  # opened for writing again after that: a close/reopen cycle
        self.lock = threading.RLock()
        self._download = download  # None once the staging file holds the whole content
        self._upload: ObjectUpload | None = None
        self._streaming = download is None
        self.uploaded: ObjectInfo | None = None  # the last completed upload of this content

    @property
    def local(self) -> bool:
        """True when reads must come from the staging file (it holds the newest bytes)."""
        return self._download is None

    def write(self, uploader: Uploader, target: tuple[str, str], offset: int, data) -> int:
        with self.lock:
            self._materialize()
            written = os.pwrite(self.fd, data, offset)
            self.size = max(self.size, offset + written)
            self.mtime_ns = time.time_ns()
            self.dirty = True
            self.uploaded = None
            if self._streaming and not self.unlinked:
                if self._upload is None:  # first write, or the first after a finish
                    self._upload = uploader.begin(*target, self.fd)
                    self._upload.written(0, self.size)
                else:
                    self._upload.written(offset, written)
            return written

    def read(self, offset: int, size: int) -> bytes:
        # No lock: a reader must not wait for an upload that finish() holds the lock through.
        return os.pread(self.fd, max(0, min(size, self.size - offset)), offset)

    def truncate(self, size: int) -> None:
        with self.lock:
            if size == 0:
                self._download = None  # nothing of the old object survives: no copy needed
            self._materialize()
            os.ftruncate(self.fd, size)
            self.size = size
            self.mtime_ns = time.time_ns()
            self.dirty = True
            self.uploaded = None
            if self._upload is not None:  # the streamed parts may lie past the new end
                self._upload.abort()
                self._upload = None

    def finish(self, uploader: Uploader, target: tuple[str, str]) -> ObjectInfo | None:
        """Make the content durable (blocks until S3 has it); None if there was nothing to do.
        Raises the uploader's error when the upload finally failed."""
        with self.lock:
            if not self.dirty or self.unlinked:
                return None
            upload, self._upload = self._upload, None
            if upload is None:
                upload = uploader.begin(*target, self.fd)
                if self.size:
                    upload.written(0, self.size)
            info = upload.finish()
            self.dirty = False
            self._streaming = True  # later writes restart a streamed upload of the whole file
            self.uploaded = info
            return info

    def discard(self) -> None:
        with self.lock:
            self.unlinked = True
            if self._upload is not None:
                self._upload.abort()
                self._upload = None

    def close(self) -> None:
        """Close the staging fd; the caller adopts or deletes the file at self.path."""
        os.close(self.fd)

    def _materialize(self) -> None:
        if self._download is not None:
            download, self._download = self._download, None
            try:
                download(self.fd)
            except BaseException:
                self._download = download
                raise
