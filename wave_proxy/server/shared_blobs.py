"""Blob requests of a replica in a fleet (`--blob-store`): blobs come from the shared store,
and a cold upstream blob is fetched once per fleet.

- In the store: a 307 to a presigned URL (`--blob-redirect`), else streamed with Range; HEAD
  answers from the store. The local blob cache, when on, serves warm blobs first (streaming).
- Cold: the replica that wins the blob's lease relays it from upstream, filling its local cache
  as it streams; once the fill is verified it uploads it and only then lets the lease go. The
  other replicas wait for the object to appear; if the filler dies its lease expires and a
  waiter takes over. Clients see a delay, never an error.
- Store down: relayed from upstream as without a fleet (degraded, see wave_proxy/store/fleet).
- Leases down (Redis): each replica fetches for itself, as a single machine does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from aiohttp import web

from wave_proxy import metrics
from wave_proxy.image.digest import parse_digest
from wave_proxy.image.reference import ImageName
from wave_proxy.server import blobs
from wave_proxy.server.blobs import OCTET_STREAM, blob_headers, relay_upstream, serve_local
from wave_proxy.server.keys import AUGMENTER, BLOB_CACHE, BLOB_SOURCE, BLOBS, FLEET
from wave_proxy.server.ranges import Unsatisfiable, parse_range
from wave_proxy.store.fleet import Fleet
from wave_proxy.store.leases import LEASE_SECONDS, LeaseUnavailable, holding
from wave_proxy.store.shared import BlobStoreUnavailable

log = logging.getLogger(__name__)

WAIT_POLL = 0.25  # seconds between looks at the store while another replica fills
WAIT_LIMIT = 900.0  # then fetch it ourselves: a filler that renews but never finishes


async def blob(request: web.Request, name: ImageName, digest: str) -> web.StreamResponse:
    """The registry's blob answer, through the fleet's store when there is one."""
    fleet = request.app.get(FLEET)
    if fleet is None:
        return await blobs.blob(request, name, digest)
    parse_digest(digest)
    local = request.app[BLOBS]
    augmenter = request.app[AUGMENTER]
    request[BLOB_SOURCE] = "local"
    if (size := local.size(digest)) is not None:  # an appended layer
        if fleet.redirect and await fleet.publish(digest, local.path(digest)):
            return await _from_store(request, fleet, digest, size)
        fleet.publish_soon(digest, local.path(digest))  # e.g. a Wave API layer, new here
        return await serve_local(request, digest, size, OCTET_STREAM, local.path(digest))
    linked = await augmenter.is_linked(name, digest)
    if linked:
        # Blobs before documents: a layer then needs no metadata store (Redis) round trip, so
        # images this replica served keep pulling by digest while Redis is away.
        if not fleet.redirect and (hit := await blobs.from_cache(request, digest)) is not None:
            return hit
        if (stored := await fleet.size(digest)) is not None:
            return await _from_store(request, fleet, digest, stored)
        if (document := await augmenter.store.get_document(digest)) is not None:
            body = document.body
            return await serve_local(request, digest, len(body), document.media_type, body)
        hit = _cached(request, digest) if fleet.redirect else None
        if hit is not None and await fleet.publish(digest, hit):  # filled while S3 was down
            return await _from_store(request, fleet, digest, hit.stat().st_size)
    cache = request.app.get(BLOB_CACHE)
    if request.method == "GET" and cache is not None and fleet.healthy:
        return await _fill_once(request, fleet, name, digest)
    request[BLOB_SOURCE] = "upstream"
    return await relay_upstream(request, name, digest)


def _cached(request: web.Request, digest: str) -> Path | None:
    cache = request.app.get(BLOB_CACHE)
    hit = cache.lookup(digest) if cache is not None else None
    return hit[0] if hit is not None else None


async def _from_store(
    request: web.Request, fleet: Fleet, digest: str, size: int
) -> web.StreamResponse:
    request[BLOB_SOURCE] = "store"
    if fleet.redirect and request.method == "GET":
        try:
            url = await fleet.store.url(digest)
        except BlobStoreUnavailable as exc:
            fleet.failed(exc)
            url = None
        if url is not None:
            headers = {"Location": url, "Docker-Content-Digest": digest}
            return web.Response(status=307, headers=headers)
    headers = blob_headers(digest)
    try:
        spec = parse_range(request.headers.get("Range"))
        byte_range = spec.resolve(size) if spec else None
    except Unsatisfiable:
        return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    response = web.StreamResponse(status=206 if byte_range else 200, headers=headers)
    start, length = 0, size
    if byte_range:
        start, length = byte_range.start, byte_range.length
        response.headers["Content-Range"] = byte_range.content_range(size)
    response.content_type = OCTET_STREAM
    response.content_length = length
    await response.prepare(request)
    if request.method == "GET":
        try:
            async for chunk in fleet.store.read(digest, start, length):
                await response.write(chunk)
        except BlobStoreUnavailable as exc:
            fleet.failed(exc)
            log.warning("%s; cutting the connection so the client retries", exc)
            response.force_close()
            return response
    await response.write_eof()
    return response


async def _fill_once(
    request: web.Request, fleet: Fleet, name: ImageName, digest: str
) -> web.StreamResponse:
    """Fetch a cold blob from upstream once per fleet: fill it, or wait for whoever does."""
    lease = f"fill:{digest}"
    role = "filled"
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        try:
            token = await fleet.leases.acquire(lease, LEASE_SECONDS)
        except LeaseUnavailable as exc:
            log.warning("fetching %s without a lease: %s", digest, exc)
            metrics.FLEET_FILLS.labels("unleased").inc()
            request[BLOB_SOURCE] = "upstream"
            return await relay_upstream(request, name, digest)
        if token is not None:
            break
        role = "took_over"
        if (stored := await _wait_for_fill(fleet, lease, digest, deadline)) is not None:
            metrics.FLEET_FILLS.labels("waited").inc()
            if await request.app[AUGMENTER].is_linked(name, digest):
                return await _from_store(request, fleet, digest, stored)
            break  # filled for another repository: upstream decides whether this one has it
        if time.monotonic() > deadline or not fleet.healthy:
            break
    if token is None:
        request[BLOB_SOURCE] = "upstream"
        return await relay_upstream(request, name, digest)
    metrics.FLEET_FILLS.labels(role).inc()
    return await _fill(request, fleet, name, digest, lease, token)


async def _wait_for_fill(fleet: Fleet, lease: str, digest: str, deadline: float) -> int | None:
    """The blob's size once another replica stored it; None when its lease ended without it.
    The filler lets go only once the object is whole, so the store is asked only then."""
    while time.monotonic() < deadline and fleet.healthy:
        await asyncio.sleep(WAIT_POLL)
        try:
            if not await fleet.leases.held(lease):
                return await fleet.size(digest)
        except LeaseUnavailable:
            return None
    return None


async def _fill(
    request: web.Request, fleet: Fleet, name: ImageName, digest: str, lease: str, token: str
) -> web.StreamResponse:
    """Relay from upstream holding the lease; publish the verified fill, then let go."""
    request[BLOB_SOURCE] = "upstream"
    outcome: asyncio.Future[asyncio.Future[bool] | None] = (
        asyncio.get_running_loop().create_future()
    )

    async def publish() -> None:
        async with holding(fleet.leases, lease, token):
            committed = await outcome
            if committed is not None:
                await committed
            if (cached := _cached(request, digest)) is not None:
                await fleet.publish(digest, cached)

    publishing = asyncio.ensure_future(publish())
    request.app[BLOB_CACHE].track(publishing)
    return await relay_upstream(
        request, name, digest, lambda committed: outcome.done() or outcome.set_result(committed)
    )
