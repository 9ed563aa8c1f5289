"""The Google Cloud Storage ObjectStore, on the JSON API (fusion_client.store.interface).

- Reads are pinned to a generation (`generation=g&ifGenerationMatch=g`); a pinned generation
  that is gone (404) is reported as a precondition failure: the object changed while open.
- Streamed uploads are resumable uploads: every part is one chunk, sent in order (a part waits
  for the one before it), each a multiple of 256 KiB except the last, which is held back and
  sent with the total size by complete(). A chunk that fails is not resent blindly: the
  session's status is queried and the upload resumes from the first byte GCS does not have.
- Rename is a rewrite loop; deleting a missing object succeeds.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from fusion_client.log import get_logger
from fusion_client.store.endpoints import Endpoint, RetryPolicy
from fusion_client.store.errors import StoreError
from fusion_client.store.http import (
    HttpTransport,
    Request,
    is_retriable,
    read_pinned,
    read_range,
)
from fusion_client.store.model import (
    Body,
    FileRange,
    ListPage,
    ObjectInfo,
    StoreStats,
    iso8601_ns,
)
from fusion_client.store.tokens import TokenSource

from .credentials import default_endpoint, token_source
from .errors import GcsError, GcsNotFound, GcsPreconditionFailed, GcsUnavailable, error_for

log = get_logger("gcs")

CHUNK_ALIGN = 256 * 1024  # non-final resumable chunks are multiples of this


@dataclass
class _Session:
    """One resumable upload: bytes GCS has committed, and the short last part held back."""

    location: str
    committed: int = 0
    held: FileRange | None = None
    failed: bool = False
    condition: threading.Condition = field(default_factory=threading.Condition)


class GcsClient:
    scheme = "gs"
    provider = "gcs"

    def __init__(
        self, endpoint_url: str, tokens: TokenSource | None, *, retry: RetryPolicy | None = None
    ) -> None:
        parts = urlsplit(endpoint_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self._tokens = tokens
        self.stats = StoreStats()
        self.transport = HttpTransport(
            Endpoint(parts.scheme, parts.hostname or "", port, parts.path.rstrip("/")),
            authorize=self._authorize,
            error_from=self._error_from,
            unavailable=lambda message, resource: GcsUnavailable(message, resource=resource),
            stats=self.stats,
            retry=retry or RetryPolicy(),
        )
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> GcsClient:
        retry = RetryPolicy.from_env(environ)
        return cls(default_endpoint(environ), token_source(environ), retry=retry)

    def close(self) -> None:
        self.transport.close()

    # -- reads ----------------------------------------------------------------------------

    def head_bucket(self, bucket: str) -> None:
        request = Request("GetBucket", "GET", f"/storage/v1/b/{_q(bucket)}", f"gs://{bucket}")
        request.query.append(("fields", "name"))
        self.transport.perform(request, _drain)

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        request = Request("GetObjectMetadata", "GET", _object_path(bucket, key), _url(bucket, key))
        return self.transport.perform(request, lambda r: _object_info(json.loads(r.read())))

    def get_range_into(
        self, bucket: str, key: str, offset: int, buf: memoryview, *, if_match: str | None
    ) -> int:
        def fetch(start: int, dest: memoryview, generation: str | None) -> tuple[int, str]:
            request = Request("GetObject", "GET", _object_path(bucket, key), _url(bucket, key))
            request.query.append(("alt", "media"))
            if generation:
                request.query += [("generation", generation), ("ifGenerationMatch", generation)]
            request.headers["Range"] = f"bytes={start}-{start + len(dest) - 1}"
            request.ok = (200, 206, 416)
            try:
                return self.transport.perform(
                    request, lambda r: read_range(r, dest, start, _generation_of)
                )
            except GcsNotFound:
                if not generation:
                    raise
                raise GcsPreconditionFailed(
                    412,
                    "conditionNotMet",
                    f"generation {generation} is gone",
                    resource=_url(bucket, key),
                ) from None

        return read_pinned(buf, offset, if_match, fetch, self.stats, "GetObject")

    def list_page(
        self,
        bucket: str,
        prefix: str,
        *,
        delimiter: str | None = "/",
        token: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage:
        request = Request("ListObjects", "GET", f"/storage/v1/b/{_q(bucket)}/o", f"gs://{bucket}")
        request.query += [("prefix", _q(prefix)), ("maxResults", str(max_keys))]
        if delimiter:
            request.query.append(("delimiter", _q(delimiter)))
        if token:
            request.query.append(("pageToken", _q(token)))
        answer = self.transport.perform(request, lambda r: json.loads(r.read()))
        return ListPage(
            objects=[_object_info(item) for item in answer.get("items", [])],
            prefixes=sorted(answer.get("prefixes", [])),
            next_token=answer.get("nextPageToken") or None,
        )

    # -- writes ---------------------------------------------------------------------------

    def put_object(
        self, bucket: str, key: str, body: Body, *, metadata: Mapping[str, str] | None = None
    ) -> str:
        path = f"/upload/storage/v1/b/{_q(bucket)}/o"
        request = Request("InsertObject", "POST", path, _url(bucket, key), ok=(200, 201))
        request.query += [("name", _q(key))]
        if metadata:  # a multipart body: the metadata JSON, then the (small) content
            data = _body_bytes(body)
            boundary = uuid.uuid4().hex
            head = json.dumps({"name": key, "metadata": dict(metadata)}).encode()
            request.body = (
                f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode()
                + head
                + f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
                + data
                + f"\r\n--{boundary}--".encode()
            )
            request.query.append(("uploadType", "multipart"))
            request.headers["Content-Type"] = f"multipart/related; boundary={boundary}"
        else:
            request.body = body
            request.query.append(("uploadType", "media"))
            request.headers["Content-Type"] = "application/octet-stream"
        return self.transport.perform(request, _generation_in_body)

    def create_multipart_upload(
        self, bucket: str, key: str, *, metadata: Mapping[str, str] | None = None
    ) -> str:
        path = f"/upload/storage/v1/b/{_q(bucket)}/o"
        request = Request("StartResumableUpload", "POST", path, _url(bucket, key))
        request.query += [("uploadType", "resumable"), ("name", _q(key))]
        request.body = json.dumps({"name": key, "metadata": dict(metadata or {})}).encode()
        request.headers["Content-Type"] = "application/json; charset=UTF-8"
        location = self.transport.perform(request, _location)
        with self._lock:
            self._sessions[location] = _Session(location)
        return location

    def upload_part(
        self, bucket: str, key: str, upload_id: str, part_number: int, body: Body
    ) -> str:
        if not isinstance(body, FileRange):
            raise TypeError("GCS resumable uploads send parts from their staging file")
        session = self._session(upload_id)
        with session.condition:
            while session.committed < body.offset and not session.failed:
                session.condition.wait()
            if session.failed:
                raise GcsError(0, "UploadAborted", "an earlier part failed", resource=upload_id)
        try:
            if body.length % CHUNK_ALIGN:  # only the last part is short: sent by complete()
                session.held = body
            else:
                self._send_chunk(session, _url(bucket, key), body, total=None)
        except BaseException:
            with session.condition:
                session.failed = True
                session.condition.notify_all()
            raise
        with session.condition:
            session.condition.notify_all()
        return str(part_number)

    def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> str:
        session = self._session(upload_id)
        held = session.held or FileRange(-1, session.committed, 0)
        total = held.offset + held.length
        answer = self._send_chunk(session, _url(bucket, key), held, total=total)
        with self._lock:
            self._sessions.pop(upload_id, None)
        return str(answer["generation"])

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        with self._lock:
            session = self._sessions.pop(upload_id, None)
        if session is not None:
            with session.condition:
                session.failed = True
                session.condition.notify_all()
        request = self._session_request("CancelResumableUpload", "DELETE", upload_id, bucket, key)
        request.ok = (200, 204, 499)
        try:
            self.transport.perform(request, _drain, attempts=1)
        except StoreError as exc:  # sessions expire by themselves after a week
            log.debug("cancelling the resumable upload of %s: %s", _url(bucket, key), exc)

    def copy_object(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> str:
        target = f"/b/{_q(dst_bucket)}/o/{_q(dst_key)}"
        path = f"{_object_path(src_bucket, src_key)}/rewriteTo{target}"
        token = None
        while True:
            request = Request("RewriteObject", "POST", path, _url(src_bucket, src_key), body=b"")
            if token:
                request.query.append(("rewriteToken", _q(token)))
            answer = self.transport.perform(request, lambda r: json.loads(r.read()))
            if answer.get("done"):
                return str(answer["resource"]["generation"])
            token = answer["rewriteToken"]

    def delete_object(self, bucket: str, key: str) -> None:
        request = Request("DeleteObject", "DELETE", _object_path(bucket, key), _url(bucket, key))
        request.ok = (200, 204)
        with contextlib.suppress(GcsNotFound):  # already gone: delete is idempotent
            self.transport.perform(request, _drain)

    def delete_objects(self, bucket: str, keys: Sequence[str]) -> None:
        for key in keys:
            self.delete_object(bucket, key)

    # -- internals ------------------------------------------------------------------------

    def _session(self, upload_id: str) -> _Session:
        with self._lock:
            session = self._sessions.get(upload_id)
        if session is None:
            raise GcsError(0, "NoSuchUpload", "unknown resumable upload", resource=upload_id)
        return session

    def _session_request(
        self, op: str, method: str, location: str, bucket: str, key: str
    ) -> Request:
        parts = urlsplit(location)
        request = Request(op, method, parts.path, _url(bucket, key))
        base = self.transport.endpoint.base_path
        if base and request.path.startswith(base):
            request.path = request.path[len(base) :]
        request.query = [
            (name, value) for name, _, value in (p.partition("=") for p in parts.query.split("&"))
        ]
        return request

    def _send_chunk(
        self, session: _Session, resource: str, chunk: FileRange, *, total: int | None
    ) -> dict:
        """Send bytes [chunk.offset, end) of the session (the final request when `total` is
        known), resuming from what GCS reports it has after a failure."""
        end = chunk.offset + chunk.length
        policy = self.transport.retry
        failures = 0
        offset = chunk.offset
        bucket, key = resource[5:].split("/", 1)
        while True:
            request = self._session_request("UploadChunk", "PUT", session.location, bucket, key)
            if offset < end:
                request.body = FileRange(chunk.fd, offset, end - offset)
                request.headers["Content-Range"] = f"bytes {offset}-{end - 1}/{total or '*'}"
            else:
                request.body = b""
                request.headers["Content-Range"] = f"bytes */{total}"
            request.ok = (200, 201) if total is not None else (308,)
            try:
                answer = self.transport.perform(request, _json_or_empty, attempts=1)
                with session.condition:
                    session.committed = end
                return answer
            except StoreError as exc:
                if not is_retriable(exc):
                    raise
                failures += 1
                if failures >= policy.max_attempts:
                    raise
                self.stats.retried("UploadChunk")
                time.sleep(policy.delay(failures))
                committed, finished = self._query_status(session, bucket, key)
                if finished is not None:
                    if total is not None:
                        return finished  # the final request had arrived after all
                    # Only emulators finish an upload on a status query (fake-gcs-server):
                    # the session is spent, the uploader starts the object over.
                    raise GcsError(
                        0, "UploadFinished", "the upload ended early", resource=resource
                    ) from exc
                if committed < chunk.offset:
                    raise GcsError(
                        0,
                        "UploadLost",
                        f"GCS holds {committed} bytes, {chunk.offset} were sent",
                        resource=resource,
                    ) from exc
                if total is None and committed >= end:
                    with session.condition:
                        session.committed = end
                    return {}
                offset = committed
                log.info("resuming the upload of %s at byte %d", resource, offset)

    def _query_status(self, session: _Session, bucket: str, key: str) -> tuple[int, dict | None]:
        """(bytes GCS has, the object if the upload is already complete)."""
        request = self._session_request("QueryUpload", "PUT", session.location, bucket, key)
        request.body = b""
        request.headers["Content-Range"] = "bytes */*"
        request.ok = (200, 201, 308)
        status: list[int] = []
        answer = self.transport.perform(request, lambda r: _status_answer(r, status))
        if status[0] in (200, 201):
            return -1, answer
        return int(answer["committed"]), None

    def _authorize(self, request: Request, query: str, headers: dict[str, str]) -> str:
        if self._tokens is not None:
            headers["Authorization"] = f"Bearer {self._tokens.token()}"
        return query

    def _error_from(
        self, request: Request, resp: http.client.HTTPResponse, body: bytes
    ) -> StoreError:
        reason, message = "", resp.reason
        try:
            error = json.loads(body)["error"]
            message = error.get("message", message)
            reason = (error.get("errors") or [{}])[0].get("reason", "")
        except (ValueError, KeyError, TypeError, IndexError):
            message = body[:200].decode(errors="replace").strip() or message
        if resp.status == 401 and self._tokens is not None:
            self._tokens.invalidate()
        return error_for(
            resp.status,
            reason,
            message,
            request_id=resp.getheader("X-GUploader-UploadID"),
            resource=request.resource,
            bucket=request.op in ("GetBucket", "ListObjects"),
        )


def _body_bytes(body: Body) -> bytes:
    if isinstance(body, FileRange):
        return b"".join(bytes(chunk) for chunk in body.chunks())
    return bytes(body)


def _q(text: str) -> str:
    return quote(text, safe="")


def _url(bucket: str, key: str) -> str:
    return f"gs://{bucket}/{key}"


def _object_path(bucket: str, key: str) -> str:
    return f"/storage/v1/b/{_q(bucket)}/o/{_q(key)}"


def _drain(resp: http.client.HTTPResponse) -> None:
    resp.read()


def _json_or_empty(resp: http.client.HTTPResponse) -> dict:
    data = resp.read()
    return json.loads(data) if data.strip() else {}


def _status_answer(resp: http.client.HTTPResponse, status: list[int]) -> dict:
    status.append(resp.status)
    if resp.status == 308:
        resp.read()
        got = resp.getheader("Range", "")  # "bytes=0-N", absent when nothing is committed
        return {"committed": int(got.rsplit("-", 1)[1]) + 1 if got else 0}
    return _json_or_empty(resp)


def _location(resp: http.client.HTTPResponse) -> str:
    resp.read()
    location = resp.getheader("Location")
    if not location:
        raise GcsError(resp.status, "NoSessionUri", "no Location for the resumable upload")
    return location


def _generation_of(resp: http.client.HTTPResponse) -> str:
    return resp.getheader("x-goog-generation", "")


def _generation_in_body(resp: http.client.HTTPResponse) -> str:
    return str(json.loads(resp.read())["generation"])


def _object_info(item: Mapping) -> ObjectInfo:
    updated = item.get("updated")
    return ObjectInfo(
        key=item["name"],
        size=int(item.get("size", 0)),
        etag=str(item.get("generation", "")),
        last_modified_ns=iso8601_ns(updated) if updated else 0,
        metadata={k.lower(): str(v) for k, v in (item.get("metadata") or {}).items()},
    )
