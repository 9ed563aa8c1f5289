"""Request handlers for `/v2/`, manifests and tag lists; blobs are in blobs.py. GET and HEAD
answer alike."""

from __future__ import annotations

import re

from aiohttp import web

from wave_proxy.augment import Augmenter
from wave_proxy.failures import RegistryError
from wave_proxy.image import mediatypes as mt
from wave_proxy.image.reference import ImageName, route_name
from wave_proxy.server.keys import AUGMENTER
from wave_proxy.server.shared_blobs import blob

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
AUGMENTED_HEADER = "X-Wave-Proxy-Augmented"
_PATH = re.compile(r"^(?P<name>.+)/(?P<kind>manifests|blobs)/(?P<reference>[^/]+)$")


async def version(request: web.Request) -> web.Response:
    _check_method(request)
    return web.json_response({})


async def dispatch(request: web.Request) -> web.StreamResponse:
    _check_method(request)
    path = request.match_info["path"]
    if path.endswith("/tags/list"):
        return await tags(request, path.removesuffix("/tags/list"))
    match = _PATH.match(path)
    if not match:
        raise RegistryError(
            404,
            "UNSUPPORTED",
            "this proxy serves /v2/<name>/manifests|blobs/<reference> and /v2/<name>/tags/list",
        )
    name = route_name(match["name"], request.query.get("ns"))
    if match["kind"] == "manifests":
        return await manifest(request, name, match["reference"])
    return await blob(request, name, match["reference"])


async def tags(request: web.Request, path_name: str) -> web.Response:
    """Upstream's tag list, with the next-page link pointing back at this proxy."""
    name = route_name(path_name, request.query.get("ns"))
    client = request.app[AUGMENTER].registries.get(name.registry)
    body, next_query = await client.list_tags(name.repository, request.query)
    headers = {}
    if next_query is not None:
        ns = f"&ns={request.query['ns']}" if "ns" in request.query else ""
        headers["Link"] = f'</v2/{path_name}/tags/list?{next_query}{ns}>; rel="next"'
    return web.Response(body=body, content_type="application/json", headers=headers)


def _check_method(request: web.Request) -> None:
    if request.method not in ("GET", "HEAD"):
        raise RegistryError(
            405, "UNSUPPORTED", f"{request.method} is not supported: this proxy is pull-only"
        )


async def manifest(
    request: web.Request, name: ImageName, reference: str, augmenter: Augmenter | None = None
) -> web.Response:
    """`augmenter` defaults to the app's (mirror mode); the Wave API passes a token's own."""
    accepted = mt.parse_accept(request.headers.getall("Accept", []))
    served = await (augmenter or request.app[AUGMENTER]).manifest(name, reference, accepted)
    headers = {
        "Docker-Content-Digest": served.digest,
        "ETag": f'"{served.digest}"',
        AUGMENTED_HEADER: "true" if served.augmented else "false",
    }
    if served.media_type in mt.SCHEMA1:
        headers["Warning"] = '299 - "schema1 manifest served unchanged: not augmented"'
    if _etag_matches(request, served.digest):
        return web.Response(status=304, headers=headers)
    return web.Response(body=served.body, content_type=served.media_type, headers=headers)


def _etag_matches(request: web.Request, digest: str) -> bool:
    wanted = request.headers.get("If-None-Match", "")
    return any(tag.strip().strip('"') == digest for tag in wanted.split(",")) if wanted else False
