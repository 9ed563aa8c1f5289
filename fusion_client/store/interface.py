"""The object-store interface the file system and the uploader talk to (the shape of
mountpoint-s3's `ObjectClient`). S3 (fusion_client.s3), Google Cloud Storage (fusion_client.gcs)
and Azure Blob (fusion_client.azure) implement it; fusion_client.store.memory is the in-memory
twin the file-system unit tests run against.

Contract every implementation keeps (the file system relies on it):
- Names: `bucket` is the bucket (S3, GCS) or container (Azure); keys are '/'-separated text.
- Versions: ObjectInfo.etag is an opaque token; `get_range_into(if_match=token)` reads that
  version or raises PreconditionFailed (ObjectNotFound when the store says so instead).
- Errors: only fusion_client.store.errors classes escape, after the store's own retries.
- Streamed uploads: `create_multipart_upload` then `upload_part` for parts numbered from 1,
  each covering the next bytes of the object, submitted in order (a store that must send them
  one after the other, like GCS's resumable uploads, may wait for the previous part), then
  `complete_multipart_upload` with every part; `abort_multipart_upload` gives it up.
- Deleting a missing object succeeds (rename and unlink are idempotent).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from .model import Body, ListPage, ObjectInfo, StoreStats


class ObjectStore(Protocol):
    scheme: str  # the directory under the mount: s3, gs, az
    provider: str  # the `provider` field of log lines: s3, gcs, azure
    stats: StoreStats

    def head_bucket(self, bucket: str) -> None: ...

    def head_object(self, bucket: str, key: str) -> ObjectInfo: ...

    def get_range_into(
        self, bucket: str, key: str, offset: int, buf: memoryview, *, if_match: str | None
    ) -> int:
        """Fill `buf` from `offset`; return the bytes read (fewer only at the end)."""
        ...

    def list_page(
        self,
        bucket: str,
        prefix: str,
        *,
        delimiter: str | None = "/",
        token: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage: ...

    def put_object(
        self, bucket: str, key: str, body: Body, *, metadata: Mapping[str, str] | None = None
    ) -> str:
        """Store a whole object; return its version token."""
        ...

    def create_multipart_upload(
        self, bucket: str, key: str, *, metadata: Mapping[str, str] | None = None
    ) -> str: ...

    def upload_part(
        self, bucket: str, key: str, upload_id: str, part_number: int, body: Body
    ) -> str: ...

    def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> str: ...

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None: ...

    def copy_object(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> str:
        """Server-side copy keeping the metadata; return the new object's version token."""
        ...

    def delete_object(self, bucket: str, key: str) -> None: ...

    def delete_objects(self, bucket: str, keys: Sequence[str]) -> None: ...

    def close(self) -> None: ...
