"""Eager multipart uploads of files being written, read back from their local staging files.

The file system writes every byte to a staging file first and tells the object's ObjectUpload
which range it wrote. As soon as the bytes written from offset 0 onwards cover a whole part,
that part is sent by the shared worker pool, so by the time the writer closes the file most of
it is already in the store and finish() only sends the tail and completes the upload.

Memory stays bounded whatever the file size or number of writers: parts are streamed from the
staging file through a 1 MiB per-worker buffer (FileRange), never held in memory, and at most
`workers` requests run at once. The staging file is the only copy until finish() returns.

Semantics (what the file system can promise users):
- finish() (close/fsync) returns only once the object is durable in the store; it raises
  UploadError, naming the object, when that finally failed after the store client's retries.
- Sequential writers get eager parts. A write below bytes already sent (rewrite, random write),
  a truncation, or a failed eager part switches the object to a fresh upload of the whole
  staging file at finish(), so the object always equals the staging file at finish time.
- Writes after a finish() make the object dirty again; the next finish() uploads it anew.
- Objects smaller than one part are sent with a single PutObject.
- Part sizes start at `part_size` and double every 1000 parts, so the 10,000-part limit is
  never reached (8 MiB parts allow objects of several TiB).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

from fusion_client.log import get_logger
from fusion_client.store import FileRange, ObjectInfo, ObjectStore, StoreError
from fusion_client.store.errors import log_fields

log = get_logger("upload")
T = TypeVar("T")

MIN_PART_SIZE = 5 * 2**20
PARTS_PER_SIZE_STEP = 1000
UPLOAD_OPS = ("PutObject", "UploadPart", "CreateMultipartUpload", "CompleteMultipartUpload")


@dataclass(frozen=True, slots=True)
class UploadFailure:
    scheme: str
    bucket: str
    key: str
    cause: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"

    def __str__(self) -> str:
        return f"{self.url}: {self.cause}"


class UploadError(Exception):
    """An object could not be made durable; the message names it and the cause."""

    def __init__(self, failure: UploadFailure) -> None:
        self.failure = failure
        super().__init__(f"upload of {failure.url} failed: {failure.cause}")


class UploadStats:
    """Counters for the exit summary (thread-safe)."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self.objects = 0
        self.parts = 0
        self.bytes_uploaded = 0
        self.failures = 0
        self.restarts = 0

    @property
    def retries(self) -> int:
        """Retried upload requests (PutObject, UploadPart, Create/Complete)."""
        by_op = self._store.stats.retries_by_op
        return sum(by_op.get(op, 0) for op in UPLOAD_OPS)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


def part_span(number: int, part_size: int) -> tuple[int, int]:
    """(offset, size) of part `number` (1-based): sizes double every 1000 parts."""
    offset = 0
    step = 0
    while (step + 1) * PARTS_PER_SIZE_STEP < number:
        offset += PARTS_PER_SIZE_STEP * (part_size << step)
        step += 1
    size = part_size << step
    return offset + (number - 1 - step * PARTS_PER_SIZE_STEP) * size, size


class Uploader:
    """One per store of a mount: a bounded pool of workers shared by every object written."""

    def __init__(self, store: ObjectStore, *, part_size: int = 8 * 2**20, workers: int = 8) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part size {part_size} is below S3's minimum of 5 MiB")
        self.store = store
        self.part_size = part_size
        self.stats = UploadStats(store)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fusion-upload")
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pending: set[ObjectUpload] = set()  # written to and not yet durable
        self._failures: dict[ObjectUpload, UploadFailure] = {}  # latest failure of each

    def begin(
        self,
        bucket: str,
        key: str,
        staging_fd: int,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectUpload:
        """Start tracking a file being written (nothing is sent until bytes are written or the
        file is finished). The caller keeps `staging_fd` open until finish() or abort()."""
        upload = ObjectUpload(self, bucket, key, staging_fd, dict(metadata or {}))
        self._set_pending(upload, True)
        return upload

    def wait_all(
        self, timeout: float | None = None, *, open_grace: float = 5.0
    ) -> list[UploadFailure]:
        """Block until every upload is durable or failed; return every failure so far.

        For the launcher after the command exited: uploads whose file is still open (the kernel
        delivers the last close a little later) get `open_grace` seconds to be finished by the
        file system, then are finished here so nothing written is dropped. Uploads still not
        done after `timeout` seconds (None = no limit) are reported as failures."""
        deadline = None if timeout is None else time.monotonic() + timeout
        grace_end = time.monotonic() + (open_grace if timeout is None else min(open_grace, timeout))
        with self._lock:
            while self._pending and time.monotonic() < grace_end:
                self._changed.wait(max(0.0, grace_end - time.monotonic()))
            leftovers = list(self._pending)
        for upload in leftovers:
            if not upload.finishing:
                log.warning("%s still open at exit: uploading it", upload.resource)
                # Own thread: finish() waits on parts queued in the pool.
                threading.Thread(target=_finish_quietly, args=(upload,), daemon=True).start()
        with self._lock:
            while self._pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._changed.wait(remaining)
            failures = list(self._failures.values())
            failures += [
                UploadFailure(u.scheme, u.bucket, u.key, f"not durable after {timeout:.0f}s")
                for u in self._pending
            ]
        return failures

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- used by ObjectUpload ------------------------------------------------------------

    def _submit(self, fn: Callable[..., T], *args: object) -> Future[T]:
        return self._pool.submit(fn, *args)

    def _set_pending(self, upload: ObjectUpload, pending: bool) -> None:
        with self._lock:
            if pending:
                self._pending.add(upload)
            else:
                self._pending.discard(upload)
            self._changed.notify_all()

    def _record_outcome(self, upload: ObjectUpload, failure: UploadFailure | None) -> None:
        """Remember the upload's latest failure, or forget it once a later finish succeeded."""
        if failure is not None:
            self.stats.add(failures=1)
        with self._lock:
            if failure is None:
                self._failures.pop(upload, None)
            else:
                self._failures[upload] = failure


def _finish_quietly(upload: ObjectUpload) -> None:
    with contextlib.suppress(UploadError):  # recorded by finish() for wait_all
        upload.finish()


class ObjectUpload:
    """The upload of one object from its staging file; see the module docstring."""

    def __init__(
        self, uploader: Uploader, bucket: str, key: str, fd: int, metadata: dict[str, str]
    ) -> None:
        self.scheme = uploader.store.scheme
        self.bucket = bucket
        self.key = key
        self.metadata = metadata
        self._up = uploader
        self._store = uploader.store
        self._fd = fd
        self._lock = threading.Lock()
        self._finish_lock = threading.Lock()
        self._writes = 0  # bumped by every written(); finish() notices writes racing it
        self._ranges: list[list[int]] = []  # merged [start, end) ranges written
        self._session: _MultipartSession | None = None
        self._restart = False  # the eager session no longer matches the staging file
        self._durable: ObjectInfo | None = None
        self._aborted = False
        self._pending = True  # begin() registered it with the uploader
        self.finishing = False

    @property
    def resource(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"

    def written(self, offset: int, length: int) -> None:
        """`length` bytes at `offset` reached the staging file: send every newly complete part
        of the contiguous prefix in the background."""
        if length <= 0:
            return
        with self._lock:
            if self._aborted:
                return
            self._writes += 1
            if self._durable is not None:  # written again after a finish: upload anew
                self._durable = None
                self._restart = True
            if not self._pending:
                self._pending = True
                self._up._set_pending(self, True)
            session = self._session
            if self.finishing or (session is not None and offset < session.next_offset):
                self._restart = True
            if self._restart:
                if session is not None:  # stop sending parts that no longer match the file
                    self._session = None
                    session.cancel()
                return
            self._add_range(offset, offset + length)
            prefix = self._ranges[0][1] if self._ranges and self._ranges[0][0] == 0 else 0
            part_offset, part_size = part_span(
                session.next_number if session else 1, self._up.part_size
            )
            if prefix < part_offset + part_size:
                return
            if session is None:
                session = self._session = _MultipartSession(self)
            while prefix >= part_offset + part_size:
                session.submit_part(session.next_number, part_offset, part_size)
                part_offset, part_size = part_span(session.next_number, self._up.part_size)

    def finish(self) -> ObjectInfo | None:
        """Make the object durable (close/fsync): send what is left and complete the upload.
        Blocks until the store has it; raises UploadError naming the object if that finally failed.
        Returns None only for an aborted upload."""
        with self._finish_lock:
            with self._lock:
                if self._aborted:
                    return None
                if self._durable is not None:
                    return self._durable
                self.finishing = True
                writes = self._writes
                session, restart = self._session, self._restart
                self._session, self._restart, self._ranges = None, False, []
            try:
                size = os.fstat(self._fd).st_size
                etag = self._upload(session, restart, size)
            except Exception as exc:
                extra: dict[str, object] = {"operation": "Write"}
                if isinstance(exc, StoreError):  # UploadFailure names the object already
                    cause = exc.describe(with_resource=exc.resource != self.resource)
                    extra.update(log_fields(exc))
                else:
                    cause = str(exc) or type(exc).__name__
                    extra["error"] = cause
                failure = UploadFailure(self.scheme, self.bucket, self.key, cause)
                log.error("upload failed: %s", failure, extra=extra)
                with self._lock:
                    self.finishing = False
                    self._restart = True  # a later finish() retries from the staging file
                    self._pending = False
                self._up._record_outcome(self, failure)
                self._up._set_pending(self, False)
                raise UploadError(failure) from exc
            info = ObjectInfo(self.key, size, etag, time.time_ns(), dict(self.metadata))
            with self._lock:
                self.finishing = False
                if self._writes == writes:
                    self._durable = info
                    self._pending = False
                else:
                    self._restart = True  # bytes arrived while finishing: not all are in S3
                now_durable = self._durable is not None
            self._up.stats.add(objects=1)
            self._up._record_outcome(self, None)
            if now_durable:
                self._up._set_pending(self, False)
            return info

    def abort(self) -> None:
        """Drop the upload (file unlinked before close): pending parts are cancelled and any
        multipart upload is aborted in the background; nothing is written to the store."""
        with self._lock:
            self._aborted = True
            self._pending = False
            session, self._session = self._session, None
        if session is not None:
            session.cancel()
        self._up._set_pending(self, False)

    # -- internals ------------------------------------------------------------------------

    def _upload(self, session: _MultipartSession | None, restart: bool, size: int) -> str:
        if session is not None and not restart and size >= session.next_offset:
            try:
                return session.complete(size)
            except Exception as exc:  # a part failed or the staging file changed under it
                log.warning(
                    "eager upload of %s failed (%s); uploading it again", self.resource, exc
                )
                restart = True
        if session is not None:
            session.cancel()
        if restart:
            self._up.stats.add(restarts=1)
        if size < self._up.part_size:
            etag = self._store.put_object(
                self.bucket, self.key, FileRange(self._fd, 0, size), metadata=self.metadata
            )
            self._up.stats.add(parts=1, bytes_uploaded=size)
            return etag
        session = _MultipartSession(self)
        try:
            return session.complete(size)
        except BaseException:
            session.cancel()
            raise

    def _add_range(self, start: int, end: int) -> None:
        merged: list[list[int]] = []
        for r in self._ranges:
            if r[1] < start or r[0] > end:
                merged.append(r)
            else:
                start, end = min(start, r[0]), max(end, r[1])
        merged.append([start, end])
        merged.sort()
        self._ranges = merged


class _MultipartSession:
    """One multipart upload: parts are submitted to the shared pool as they become complete."""

    def __init__(self, upload: ObjectUpload) -> None:
        self._upload = upload
        self._store = upload._store
        self._id_lock = threading.Lock()
        self.upload_id: str | None = None
        self.next_number = 1
        self.next_offset = 0
        self._parts: dict[int, Future[str]] = {}
        self._cancelled = False

    def submit_part(self, number: int, offset: int, size: int) -> None:
        self._parts[number] = self._upload._up._submit(self._send_part, number, offset, size)
        self.next_number = number + 1
        self.next_offset = offset + size

    def complete(self, size: int) -> str:
        """Send the parts after the eager ones (the last may be short), wait, complete."""
        part_size = self._upload._up.part_size
        while self.next_offset < size or not self._parts:
            offset, full = part_span(self.next_number, part_size)
            self.submit_part(self.next_number, offset, min(full, size - offset))
        wait(self._parts.values())
        parts = [(n, f.result()) for n, f in sorted(self._parts.items())]  # raises a part error
        up = self._upload
        return self._store.complete_multipart_upload(
            up.bucket, up.key, self._ensure_upload_id(), parts
        )

    def cancel(self) -> None:
        """Stop sending parts and abort the multipart upload, in the background."""
        self._cancelled = True
        for future in self._parts.values():
            future.cancel()
        self._upload._up._submit(self._abort_when_idle, list(self._parts.values()))

    def _abort_when_idle(self, futures: list[Future[str]]) -> None:
        wait(futures)
        with self._id_lock:
            upload_id, self.upload_id = self.upload_id, None
        if upload_id is not None:
            up = self._upload
            try:
                self._store.abort_multipart_upload(up.bucket, up.key, upload_id)
            except StoreError as exc:  # the store expires it (lifecycle rules) at worst
                log.warning("could not abort multipart upload of %s: %s", up.resource, exc)

    def _ensure_upload_id(self) -> str:
        with self._id_lock:
            if self.upload_id is None:
                up = self._upload
                self.upload_id = self._store.create_multipart_upload(
                    up.bucket, up.key, metadata=up.metadata
                )
            return self.upload_id

    def _send_part(self, number: int, offset: int, size: int) -> str:
        if self._cancelled:
            raise _Cancelled()
        up = self._upload
        try:
            upload_id = self._ensure_upload_id()
            etag = self._store.upload_part(
                up.bucket, up.key, upload_id, number, FileRange(up._fd, offset, size)
            )
        except Exception:
            # The session is lost: the parts queued behind this one would only burn their own
            # retries (S3 down) before finish() starts over anyway.
            self._cancelled = True
            raise
        up._up.stats.add(parts=1, bytes_uploaded=size)
        return etag


class _Cancelled(Exception):
    """A part of a cancelled session was not sent."""
