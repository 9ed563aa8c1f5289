"""`/healthz` (the process answers) and `/readyz` (it should get traffic): for load balancers
and Kubernetes probes, without credentials. Readiness fails, with the reasons in the body, while
draining at shutdown, when the metadata store does not answer, when the data dir is full, or
when an appended layer (the Fusion layers) is missing from the blob store. A replica whose
shared blob store (--blob-store) fails stays ready, since it relays blobs from upstream, but
says it is degraded."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from aiohttp import web

from wave_proxy import metrics
from wave_proxy.server.keys import AUGMENTER, BLOBS, FLEET
from wave_proxy.store.metadata import MetadataStoreError

MIN_FREE_BYTES = 64 << 20  # below this the data dir counts as full: fills and stores would fail
STORE_TIMEOUT = 2.0


@dataclass
class Lifecycle:
    """What the process is doing: `draining` from the stop signal on."""

    draining: bool = False


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
# On the --metrics-listen app: the proxy app whose state it reports.
PROXY = web.AppKey("proxy", web.Application)


def proxy_app(request: web.Request) -> web.Application:
    return request.app.get(PROXY, request.app)


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    problems = await readiness_problems(proxy_app(request))
    metrics.READY.set(0 if problems else 1)
    if problems:
        return web.Response(status=503, text="not ready: " + "; ".join(problems) + "\n")
    fleet = proxy_app(request).get(FLEET)
    if fleet is not None and not fleet.healthy:
        return web.Response(text=f"ready, degraded: blob store unreachable: {fleet.problem}\n")
    return web.Response(text="ready\n")


async def readiness_problems(app: web.Application) -> list[str]:
    if app[LIFECYCLE].draining:
        return ["draining: the proxy is shutting down"]
    if AUGMENTER not in app:
        return ["starting"]
    problems = []
    augmenter = app[AUGMENTER]
    try:
        await asyncio.wait_for(augmenter.store.ping(), STORE_TIMEOUT)
    except (MetadataStoreError, TimeoutError) as exc:
        problems.append(f"metadata store unreachable: {exc or 'no answer'}")
    blobs = app[BLOBS]
    free = await asyncio.to_thread(_free_bytes, blobs.root)
    if free < MIN_FREE_BYTES:
        problems.append(f"data dir full: {free >> 20} MiB free in {blobs.root.parent}")
    missing = [layer.digest for layer in augmenter.layers if blobs.size(layer.digest) is None]
    if missing:
        problems.append(f"appended layers missing from the blob store: {', '.join(missing)}")
    return problems


def _free_bytes(path: os.PathLike[str]) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize
