"""The Azure Blob ObjectStore, on the Blob REST API (fusion_client.store.interface).

- Reads carry `x-ms-range` and `If-Match: <ETag>` (412 ConditionNotMet when the blob changed).
- Small files are one Put Blob; streamed uploads are Put Block per part (any order, in
  parallel) and Put Block List on close/fsync. Block ids are the part number, zero-padded, so
  every id of a blob has the same length, as Azure requires. An abandoned upload leaves only
  uncommitted blocks, which Azure discards after a week.
- Rename is Copy Blob (polled until it is no longer pending); deleting a missing blob succeeds.
- Auth: Shared Key signing, a SAS token in the query, or a managed-identity Bearer token
  (credentials.py).
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import http.client
import os
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from urllib.parse import quote, urlsplit

from fusion_client.store.endpoints import Endpoint, RetryPolicy
from fusion_client.store.errors import StoreError
from fusion_client.store.http import (
    HttpTransport,
    Request,
    drain,
    etag_header,
    etag_of,
    header_object_info,
    read_pinned,
    read_range,
)
from fusion_client.store.model import (
    Body,
    ListPage,
    ObjectInfo,
    StoreStats,
    http_date_ns,
    strip_etag,
)

from .credentials import AzureAccount, managed_identity, shared_key_signature
from .errors import AzureError, AzureNotFound, AzureUnavailable, error_for

API_VERSION = "2021-08-06"  # Put Block up to 4000 MiB, Bearer tokens; Azurite >= 3.18
COPY_POLL_SECONDS = 0.5


class AzureBlobClient:
    scheme = "az"
    provider = "azure"

    def __init__(self, account: AzureAccount, *, retry: RetryPolicy | None = None) -> None:
        parts = urlsplit(account.endpoint)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self.account = account
        self.stats = StoreStats()
        self._identity = (
            managed_identity(account.imds_host, account.msi_client_id)
            if account.key is None and account.sas is None
            else None
        )
        self.transport = HttpTransport(
            Endpoint(parts.scheme, parts.hostname or "", port, parts.path.rstrip("/")),
            authorize=self._authorize,
            error_from=self._error_from,
            unavailable=lambda message, resource: AzureUnavailable(message, resource=resource),
            stats=self.stats,
            retry=retry or RetryPolicy(),
        )
        self._uploads: dict[str, dict[str, str]] = {}  # upload id -> metadata for the commit
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> AzureBlobClient | None:
        """The client of the configured account, or None when no account is configured."""
        account = AzureAccount.from_env(environ)
        if account is None:
            return None
        return cls(account, retry=RetryPolicy.from_env(environ))

    def close(self) -> None:
        self.transport.close()

    # -- reads ----------------------------------------------------------------------------

    def head_bucket(self, bucket: str) -> None:
        request = Request("GetContainerProperties", "GET", f"/{_q(bucket)}", f"az://{bucket}")
        request.query.append(("restype", "container"))
        self.transport.perform(request, drain)

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        request = Request("GetBlobProperties", "HEAD", _path(bucket, key), _url(bucket, key))
        return self.transport.perform(request, lambda r: header_object_info(key, r, "x-ms-meta-"))

    def get_range_into(
        self, bucket: str, key: str, offset: int, buf: memoryview, *, if_match: str | None
    ) -> int:
        def fetch(start: int, dest: memoryview, etag: str | None) -> tuple[int, str]:
            request = Request("GetBlob", "GET", _path(bucket, key), _url(bucket, key))
            request.headers["x-ms-range"] = f"bytes={start}-{start + len(dest) - 1}"
            if etag:
                request.headers["If-Match"] = f'"{etag}"'
            request.ok = (200, 206, 416)
            return self.transport.perform(request, lambda r: read_range(r, dest, start, etag_of))

        return read_pinned(buf, offset, if_match, fetch, self.stats, "GetBlob")

    def list_page(
        self,
        bucket: str,
        prefix: str,
        *,
        delimiter: str | None = "/",
        token: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage:
        request = Request("ListBlobs", "GET", f"/{_q(bucket)}", f"az://{bucket}")
        request.query += [("comp", "list"), ("maxresults", str(max_keys))]
        request.query += [("prefix", _q(prefix)), ("restype", "container")]
        if delimiter:
            request.query.append(("delimiter", _q(delimiter)))
        if token:
            request.query.append(("marker", _q(token)))
        return self.transport.perform(request, lambda r: _list_page(r.read()))

    # -- writes ---------------------------------------------------------------------------

    def put_object(
        self, bucket: str, key: str, body: Body, *, metadata: Mapping[str, str] | None = None
    ) -> str:
        request = Request("PutBlob", "PUT", _path(bucket, key), _url(bucket, key), body=body)
        request.headers.update(_metadata_headers(metadata))
        request.headers["x-ms-blob-type"] = "BlockBlob"
        request.ok = (201,)
        return self.transport.perform(request, etag_header)

    def create_multipart_upload(
        self, bucket: str, key: str, *, metadata: Mapping[str, str] | None = None
    ) -> str:
        upload_id = uuid.uuid4().hex  # blocks need no session: the id only names the commit
        with self._lock:
            self._uploads[upload_id] = dict(metadata or {})
        return upload_id

    def upload_part(
        self, bucket: str, key: str, upload_id: str, part_number: int, body: Body
    ) -> str:
        block_id = base64.b64encode(f"{part_number:08d}".encode()).decode()
        request = Request("PutBlock", "PUT", _path(bucket, key), _url(bucket, key), body=body)
        request.query += [("blockid", _q(block_id)), ("comp", "block")]
        request.ok = (201,)
        self.transport.perform(request, drain)
        return block_id

    def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> str:
        with self._lock:
            metadata = self._uploads.get(upload_id, {})
        ids = "".join(f"<Latest>{block}</Latest>" for _, block in sorted(parts))
        body = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{ids}</BlockList>'.encode()
        request = Request("PutBlockList", "PUT", _path(bucket, key), _url(bucket, key), body=body)
        request.query.append(("comp", "blocklist"))
        request.headers.update(_metadata_headers(metadata))
        request.headers["Content-Type"] = "application/xml"
        request.ok = (201,)
        etag = self.transport.perform(request, etag_header)
        with self._lock:
            self._uploads.pop(upload_id, None)
        return etag

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        with self._lock:
            self._uploads.pop(upload_id, None)  # uncommitted blocks expire by themselves

    def copy_object(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> str:
        source = self.account.endpoint + _path(src_bucket, src_key)
        if self.account.sas:
            source += "?" + self.account.sas
        request = Request("CopyBlob", "PUT", _path(dst_bucket, dst_key), _url(dst_bucket, dst_key))
        request.headers["x-ms-copy-source"] = source
        request.ok = (202,)
        status, etag = self.transport.perform(
            request, lambda r: (r.read(), r.getheader("x-ms-copy-status", ""), etag_of(r))[1:]
        )
        while status == "pending":
            time.sleep(COPY_POLL_SECONDS)
            probe = Request(
                "GetBlobProperties", "HEAD", _path(dst_bucket, dst_key), _url(dst_bucket, dst_key)
            )
            status, etag = self.transport.perform(
                probe, lambda r: (r.read(), r.getheader("x-ms-copy-status", ""), etag_of(r))[1:]
            )
        if status != "success":
            raise AzureError(
                0, "CopyFailed", f"copy status {status!r}", resource=_url(dst_bucket, dst_key)
            )
        return etag

    def delete_object(self, bucket: str, key: str) -> None:
        request = Request("DeleteBlob", "DELETE", _path(bucket, key), _url(bucket, key))
        request.ok = (202,)
        with contextlib.suppress(AzureNotFound):  # already gone: delete is idempotent
            self.transport.perform(request, drain)

    def delete_objects(self, bucket: str, keys: Sequence[str]) -> None:
        for key in keys:
            self.delete_object(bucket, key)

    # -- internals ------------------------------------------------------------------------

    def _authorize(self, request: Request, query: str, headers: dict[str, str]) -> str:
        headers["x-ms-date"] = email.utils.formatdate(usegmt=True)
        headers["x-ms-version"] = API_VERSION
        if self.account.sas:
            return f"{query}&{self.account.sas}" if query else self.account.sas
        if self.account.key is not None:
            headers["Authorization"] = shared_key_signature(
                self.account.name,
                self.account.key,
                request.method,
                self.transport.endpoint.base_path + request.path,
                request.query,
                headers,
            )
        elif self._identity is not None:
            headers["Authorization"] = f"Bearer {self._identity.token()}"
        return query

    def _error_from(
        self, request: Request, resp: http.client.HTTPResponse, body: bytes
    ) -> StoreError:
        code = resp.getheader("x-ms-error-code", "")
        message = resp.reason
        with contextlib.suppress(ET.ParseError, ValueError):
            root = ET.fromstring(body) if body.strip() else None
            if root is not None:
                code = code or root.findtext("Code", "")
                message = (root.findtext("Message") or message).split("\n", 1)[0]
        return error_for(
            resp.status,
            code,
            message,
            request_id=resp.getheader("x-ms-request-id"),
            resource=request.resource,
        )


def _q(text: str) -> str:
    return quote(text, safe="")


def _path(bucket: str, key: str) -> str:
    return f"/{_q(bucket)}/{quote(key, safe='/')}"


def _url(bucket: str, key: str) -> str:
    return f"az://{bucket}/{key}"


def _metadata_headers(metadata: Mapping[str, str] | None) -> dict[str, str]:
    return {f"x-ms-meta-{name.lower()}": str(value) for name, value in (metadata or {}).items()}


def _list_page(body: bytes) -> ListPage:
    root = ET.fromstring(body)
    blobs = root.find("Blobs")
    objects, prefixes = [], []
    for element in blobs if blobs is not None else []:
        name = element.findtext("Name", "")
        if element.tag == "BlobPrefix":
            prefixes.append(name)
        elif element.tag == "Blob":
            props = element.find("Properties")
            if props is None:
                props = ET.Element("Properties")
            modified = props.findtext("Last-Modified", "")
            objects.append(
                ObjectInfo(
                    key=name,
                    size=int(props.findtext("Content-Length") or 0),
                    etag=strip_etag(props.findtext("Etag", "")),
                    last_modified_ns=http_date_ns(modified) if modified else 0,
                )
            )
    objects.sort(key=lambda info: info.key)
    return ListPage(objects, sorted(prefixes), root.findtext("NextMarker") or None)
