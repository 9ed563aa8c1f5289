"""`/v2/wt/<token>/<name>/manifests|blobs/<reference>` and `tags/list`: the augmented image a
Wave API token names, served by the registry's handlers. The token in the path is the
authorisation; answers are OCI errors, since the clients are container runtimes."""

from __future__ import annotations

import re

from aiohttp import web

from wave_proxy.api.handlers import SERVICE
from wave_proxy.api.request import RequestError
from wave_proxy.api.service import TokenProblem
from wave_proxy.failures import RegistryError
from wave_proxy.server.handlers import manifest
from wave_proxy.server.shared_blobs import blob

_REGISTRY_PATH = re.compile(
    r"^(?P<name>.+)/(?:(?P<kind>manifests|blobs)/(?P<reference>[^/]+)|(?P<tags>tags/list))$"
)


async def token_registry(request: web.Request) -> web.StreamResponse:
    if request.method not in ("GET", "HEAD"):
        raise RegistryError(405, "UNSUPPORTED", f"{request.method} is not supported")
    service = request.app[SERVICE]
    token = request.match_info["token"]
    try:
        record = await service.lookup(token)
    except TokenProblem as exc:
        raise RegistryError(
            404 if exc.code == "NAME_UNKNOWN" else 403, exc.code, str(exc)
        ) from None
    match = _REGISTRY_PATH.match(request.match_info["path"])
    if not match:
        raise RegistryError(
            404, "UNSUPPORTED", "use /v2/wt/<token>/<name>/manifests|blobs/<reference>"
        )
    if match["name"] != record.repository:
        raise RegistryError(
            404,
            "NAME_UNKNOWN",
            f"container token {token} was issued for {record.repository}, not {match['name']}",
        )
    name = record.name
    if match["tags"]:  # what the token exposes (skopeo inspect lists tags)
        return web.json_response({"name": record.repository, "tags": [record.tag or "latest"]})
    if match["kind"] == "manifests":
        return await manifest(request, name, match["reference"], service.augmenter_for(record))
    digest = match["reference"]
    if any(layer.digest == digest for layer in record.layers):
        try:
            available = await service.resolver.ensure_local(digest)
        except RequestError as exc:  # its URL no longer serves what was verified
            raise RegistryError(502, "BLOB_UNKNOWN", f"appended layer {digest}: {exc}") from None
        if not available:
            raise RegistryError(
                404, "BLOB_UNKNOWN", f"appended layer {digest} is not available on this replica"
            )
    return await blob(request, name, digest)
