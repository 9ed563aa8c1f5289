"""The S3 client: SigV4-signed requests over pooled keep-alive connections, with retries.

Thread-safe; one instance per mount is shared by every reader, uploader and directory lister.

Retries: every operation is retried on 5xx, throttling codes, 429, RequestTimeout, connection
errors and timeouts, up to RetryPolicy.max_attempts with exponential backoff and full jitter.
Reads, PUTs, parts (re-sent from their source) and deletes are idempotent; a retried Complete
that already succeeded is recognised by the object's multipart ETag; a retried Create may leave
an orphan multipart upload behind, which a bucket lifecycle rule for incomplete uploads removes.
A request that fails on a reused keep-alive connection before any response arrived is re-sent at
once on a new connection without counting as an attempt (the peer closed an idle connection).
When S3 names a bucket's real region, or its own time (RequestTimeTooSkewed: a container with
a wrong clock), the client remembers it and re-signs. Expired session tokens trigger one
credentials reload.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import os
import re
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import quote

from fusion_client.log import get_logger
from fusion_client.store.http import (
    TRANSPORT_ERRORS,
    StaleConnection,
    body_length,
    drain,
    etag_header,
    etag_of,
    exchange,
    header_object_info,
    read_pinned,
    read_range,
)
from fusion_client.store.model import (
    Body,
    FileRange,
    ListPage,
    ObjectInfo,
    StoreStats,
    http_date_ns,
    strip_etag,
)
from fusion_client.store.pool import PoolManager

from . import responses
from .config import S3Config, Target
from .credentials import CredentialChain
from .errors import (
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    S3ConnectionError,
    S3Error,
    error_for,
)
from .sigv4 import EMPTY_SHA256, UNSIGNED_PAYLOAD, authorization, canonical_query

log = get_logger("s3")

T = TypeVar("T")

RETRIABLE_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestTimeout",
        "RequestTimeoutException",
        "BandwidthLimitExceeded",
        "ProvisionedThroughputExceededException",
    }
)
TOKEN_EXPIRED_CODES = frozenset({"ExpiredToken", "InvalidToken", "TokenRefreshRequired"})
CLOCK_SKEW_CODES = frozenset({"RequestTimeTooSkewed", "RequestExpired"})
MAX_UNNOTICED_SKEW = 300.0  # S3 accepts requests up to 15 minutes off its clock
MAX_COPY_SIZE = 5 * 2**30
COPY_PART_SIZE = 512 * 2**20
_MD5_HEX = re.compile(r"^[0-9a-f]{32}$")


def is_retriable(error: S3Error) -> bool:
    return (
        error.status >= 500
        or error.status == 429
        or error.code in RETRIABLE_CODES
        or isinstance(error, S3ConnectionError)
    )


@dataclass(slots=True)
class _Call:
    op: str
    method: str
    bucket: str
    key: str | None = None
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: Body | None = None
    ok: tuple[int, ...] = (200,)
    missing: type[S3Error] = NoSuchKey
    payload_hash: str | None = None  # computed once, reused by retries

    @property
    def resource(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.key is not None else f"s3://{self.bucket}"


class _Resign(Exception):
    """Sign the request again: S3 named the bucket's real region or its own clock time."""


class S3Client:
    """The S3 ObjectStore (fusion_client.store.interface)."""

    scheme = "s3"
    provider = "s3"

    def __init__(self, config: S3Config, credentials: CredentialChain | None) -> None:
        """`credentials` None means anonymous (unsigned) requests."""
        self.config = config
        self._credentials = credentials
        self._pools = PoolManager(
            max_connections=config.max_connections,
            timeout=config.timeout,
            connect_timeout=config.connect_timeout,
            ca_bundle=config.ca_bundle,
            proxy_for=config.proxy_for,
        )
        self._bucket_regions: dict[str, str] = {}
        self._clock_skew = 0.0  # S3's clock minus ours, learned from RequestTimeTooSkewed
        self.stats = StoreStats()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> S3Client:
        config = S3Config.from_env(environ)
        if config.anonymous:
            return cls(config, None)
        return cls(config, CredentialChain.from_env(environ, region=config.region))

    def close(self) -> None:
        self._pools.close()

    # -- reads ----------------------------------------------------------------------------

    def head_bucket(self, bucket: str) -> None:
        self._perform(_Call("HeadBucket", "HEAD", bucket, missing=NoSuchBucket), drain)

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        return self._perform(
            _Call("HeadObject", "HEAD", bucket, key),
            lambda resp: header_object_info(key, resp, "x-amz-meta-"),
        )

    def get_range_into(
        self, bucket: str, key: str, offset: int, buf: memoryview, *, if_match: str | None
    ) -> int:
        """Read bytes [offset, offset+len(buf)) of the object straight into `buf` and return
        how many arrived (fewer only at the end of the object). With `if_match` every request
        carries If-Match (PreconditionFailed when the object changed); without it, the ETag of
        the first response pins any resumed request, so one call never mixes versions."""

        def fetch(start: int, dest: memoryview, etag: str | None) -> tuple[int, str]:
            headers = {"Range": f"bytes={start}-{start + len(dest) - 1}"}
            if etag:
                headers["If-Match"] = f'"{strip_etag(etag)}"'
            call = _Call("GetObject", "GET", bucket, key, headers=headers, ok=(200, 206, 416))
            return self._perform(call, lambda r: read_range(r, dest, start, etag_of))

        return read_pinned(buf, offset, if_match, fetch, self.stats, "GetObject")

    def list_page(
        self,
        bucket: str,
        prefix: str,
        *,
        delimiter: str | None = "/",
        token: str | None = None,
        max_keys: int = 1000,
        start_after: str | None = None,
    ) -> ListPage:
        query = [("list-type", "2"), ("prefix", prefix), ("max-keys", str(max_keys))]
        query.append(("encoding-type", "url"))
        if delimiter:
            query.append(("delimiter", delimiter))
        if token:
            query.append(("continuation-token", token))
        if start_after:
            query.append(("start-after", start_after))
        call = _Call("ListObjectsV2", "GET", bucket, query=query, missing=NoSuchBucket)
        return self._perform(call, lambda r: responses.parse_list_objects_v2(r.read()))

    # -- writes ---------------------------------------------------------------------------

    def put_object(
        self,
        bucket: str,
        key: str,
        body: Body,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Store the whole object in one request; returns its ETag."""
        headers = self._new_object_headers(key, metadata)
        call = _Call("PutObject", "PUT", bucket, key, headers=headers, body=body)
        return self._perform(call, etag_header)

    def create_multipart_upload(
        self, bucket: str, key: str, *, metadata: Mapping[str, str] | None = None
    ) -> str:
        headers = self._new_object_headers(key, metadata)
        call = _Call(
            "CreateMultipartUpload", "POST", bucket, key, query=[("uploads", "")], headers=headers
        )
        return self._perform(call, lambda r: responses.parse_upload_id(r.read(), call.resource))

    def upload_part(
        self, bucket: str, key: str, upload_id: str, part_number: int, body: Body
    ) -> str:
        query = [("partNumber", str(part_number)), ("uploadId", upload_id)]
        call = _Call("UploadPart", "PUT", bucket, key, query=query, body=body)
        return self._perform(call, etag_header)

    def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> str:
        body = responses.complete_multipart_body(list(parts))
        call = _Call(
            "CompleteMultipartUpload",
            "POST",
            bucket,
            key,
            query=[("uploadId", upload_id)],
            headers={"Content-Type": "application/xml"},
            body=body,
        )
        try:
            return self._perform(
                call, lambda r: responses.parse_etag_result(r.read(), call.resource)
            )
        except NoSuchUpload:
            # A retried Complete whose first attempt succeeded: the object is there with the
            # ETag S3 derives from the part ETags.
            expected = multipart_etag([etag for _, etag in sorted(parts)])
            if expected and self.head_object(bucket, key).etag == expected:
                return expected
            raise

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        call = _Call(
            "AbortMultipartUpload",
            "DELETE",
            bucket,
            key,
            query=[("uploadId", upload_id)],
            ok=(200, 204),
        )
        # NoSuchUpload: already completed, aborted or expired, so nothing is left to clean up.
        with contextlib.suppress(NoSuchUpload):
            self._perform(call, drain)

    def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Server-side copy (rename = copy + delete). Without `metadata` the source's is kept.
        Objects over 5 GiB are copied as a multipart upload of ranged part copies."""
        source = self.head_object(src_bucket, src_key)
        copy_source = quote(f"{src_bucket}/{src_key}", safe="/~")
        if source.size > MAX_COPY_SIZE:
            return self._multipart_copy(
                source,
                copy_source,
                dst_bucket,
                dst_key,
                source.metadata if metadata is None else metadata,
            )
        headers = self._new_object_headers(dst_key, metadata)
        headers["x-amz-copy-source"] = copy_source
        headers["x-amz-copy-source-if-match"] = f'"{source.etag}"'
        headers["x-amz-metadata-directive"] = "COPY" if metadata is None else "REPLACE"
        if "x-amz-tagging" in headers:
            headers["x-amz-tagging-directive"] = "REPLACE"
        call = _Call("CopyObject", "PUT", dst_bucket, dst_key, headers=headers)
        return self._perform(call, lambda r: responses.parse_etag_result(r.read(), call.resource))

    def delete_object(self, bucket: str, key: str) -> None:
        call = _Call("DeleteObject", "DELETE", bucket, key, ok=(200, 204))
        # S3 itself answers 204 for missing keys; some clones say 404.
        with contextlib.suppress(NoSuchKey):
            self._perform(call, drain)

    def delete_objects(self, bucket: str, keys: Sequence[str]) -> None:
        """Delete many keys (1000 per request); raises S3Error naming keys S3 refused."""
        for i in range(0, len(keys), 1000):
            body = responses.delete_objects_body(list(keys[i : i + 1000]))
            headers = {
                "Content-Type": "application/xml",
                "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
            }
            call = _Call(
                "DeleteObjects", "POST", bucket, query=[("delete", "")], headers=headers, body=body
            )
            failed = self._perform(call, lambda r: responses.parse_delete_errors(r.read()))
            if failed:
                key, code, message = failed[0]
                more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
                raise error_for(0, code, f"{message}{more}", resource=f"s3://{bucket}/{key}")

    # -- internals ------------------------------------------------------------------------

    def _new_object_headers(self, key: str, metadata: Mapping[str, str] | None) -> dict[str, str]:
        """Headers every new object gets: user metadata, encryption, storage class and tags."""
        headers: dict[str, str] = {}
        for name, value in (metadata or {}).items():
            if not (name.isascii() and str(value).isascii()):
                raise ValueError(f"S3 metadata must be ASCII: {name!r}={value!r}")
            headers[f"x-amz-meta-{name.lower()}"] = str(value)
        if self.config.sse:
            headers["x-amz-server-side-encryption"] = self.config.sse
            if self.config.sse == "aws:kms" and self.config.sse_kms_key_id:
                headers["x-amz-server-side-encryption-aws-kms-key-id"] = self.config.sse_kms_key_id
        if self.config.storage_class:
            headers["x-amz-storage-class"] = self.config.storage_class
        tagging = self.config.tags.header_for(key)
        if tagging:
            headers["x-amz-tagging"] = tagging
        return headers

    def _multipart_copy(
        self,
        source: ObjectInfo,
        copy_source: str,
        bucket: str,
        key: str,
        metadata: Mapping[str, str],
    ) -> str:
        upload_id = self.create_multipart_upload(bucket, key, metadata=metadata)

        def copy_part(number: int) -> tuple[int, str]:
            first = (number - 1) * COPY_PART_SIZE
            last = min(first + COPY_PART_SIZE, source.size) - 1
            headers = {
                "x-amz-copy-source": copy_source,
                "x-amz-copy-source-range": f"bytes={first}-{last}",
                "x-amz-copy-source-if-match": f'"{source.etag}"',
            }
            query = [("partNumber", str(number)), ("uploadId", upload_id)]
            call = _Call("UploadPartCopy", "PUT", bucket, key, query=query, headers=headers)
            etag = self._perform(
                call, lambda r: responses.parse_etag_result(r.read(), call.resource)
            )
            return number, etag

        count = -(-source.size // COPY_PART_SIZE)
        try:
            with ThreadPoolExecutor(max_workers=8, thread_name_prefix="s3-copy") as pool:
                parts = list(pool.map(copy_part, range(1, count + 1)))
            return self.complete_multipart_upload(bucket, key, upload_id, parts)
        except BaseException:
            self.abort_multipart_upload(bucket, key, upload_id)
            raise

    def _perform(self, call: _Call, read: Callable[[http.client.HTTPResponse], T]) -> T:
        policy = self.config.retry
        failures = 0
        fresh_resend = True
        resigns = 0
        reloaded_credentials = False
        while True:
            try:
                return self._attempt(call, read)
            except StaleConnection:
                if fresh_resend:
                    fresh_resend = False
                    continue
                error: S3Error = S3ConnectionError(
                    f"{call.op}: connection closed by the server", resource=call.resource
                )
            except _Resign as exc:
                resigns += 1
                if resigns > 2:
                    raise S3Error(0, "ResignLoop", str(exc), resource=call.resource) from None
                continue
            except ssl.SSLCertVerificationError as exc:
                raise S3ConnectionError(f"{call.op}: {exc}", resource=call.resource) from exc
            except S3Error as exc:
                # HEAD errors have no body: a bare 400 there may be an expired token too.
                expired = exc.code in TOKEN_EXPIRED_CODES or (
                    call.method == "HEAD" and exc.status == 400
                )
                if expired and self._credentials and not reloaded_credentials:
                    reloaded_credentials = True
                    self._credentials.invalidate()
                    continue
                if not is_retriable(exc):
                    raise
                error = exc
            except TRANSPORT_ERRORS as exc:
                error = S3ConnectionError(
                    f"{call.op}: {type(exc).__name__}: {exc}".rstrip(": "),
                    resource=call.resource,
                )
                error.__cause__ = exc
            failures += 1
            if failures >= policy.max_attempts:
                raise error
            self.stats.retried(call.op)
            delay = policy.delay(failures)
            log.info("retrying %s %s in %.2fs: %s", call.op, call.resource, delay, error)
            time.sleep(delay)

    def _attempt(self, call: _Call, read: Callable[[http.client.HTTPResponse], T]) -> T:
        region = self._bucket_regions.get(call.bucket, self.config.region)
        target = self.config.target(call.bucket, call.key, region)
        query = canonical_query(call.query)
        url = target.path + ("?" + query if query else "")
        headers = {"Host": target.host_header, **call.headers}
        if self.config.requester_pays:
            headers["x-amz-request-payer"] = "requester"
        if call.body is not None or call.method in ("PUT", "POST"):
            headers["Content-Length"] = str(body_length(call.body))
        self._sign(call, target, query, headers, region)

        def error_from(resp: http.client.HTTPResponse, body: bytes) -> S3Error:
            return self._error_from(resp, body, call, region)

        pool = self._pools.pool(target.endpoint)
        return exchange(pool, call, url, headers, read, error_from, self.stats)

    def _sign(
        self, call: _Call, target: Target, query: str, headers: dict[str, str], region: str
    ) -> None:
        if self._credentials is None:
            return
        creds = self._credentials.get()
        if call.payload_hash is None:
            signed = self.config.payload_signed(target.endpoint)
            call.payload_hash = _payload_hash(call.body, signed)
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + self._clock_skew))
        headers["x-amz-date"] = amz_date
        headers["x-amz-content-sha256"] = call.payload_hash
        if creds.token:
            headers["x-amz-security-token"] = creds.token
        headers["Authorization"] = authorization(
            method=call.method,
            path=target.path,
            query=query,
            headers=headers,
            payload_hash=call.payload_hash,
            access_key=creds.access_key,
            secret_key=creds.secret_key,
            region=region,
            amz_date=amz_date,
        )

    def _error_from(
        self, resp: http.client.HTTPResponse, body: bytes, call: _Call, region: str
    ) -> S3Error:
        new_region = resp.getheader("x-amz-bucket-region")
        if new_region and new_region != region and resp.status in (301, 307, 400):
            log.info("bucket %s is in region %s, re-signing for it", call.bucket, new_region)
            self._bucket_regions[call.bucket] = new_region
            raise _Resign(f"bucket region {new_region}")
        code, message, request_id = responses.error_fields(body) if body else ("", "", None)
        self._learn_clock_skew(resp, code)
        return error_for(
            resp.status,
            code,
            message or resp.reason,
            request_id=request_id or resp.getheader("x-amz-request-id"),
            resource=call.resource,
            missing=call.missing,
        )

    def _learn_clock_skew(self, resp: http.client.HTTPResponse, code: str) -> None:
        """Raise _Resign after adopting S3's clock when it refused our request time (HEAD
        errors carry no code: a 403 with a Date far from ours means the same)."""
        try:
            skew = http_date_ns(resp.getheader("Date", "")) / 1e9 - time.time()
        except (TypeError, ValueError):
            return
        far_off = resp.status == 403 and abs(skew - self._clock_skew) > MAX_UNNOTICED_SKEW
        if code in CLOCK_SKEW_CODES or (not code and far_off):
            log.warning("local clock is %.0fs off S3's; correcting", -skew)
            self._clock_skew = skew
            raise _Resign(f"clock skew {skew:.0f}s")


def multipart_etag(part_etags: Sequence[str]) -> str | None:
    """The ETag S3 gives a multipart object: md5 of the parts' binary md5s, dash, part count
    (None when a part ETag is not an md5, e.g. under SSE-KMS)."""
    stripped = [strip_etag(e) for e in part_etags]
    if not stripped or not all(_MD5_HEX.match(e) for e in stripped):
        return None
    digest = hashlib.md5(b"".join(bytes.fromhex(e) for e in stripped)).hexdigest()
    return f"{digest}-{len(stripped)}"


def _payload_hash(body: Body | None, signed: bool) -> str:
    if body is None:
        return EMPTY_SHA256
    if isinstance(body, FileRange):
        if not signed:
            return UNSIGNED_PAYLOAD
        digest = hashlib.sha256()
        for chunk in body.chunks():
            digest.update(chunk)
        return digest.hexdigest()
    if signed or len(body) <= 1 << 20:
        return hashlib.sha256(body).hexdigest()
    return UNSIGNED_PAYLOAD
