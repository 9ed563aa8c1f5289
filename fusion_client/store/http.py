"""HTTP pieces every store's transport shares: sending bodies (bytes or file ranges), reading
ranged GET bodies straight into the caller's buffer, one request/response exchange on the
keep-alive pools of pool.py, and a retrying request loop around it for the JSON/XML stores (GCS,
Azure; S3 keeps its own loop for re-signing). Authentication and error parsing stay with each
store; this module only moves bytes and decides when to try again."""

from __future__ import annotations

import functools
import http.client
import json
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

from fusion_client.log import get_logger

from .endpoints import Endpoint, RetryPolicy
from .errors import StoreError, StoreUnavailable, Throttled
from .model import Body, FileRange, ObjectInfo, StoreStats, http_date_ns, strip_etag
from .pool import ConnectionPool, PoolManager

log = get_logger("store")

T = TypeVar("T")
TRANSPORT_ERRORS = (OSError, http.client.HTTPException)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class ShortBody(Exception):
    """The connection ended mid-body after `count` bytes arrived (resume from there)."""

    def __init__(self, count: int, version: str) -> None:
        super().__init__(count)
        self.count = count
        self.version = version


def body_length(body: Body | None) -> int:
    if body is None:
        return 0
    if isinstance(body, FileRange):
        return body.length
    return memoryview(body).nbytes


def send_body(conn: http.client.HTTPConnection, body: Body | None) -> None:
    if body is None:
        conn.endheaders()
    elif isinstance(body, FileRange):
        conn.endheaders()
        for chunk in body.chunks():
            conn.send(chunk)
    elif len(body) <= 65536:
        conn.endheaders(bytes(body))  # one segment with the headers
    else:
        conn.endheaders()
        conn.send(memoryview(body))


def read_range(
    resp: http.client.HTTPResponse,
    dest: memoryview,
    start: int,
    version_of: Callable[[http.client.HTTPResponse], str],
) -> tuple[int, str]:
    """Read a ranged GET's body into `dest`; (count, version of the object that answered).
    A body cut short raises a transport error when nothing arrived (retried) or ShortBody
    (resumed by the caller)."""
    if resp.status == 416:  # range starts at or past the end: EOF
        resp.read()
        return 0, ""
    version = version_of(resp)
    if resp.status == 206:
        match = _CONTENT_RANGE.match(resp.getheader("Content-Range", ""))
        if match is None or int(match.group(1)) != start:
            raise StoreError(
                0, "MalformedResponse", f"bad Content-Range {resp.getheader('Content-Range')!r}"
            )
        expected = int(match.group(2)) - start + 1
    elif start == 0:  # a server that ignores Range sends the whole object
        expected = int(resp.getheader("Content-Length", "0"))
    else:
        raise StoreError(0, "RangeIgnored", "server answered a ranged GET with the whole object")
    expected = min(expected, len(dest))
    got = 0
    while got < expected:
        try:
            n = resp.readinto(dest[got:expected])
        except TRANSPORT_ERRORS:
            if got == 0:
                raise
            n = 0
        if not n:
            break
        got += n
    if got < expected:
        if got == 0:
            raise http.client.IncompleteRead(b"", expected)
        raise ShortBody(got, version)
    return got, version


def byte_view(buf: memoryview) -> memoryview:
    """`buf` as a flat view of bytes, for the ranged reads below."""
    view = memoryview(buf)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def read_pinned(
    buf: memoryview,
    offset: int,
    version: str | None,
    fetch: Callable[[int, memoryview, str | None], tuple[int, str]],
    stats: StoreStats,
    op: str,
) -> int:
    """Fill `buf` with the object's bytes from `offset`; return how many arrived (fewer only
    at the end of the object). `fetch(start, dest, version)` performs one ranged GET of
    [start, start+len(dest)) into `dest`, conditional on `version` when set, through
    read_range(). A body cut short is resumed where it stopped, and the version the first
    response named pins every later request, so one call never mixes versions."""
    view = byte_view(buf)
    done = 0
    while done < len(view):
        dest = view[done:]
        try:
            count, seen = fetch(offset + done, dest, version)
        except ShortBody as short:
            log.debug("%s: body cut after %d bytes, resuming", op, short.count)
            done += short.count
            stats.add(received=short.count)
            version = version or short.version or None
            stats.retried(op)
            continue
        done += count
        stats.add(received=count)
        if count < len(dest):
            break  # end of object
        version = version or seen or None
    return done


@dataclass(slots=True)
class Request:
    op: str  # what the request does, for retry counters and messages (e.g. "GetObject")
    method: str
    path: str  # encoded, from the endpoint's root
    resource: str  # e.g. gs://bucket/key, for messages
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: Body | None = None
    ok: tuple[int, ...] = (200,)


Authorize = Callable[[Request, str, dict[str, str]], str]
"""Add credentials to a request: given it, its encoded query string and its headers (to be
completed in place), return the query string to send (a SAS token rides in the query)."""

ErrorFrom = Callable[[Request, http.client.HTTPResponse, bytes], StoreError]
"""Turn an unexpected response (status, headers, up to 64 KiB of body) into a store error."""


class HttpTransport:
    """Requests to one endpoint with keep-alive pooling and retries: 408, 429 and 5xx answers,
    connection errors and timeouts are retried with exponential backoff and full jitter; a
    request that failed on a reused connection before any answer is resent at once."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        authorize: Authorize,
        error_from: ErrorFrom,
        unavailable: Callable[[str, str], StoreError],
        stats: StoreStats,
        retry: RetryPolicy,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        max_connections: int = 64,
        ca_bundle: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.retry = retry
        self.stats = stats
        self._authorize = authorize
        self._error_from = error_from
        self._unavailable = unavailable
        self._pools = PoolManager(
            max_connections=max_connections,
            timeout=timeout,
            connect_timeout=connect_timeout,
            ca_bundle=ca_bundle,
        )

    def close(self) -> None:
        self._pools.close()

    def perform(
        self,
        request: Request,
        read: Callable[[http.client.HTTPResponse], T],
        *,
        attempts: int | None = None,
    ) -> T:
        """Send `request` until it gets an `ok` status (then return `read(response)`) or fails
        for good (then raise the store's error). `attempts` overrides the retry policy's; with
        attempts=1 not even a stale keep-alive connection is retried (the caller resumes)."""
        limit = attempts or self.retry.max_attempts
        failures = 0
        fresh_resend = limit > 1
        while True:
            try:
                return self._attempt(request, read)
            except StaleConnection:
                if fresh_resend:
                    fresh_resend = False
                    continue
                error = self._unavailable(
                    f"{request.op}: connection closed by the server", request.resource
                )
            except ssl.SSLCertVerificationError as exc:
                raise self._unavailable(f"{request.op}: {exc}", request.resource) from exc
            except StoreError as exc:
                if not is_retriable(exc):
                    raise
                error = exc
            except TRANSPORT_ERRORS as exc:
                error = self._unavailable(
                    f"{request.op}: {type(exc).__name__}: {exc}".rstrip(": "), request.resource
                )
                error.__cause__ = exc
            failures += 1
            if failures >= limit:
                raise error
            self.stats.retried(request.op)
            delay = self.retry.delay(failures)
            log.info("retrying %s %s in %.2fs: %s", request.op, request.resource, delay, error)
            time.sleep(delay)

    def _attempt(self, request: Request, read: Callable[[http.client.HTTPResponse], T]) -> T:
        headers = {"Host": self.endpoint.host_header, **request.headers}
        if request.body is not None or request.method in ("PUT", "POST"):
            headers["Content-Length"] = str(body_length(request.body))
        query = "&".join(f"{name}={value}" for name, value in request.query)
        query = self._authorize(request, query, headers)
        url = self.endpoint.base_path + request.path + ("?" + query if query else "")
        pool = self._pools.pool(self.endpoint)
        error_from = functools.partial(self._error_from, request)
        return exchange(pool, request, url, headers, read, error_from, self.stats)


class Outgoing(Protocol):
    """What exchange() needs of a store's request record (Request here, S3's own _Call)."""

    method: str
    body: Body | None
    ok: tuple[int, ...]


def exchange(
    pool: ConnectionPool,
    request: Outgoing,
    url: str,
    headers: dict[str, str],
    read: Callable[[http.client.HTTPResponse], T],
    error_from: Callable[[http.client.HTTPResponse, bytes], StoreError],
    stats: StoreStats,
) -> T:
    """Send `request` once on a pooled connection, `headers` complete (signed): return
    `read(response)` when its status is in `request.ok`, else raise `error_from(response, up
    to 64 KiB of its body)`. StaleConnection: a reused connection failed before any answer."""
    conn, reused = pool.acquire()
    reusable = responded = False
    try:
        conn.putrequest(request.method, url, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        send_body(conn, request.body)
        resp = conn.getresponse()
        responded = True
        stats.add(requests=1, sent=body_length(request.body))
        error: StoreError | None = None
        if resp.status in request.ok:
            result = read(resp)
        else:
            data = resp.read(65536)
            if not resp.isclosed():
                resp.read(1)  # a huge error body: give up on this connection
            stats.add(received=len(data))
            error = error_from(resp, data)
        reusable = resp.isclosed() and not resp.will_close
        if error is not None:
            raise error
        return result
    except TRANSPORT_ERRORS as exc:
        if reused and not responded:
            raise StaleConnection() from exc
        raise
    finally:
        pool.release(conn, reusable=reusable)


def fetch_json(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 10.0,
) -> tuple[int, object]:
    """One request for a credential flow (token endpoints, metadata services): (status, the
    decoded JSON body or None). Never through a proxy; raises OSError/HTTPException on
    transport failures."""
    parts = urlsplit(url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    conn = connection_class(parts.hostname or "", parts.port, timeout=timeout)
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(data) if data.strip() else None
    except ValueError:
        return resp.status, None


def is_retriable(error: StoreError) -> bool:
    return (
        error.status >= 500
        or error.status in (408, 429)
        or isinstance(error, StoreUnavailable | Throttled)
    )


class StaleConnection(Exception):
    """A reused keep-alive connection failed before any response: resend at once."""


def drain(resp: http.client.HTTPResponse) -> None:
    resp.read()


def etag_of(resp: http.client.HTTPResponse) -> str:
    return strip_etag(resp.getheader("ETag", ""))


def etag_header(resp: http.client.HTTPResponse) -> str:
    resp.read()
    return etag_of(resp)


def header_object_info(key: str, resp: http.client.HTTPResponse, meta_prefix: str) -> ObjectInfo:
    """An object's info from a HEAD answer's headers (S3, Azure): user metadata is every
    header starting with `meta_prefix` (e.g. "x-amz-meta-"), without it."""
    resp.read()
    metadata = {
        name.lower()[len(meta_prefix) :]: value
        for name, value in resp.getheaders()
        if name.lower().startswith(meta_prefix)
    }
    modified = resp.getheader("Last-Modified")
    return ObjectInfo(
        key=key,
        size=int(resp.getheader("Content-Length", "0")),
        etag=etag_of(resp),
        last_modified_ns=http_date_ns(modified) if modified else 0,
        metadata=metadata,
    )
