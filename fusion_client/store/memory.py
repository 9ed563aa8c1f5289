"""The in-memory object store: the twin of the real stores for unit tests of the file system
and the uploader (mountpoint-s3's MockClient). It keeps the contract of interface.py exactly,
counts every operation, and fails the next calls of an operation on demand."""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .errors import BucketNotFound, ObjectNotFound, PreconditionFailed, StoreError
from .model import Body, FileRange, ListPage, ObjectInfo, StoreStats


class MemoryStoreError(StoreError):
    provider = "memory"


class MemoryNotFound(MemoryStoreError, ObjectNotFound):
    pass


class MemoryNoBucket(MemoryStoreError, BucketNotFound):
    pass


class MemoryChanged(MemoryStoreError, PreconditionFailed):
    pass


@dataclass
class _Object:
    data: bytes
    etag: str
    modified_ns: int
    metadata: dict[str, str] = field(default_factory=dict)


class MemoryStore:
    scheme = "s3"
    provider = "memory"

    def __init__(self, *buckets: str, scheme: str = "s3") -> None:
        self.scheme = scheme
        self.stats = StoreStats()
        self.buckets: dict[str, dict[str, _Object]] = {name: {} for name in buckets}
        self.calls: Counter[str] = Counter()
        self._failures: dict[str, list[StoreError]] = {}
        self._uploads: dict[str, tuple[str, str, dict[str, str], dict[int, bytes]]] = {}
        self._versions = itertools.count(1)
        self._lock = threading.Lock()

    # -- test controls ------------------------------------------------------------------

    def fail_next(self, operation: str, error: StoreError, times: int = 1) -> None:
        """Make the next `times` calls of `operation` (a method name) raise `error`."""
        with self._lock:
            self._failures.setdefault(operation, []).extend([error] * times)

    def data(self, bucket: str, key: str) -> bytes:
        return self._object(bucket, key).data

    # -- the interface ------------------------------------------------------------------

    def head_bucket(self, bucket: str) -> None:
        self._enter("head_bucket")
        self._bucket(bucket)

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        self._enter("head_object")
        return self._info(key, self._object(bucket, key))

    def get_range_into(
        self, bucket: str, key: str, offset: int, buf: memoryview, *, if_match: str | None
    ) -> int:
        self._enter("get_range_into")
        obj = self._object(bucket, key)
        if if_match is not None and if_match != obj.etag:
            raise MemoryChanged(412, "PreconditionFailed", resource=f"{bucket}/{key}")
        piece = obj.data[offset : offset + len(buf)]
        memoryview(buf).cast("B")[: len(piece)] = piece
        self.stats.add(requests=1, received=len(piece))
        return len(piece)

    def list_page(
        self,
        bucket: str,
        prefix: str,
        *,
        delimiter: str | None = "/",
        token: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage:
        self._enter("list_page")
        with self._lock:
            keys = sorted(k for k in self._bucket(bucket) if k.startswith(prefix))
            objects = self._bucket(bucket)
            entries: list[tuple[str, ObjectInfo | None]] = []
            for key in keys:
                rest = key[len(prefix) :]
                if delimiter and delimiter in rest:
                    common = prefix + rest[: rest.index(delimiter) + 1]
                    if not entries or entries[-1][0] != common:
                        entries.append((common, None))
                else:
                    entries.append((key, self._info(key, objects[key])))
        entries = [e for e in entries if token is None or e[0] > token]
        page, more = entries[:max_keys], len(entries) > max_keys
        return ListPage(
            objects=[info for _, info in page if info is not None],
            prefixes=[name for name, info in page if info is None],
            next_token=page[-1][0] if more else None,
        )

    def put_object(
        self, bucket: str, key: str, body: Body, *, metadata: Mapping[str, str] | None = None
    ) -> str:
        self._enter("put_object")
        return self._store(bucket, key, _bytes(body), dict(metadata or {}))

    def create_multipart_upload(
        self, bucket: str, key: str, *, metadata: Mapping[str, str] | None = None
    ) -> str:
        self._enter("create_multipart_upload")
        self._bucket(bucket)
        upload_id = f"upload-{next(self._versions)}"
        with self._lock:
            self._uploads[upload_id] = (bucket, key, dict(metadata or {}), {})
        return upload_id

    def upload_part(
        self, bucket: str, key: str, upload_id: str, part_number: int, body: Body
    ) -> str:
        self._enter("upload_part")
        data = _bytes(body)
        with self._lock:
            self._uploads[upload_id][3][part_number] = data
        return hashlib.md5(data).hexdigest()

    def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> str:
        self._enter("complete_multipart_upload")
        with self._lock:
            _, _, metadata, sent = self._uploads.pop(upload_id)
        return self._store(bucket, key, b"".join(sent[n] for n, _ in sorted(parts)), metadata)

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        self._enter("abort_multipart_upload")
        with self._lock:
            self._uploads.pop(upload_id, None)

    def copy_object(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> str:
        self._enter("copy_object")
        source = self._object(src_bucket, src_key)
        return self._store(dst_bucket, dst_key, source.data, dict(source.metadata))

    def delete_object(self, bucket: str, key: str) -> None:
        self._enter("delete_object")
        with self._lock:
            self._bucket(bucket).pop(key, None)

    def delete_objects(self, bucket: str, keys: Sequence[str]) -> None:
        self._enter("delete_objects")
        with self._lock:
            for key in keys:
                self._bucket(bucket).pop(key, None)

    def close(self) -> None:
        pass

    # -- internals ----------------------------------------------------------------------

    def _enter(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] += 1
            pending = self._failures.get(operation)
            error = pending.pop(0) if pending else None
        if error is not None:
            raise error

    def _bucket(self, bucket: str) -> dict[str, _Object]:
        objects = self.buckets.get(bucket)
        if objects is None:
            raise MemoryNoBucket(404, "NoSuchBucket", resource=bucket)
        return objects

    def _object(self, bucket: str, key: str) -> _Object:
        obj = self._bucket(bucket).get(key)
        if obj is None:
            raise MemoryNotFound(404, "NoSuchKey", resource=f"{bucket}/{key}")
        return obj

    def _store(self, bucket: str, key: str, data: bytes, metadata: dict[str, str]) -> str:
        etag = f"v{next(self._versions)}"
        with self._lock:
            self._bucket(bucket)[key] = _Object(data, etag, time.time_ns(), metadata)
        self.stats.add(requests=1, sent=len(data))
        return etag

    @staticmethod
    def _info(key: str, obj: _Object) -> ObjectInfo:
        return ObjectInfo(key, len(obj.data), obj.etag, obj.modified_ns, dict(obj.metadata))


def _bytes(body: Body) -> bytes:
    if isinstance(body, FileRange):
        return b"".join(bytes(chunk) for chunk in body.chunks())
    return bytes(body)
