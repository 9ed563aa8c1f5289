"""The blob store a fleet of replicas shares (`--blob-store`): content-addressed blobs every
replica serves, whichever replica fetched, built or received them.

One interface, three implementations: S3 (`s3://BUCKET[/PREFIX]`, boto3 in worker threads), a
shared directory (`file:///DIR`, e.g. an NFS/EFS mount) and an in-memory twin for tests.
Callers only ever put content they have verified against its digest (a local file that hashed
right), and every implementation makes an object visible under its final key only once it is
whole: S3 publishes a PUT or a completed multipart upload atomically, the directory renames a
finished temporary file into place. So a reader never sees a partial or foreign blob, even when
the writer dies mid-upload.

Why boto3 in threads rather than aiobotocore: aiobotocore pins botocore to an older release than
boto3 1.44 needs (two copies of botocore do not coexist), and blob transfers are few and large,
so a thread per transfer costs nothing measurable next to the bytes; boto3's transfer manager
also does the multipart upload for us.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from wave_proxy.image.digest import parse_digest
from wave_proxy.store.blobs import BlobStore

READ_CHUNK = 1 << 20
MAX_COPY_OBJECT = 5 << 30  # S3's limit for a single CopyObject
PRESIGN_SECONDS = 300  # a redirect's URL lives this long: enough to start the download


class BlobStoreUnavailable(Exception):
    """The shared blob store did not answer or failed; the caller degrades (relays upstream)."""


class SharedBlobStore(Protocol):
    description: str  # for logs and /readyz, without secrets

    async def size(self, digest: str) -> int | None:
        """The stored blob's size; None when absent. BlobStoreUnavailable on failure."""

    async def put_file(self, digest: str, path: Path) -> None:
        """Store a verified local file under `digest` (kept as is when already there)."""

    def read(self, digest: str, start: int, length: int) -> AsyncIterator[bytes]:
        """Bytes [start, start+length) of a stored blob."""

    async def url(self, digest: str) -> str | None:
        """A short-lived URL clients may fetch the blob from directly; None when there is none
        (then the proxy streams it)."""

    async def ping(self) -> None:
        """Raise BlobStoreUnavailable unless the store answers."""


def blob_key(prefix: str, digest: str) -> str:
    algorithm, encoded = parse_digest(digest)
    return f"{prefix}blobs/{algorithm}/{encoded}"


def open_blob_store(url: str) -> SharedBlobStore:
    """`s3://BUCKET[/PREFIX]` or `file:///DIR`."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return S3BlobStore(parts.netloc, parts.path.strip("/"))
    if parts.scheme == "file":
        return DiskBlobStore(Path(parts.path))
    raise ValueError(f"unsupported blob store {url!r}: use s3://BUCKET[/PREFIX] or file:///DIR")


class S3BlobStore:
    """S3 or an S3-compatible store. Credentials, region and endpoint come the standard AWS way
    (environment incl. AWS_ENDPOINT_URL, shared config/credentials files, ECS task role, EC2
    instance profile): boto3's default chain."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.description = f"s3://{bucket}/{self.prefix}"
        self._client = client or _default_client()

    def _key(self, digest: str) -> str:
        return blob_key(self.prefix, digest)

    async def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(getattr(self._client, method), **kwargs)
        except Exception as exc:  # botocore raises many kinds; all mean "the store failed"
            if _status(exc) == 404 and "Key" in kwargs:  # no such object (a missing bucket
                raise FileNotFoundError(kwargs["Key"]) from None  # fails the probe instead)
            raise BlobStoreUnavailable(f"{self.description}: {method} failed: {exc}") from None

    async def size(self, digest: str) -> int | None:
        try:
            head = await self._call("head_object", Bucket=self.bucket, Key=self._key(digest))
        except FileNotFoundError:
            return None
        return int(head["ContentLength"])

    async def put_file(self, digest: str, path: Path) -> None:
        # S3 shows a PUT or a completed multipart upload only once whole, but some compatible
        # stores (s3rver) show an object while its upload streams in. So the upload goes to a
        # key of its own, and a server-side copy puts it under its final key.
        upload = f"{self.prefix}uploads/{uuid.uuid4().hex}"
        try:
            await self._call("upload_file", Filename=str(path), Bucket=self.bucket, Key=upload)
            source = {"Bucket": self.bucket, "Key": upload}
            # One CopyObject up to 5 GiB (every S3-compatible store has it); a multipart copy
            # (UploadPartCopy, which s3rver lacks) only beyond.
            method = "copy_object" if path.stat().st_size < MAX_COPY_OBJECT else "copy"
            await self._call(method, CopySource=source, Bucket=self.bucket, Key=self._key(digest))
        finally:
            with contextlib.suppress(BlobStoreUnavailable, FileNotFoundError):
                await self._call("delete_object", Bucket=self.bucket, Key=upload)

    async def read(self, digest: str, start: int, length: int) -> AsyncIterator[bytes]:
        if length <= 0:
            return
        byte_range = f"bytes={start}-{start + length - 1}"
        try:
            got = await self._call(
                "get_object", Bucket=self.bucket, Key=self._key(digest), Range=byte_range
            )
        except FileNotFoundError:
            raise BlobStoreUnavailable(f"{digest} vanished from {self.description}") from None
        body = got["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, READ_CHUNK):
                yield chunk
        except Exception as exc:
            raise BlobStoreUnavailable(f"{self.description}: read broke off: {exc}") from None
        finally:
            body.close()

    async def url(self, digest: str) -> str | None:
        params = {"Bucket": self.bucket, "Key": self._key(digest)}
        return await self._call(  # signs locally: no request to S3
            "generate_presigned_url",
            ClientMethod="get_object",
            Params=params,
            ExpiresIn=PRESIGN_SECONDS,
        )

    async def ping(self) -> None:
        await self._call("head_bucket", Bucket=self.bucket)


def _default_client() -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",
        # Per socket operation, not per transfer: a store that stops answering is noticed in
        # seconds (then the replica degrades to relaying) while large blobs still stream.
        connect_timeout=2,
        read_timeout=10,
        retries={"mode": "standard", "max_attempts": 2},
        max_pool_connections=64,
    )
    return boto3.session.Session().client("s3", config=config)


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = response.get("Error", {}).get("Code")
    return 404 if code in ("404", "NoSuchKey", "NotFound") else status


class DiskBlobStore:
    """A directory several replicas mount (NFS, EFS): the local blob store's atomic writes."""

    def __init__(self, root: Path) -> None:
        self._blobs = BlobStore(root)
        self.description = f"file://{root}"

    async def size(self, digest: str) -> int | None:
        try:
            return await asyncio.to_thread(self._blobs.size, digest)
        except OSError as exc:
            raise BlobStoreUnavailable(f"{self.description}: {exc}") from None

    async def put_file(self, digest: str, path: Path) -> None:
        try:
            await asyncio.to_thread(self._blobs.put_file, digest, path)
        except OSError as exc:
            raise BlobStoreUnavailable(f"{self.description}: {exc}") from None

    async def read(self, digest: str, start: int, length: int) -> AsyncIterator[bytes]:
        try:
            with self._blobs.path(digest).open("rb") as f:
                f.seek(start)
                while length > 0:
                    chunk = await asyncio.to_thread(f.read, min(READ_CHUNK, length))
                    if not chunk:
                        break
                    length -= len(chunk)
                    yield chunk
        except OSError as exc:
            raise BlobStoreUnavailable(f"{self.description}: {exc}") from None

    async def url(self, digest: str) -> str | None:
        return None

    async def ping(self) -> None:
        if not await asyncio.to_thread(self._blobs.root.is_dir):
            raise BlobStoreUnavailable(f"{self.description} is not a directory")


class MemoryBlobStore:
    """The in-memory twin for tests; `down` makes every call fail like an unreachable S3."""

    def __init__(self) -> None:
        self.description = "memory://"
        self.objects: dict[str, bytes] = {}
        self.down = False
        self.puts = 0
        self._lock = threading.Lock()

    def _check(self) -> None:
        if self.down:
            raise BlobStoreUnavailable("memory:// is down")

    async def size(self, digest: str) -> int | None:
        self._check()
        body = self.objects.get(digest)
        return None if body is None else len(body)

    async def put_file(self, digest: str, path: Path) -> None:
        self._check()
        body = await asyncio.to_thread(path.read_bytes)
        with self._lock:
            self.puts += 1
            self.objects.setdefault(digest, body)

    async def read(self, digest: str, start: int, length: int) -> AsyncIterator[bytes]:
        self._check()
        body = self.objects.get(digest)
        if body is None:
            raise BlobStoreUnavailable(f"{digest} is not in memory://")
        for offset in range(start, start + length, READ_CHUNK):
            yield body[offset : min(offset + READ_CHUNK, start + length)]

    async def url(self, digest: str) -> str | None:
        return None

    async def ping(self) -> None:
        self._check()
