"""Blob requests: appended layers and produced configs from our stores, upstream blobs from
the cache or streamed through (filling the cache), with Range and identical HEAD answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from wave_proxy import metrics
from wave_proxy.image.digest import parse_digest
from wave_proxy.image.reference import ImageName
from wave_proxy.server.keys import AUGMENTER, BLOB_CACHE, BLOB_SOURCE, BLOBS, CACHE_VERIFIER
from wave_proxy.server.ranges import Unsatisfiable, parse_range
from wave_proxy.store.blobcache import BlobCache, CacheWriter, FillBrokenOff
from wave_proxy.upstream.client import BlobResponse

log = logging.getLogger(__name__)

CHUNK = 256 << 10
OCTET_STREAM = "application/octet-stream"


async def blob(request: web.Request, name: ImageName, digest: str) -> web.StreamResponse:
    """Appended layers from the blob store; configs we produced and upstream blobs cached
    earlier, when linked to this repository; the rest streamed from upstream (or a redirect to
    where upstream keeps it)."""
    parse_digest(digest)
    blobs = request.app[BLOBS]
    cache = request.app.get(BLOB_CACHE)
    request[BLOB_SOURCE] = "local"
    if (size := blobs.size(digest)) is not None:
        return await serve_local(request, digest, size, OCTET_STREAM, blobs.path(digest))
    augmenter = request.app[AUGMENTER]
    if await augmenter.is_linked(name, digest):
        if (document := await augmenter.store.get_document(digest)) is not None:
            body = document.body
            return await serve_local(request, digest, len(body), document.media_type, body)
        if (hit := await from_cache(request, digest)) is not None:
            return hit
    request[BLOB_SOURCE] = "upstream"
    if cache is not None:
        metrics.BLOB_CACHE_REQUESTS.labels("miss").inc()
    return await relay_upstream(request, name, digest)


async def from_cache(request: web.Request, digest: str) -> web.StreamResponse | None:
    """Served from the blob cache or a fill in progress; None when the cache lacks it."""
    cache = request.app.get(BLOB_CACHE)
    if cache is None:
        return None
    request[BLOB_SOURCE] = "cache"
    if (hit := cache.lookup(digest)) is not None:
        metrics.BLOB_CACHE_REQUESTS.labels("hit").inc()
        path, size = hit
        if request.method == "GET":  # damage served is found and dropped before a retry
            request.app[CACHE_VERIFIER].recheck_soon(digest)  # tracked before a byte is sent
        return await serve_local(request, digest, size, OCTET_STREAM, path)
    if (fill := cache.filling(digest)) is not None:
        metrics.BLOB_CACHE_REQUESTS.labels("hit").inc()
        return await serve_local(request, digest, fill.size, OCTET_STREAM, fill)
    return None


def blob_headers(digest: str) -> dict[str, str]:
    return {"Docker-Content-Digest": digest, "ETag": f'"{digest}"', "Accept-Ranges": "bytes"}


async def serve_local(
    request: web.Request,
    digest: str,
    size: int,
    content_type: str,
    source: bytes | Path | CacheWriter,
) -> web.StreamResponse:
    """Serve bytes, a file we hold (with sendfile) or a cache fill in progress, honouring
    Range."""
    headers = blob_headers(digest)
    try:
        spec = parse_range(request.headers.get("Range"))
        byte_range = spec.resolve(size) if spec else None
    except Unsatisfiable:
        return _unsatisfiable(headers, f"bytes */{size}")
    response = web.StreamResponse(status=206 if byte_range else 200, headers=headers)
    start, length = 0, size
    if byte_range:
        start, length = byte_range.start, byte_range.length
        response.headers["Content-Range"] = byte_range.content_range(size)
    response.content_type = content_type
    response.content_length = length
    await response.prepare(request)
    if request.method == "GET" and length:
        if isinstance(source, bytes):
            await response.write(source[start : start + length])
        elif isinstance(source, Path):
            await _send_file(request, response, source, start, length)
        elif not await _follow(response, source, start, length):
            return response
    await response.write_eof()
    return response


async def _send_file(
    request: web.Request, response: web.StreamResponse, path: Path, start: int, length: int
) -> None:
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("client went away")
    with path.open("rb") as f:
        try:
            await asyncio.get_running_loop().sendfile(transport, f, start, length)
        except NotImplementedError:  # transports without sendfile (TLS): copy in chunks
            f.seek(start)
            while length > 0:
                chunk = await asyncio.to_thread(f.read, min(CHUNK * 4, length))
                if not chunk:
                    raise OSError(f"blob {path.name} is shorter than recorded") from None
                length -= len(chunk)
                await response.write(chunk)


async def _follow(response: web.StreamResponse, fill: CacheWriter, start: int, length: int) -> bool:
    """Stream a blob another request is downloading; False if that download broke off."""
    try:
        async for chunk in fill.follow(start, length):
            await response.write(chunk)
    except FillBrokenOff as exc:
        log.warning("%s; cutting the connection so the client retries", exc)
        response.force_close()
        return False
    return True


def _unsatisfiable(headers: dict[str, str], content_range: str) -> web.Response:
    return web.Response(status=416, headers={**headers, "Content-Range": content_range})


# Told once how a relay ended: the cache commit of a whole fill (True when verified and kept),
# or None when nothing was filled. The fleet publishes what was kept to the shared blob store.
FillOutcome = Callable[["asyncio.Future[bool] | None"], None]


async def relay_upstream(
    request: web.Request, name: ImageName, digest: str, outcome: FillOutcome | None = None
) -> web.StreamResponse:
    """Stream a blob from upstream, filling the cache with a plain GET's body."""
    outcome = outcome or (lambda _committed: None)
    raw_range = request.headers.get("Range")
    try:
        client = request.app[AUGMENTER].registries.get(name.registry)
        try:
            spec = parse_range(raw_range)
            forward = spec.header() if spec else None
        except Unsatisfiable:
            forward = raw_range  # upstream knows the size and answers 416 itself
        upstream = await client.open_blob(request.method, name.repository, digest, forward)
    except BaseException:
        outcome(None)
        raise
    if upstream.redirect is not None:
        # Where upstream keeps the blob (a CDN): the client fetches it without our credentials.
        redirect = web.Response(
            status=307, headers={"Location": upstream.redirect, "Docker-Content-Digest": digest}
        )
        redirect.force_close()
        outcome(None)
        return redirect
    source = upstream.response
    assert source is not None
    filling = False
    try:
        headers = blob_headers(digest)
        if source.status == 416:
            return _unsatisfiable(headers, source.headers.get("Content-Range", "bytes */*"))
        await request.app[AUGMENTER].link_blob(name, digest)
        if content_range := source.headers.get("Content-Range"):
            headers["Content-Range"] = content_range
        response = web.StreamResponse(status=source.status, headers=headers)
        response.content_type = source.headers.get("Content-Type", OCTET_STREAM)
        if source.content_length is not None:
            response.content_length = source.content_length
        await response.prepare(request)
        if request.method != "GET":
            await response.write_eof()
            return response
        cache = request.app.get(BLOB_CACHE)
        writer = None
        if cache is not None and source.status == 200 and source.content_length is not None:
            writer = cache.writer(digest, source.content_length)
        if cache is None or writer is None:
            await _stream(source, response, None, digest)
            return response
        # The fill owns the upstream response from here, and runs on even if this request is
        # cancelled (its client gone): followers and the next pull need the whole blob.
        fill = asyncio.ensure_future(
            _stream_and_fill(upstream, response, cache, writer, digest, outcome)
        )
        filling = True
        cache.track(fill)
        await asyncio.shield(fill)
        return response
    finally:
        if not filling:
            upstream.release()
            outcome(None)


async def _stream_and_fill(
    upstream: BlobResponse,
    response: web.StreamResponse,
    cache: BlobCache,
    writer: CacheWriter,
    digest: str,
    outcome: FillOutcome,
) -> None:
    """Stream to the client while filling the cache; publish the blob only if it is whole."""
    assert upstream.response is not None
    try:
        if await _stream(upstream.response, response, writer, digest):
            outcome(cache.commit_soon(writer))
            return
        writer.abort()
        outcome(None)
    except BaseException:
        writer.abort()
        outcome(None)
        raise
    finally:
        upstream.release()


async def _stream(
    source: aiohttp.ClientResponse,
    response: web.StreamResponse,
    writer: CacheWriter | None,
    digest: str,
) -> bool:
    """Copy the upstream body to the client and the cache; True when upstream sent it all.

    A client that goes away mid-blob does not stop a cache fill: requests following it and the
    next pull need the whole blob.
    """
    client_gone = False
    try:
        async for chunk in source.content.iter_any():  # as it arrives: no re-chunking copies
            if writer is not None:
                writer.write(chunk)
            if not client_gone:
                try:
                    await response.write(chunk)
                except ConnectionResetError:
                    if writer is None:
                        raise
                    client_gone = True
    except ConnectionResetError:
        raise  # our client left and nothing else needs the rest
    except (aiohttp.ClientError, TimeoutError) as exc:
        # Headers are sent: all we can do is cut the connection, so the client sees a short
        # body and resumes with Range.
        log.warning("upstream blob %s broke off mid-stream: %s", digest, exc)
        response.force_close()
        return False
    if not client_gone:
        await response.write_eof()
    return True
