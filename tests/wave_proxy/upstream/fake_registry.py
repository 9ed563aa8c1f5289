"""A scriptable in-process upstream registry that misbehaves on purpose.

The real docker-registry cannot be made to answer 503, 429, malformed JSON, slowly, or redirect
to a CDN on demand; this small aiohttp app can, and it records what its clients sent. Every tag
and digest names the same `manifest`; blobs come from `blobs` (else BLOB).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from wave_proxy.image.digest import sha256_digest
from wave_proxy.upstream.auth import Credentials
from wave_proxy.upstream.client import RetryPolicy

MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
OCI = "application/vnd.oci.image.manifest.v1+json"
BLOB = b"blob content" * 100
FAST = RetryPolicy(attempts=3, first_delay=0.01)


@dataclass
class Script:
    """What the fake registry does; tests set fields, then read what was recorded."""

    auth: str = "bearer"  # bearer | basic | none
    user: Credentials | None = None
    expires_in: int = 300
    failures: list[int] = field(default_factory=list)  # statuses to answer first, in order
    redirect_blobs: bool = False
    manifest: bytes = MANIFEST
    media_type: str = OCI
    digest_header: str = ""  # Docker-Content-Digest of the manifest; "" = its sha256
    blobs: dict[str, bytes] = field(default_factory=dict)
    delay: float = 0.0
    down: bool = False  # answer 503 to everything
    break_blobs: bool = False  # send half a blob, then drop the connection
    slow_blobs: float = 0.0  # seconds between the four parts of a blob body
    not_found_code: str = ""  # OCI error code in 404 bodies
    token_requests: list[dict[str, str]] = field(default_factory=list)
    issued: int = 0
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    cdn_authorization: list[str | None] = field(default_factory=list)


def fake_registry(script: Script, cdn_url: list[str]) -> web.Application:
    async def token(request: web.Request) -> web.Response:
        script.token_requests.append(dict(request.query))
        if script.user and request.headers.get("Authorization") != script.user.basic_header():
            return web.Response(status=401)
        script.issued += 1
        return web.json_response({"token": f"tok-{script.issued}", "expires_in": script.expires_in})

    def authorized(request: web.Request) -> bool:
        header = request.headers.get("Authorization")
        if script.auth == "none":
            return True
        if script.auth == "basic":
            return script.user is not None and header == script.user.basic_header()
        return header == f"Bearer tok-{script.issued}" and script.issued > 0

    def challenge(request: web.Request) -> str:
        if script.auth == "basic":
            return 'Basic realm="fake"'
        realm = f"http://{request.host}/token"
        return f'Bearer realm="{realm}",service="fake",scope="repository:x:pull"'

    async def v2(request: web.Request) -> web.StreamResponse:
        script.seen.append((request.method, request.path, request.headers.get("Authorization")))
        if script.delay:
            await asyncio.sleep(script.delay)
        if script.down:
            return web.Response(status=503)
        if script.failures:
            status = script.failures.pop(0)
            return web.Response(status=status, headers={"Retry-After": "7"})
        if not authorized(request):
            return web.Response(status=401, headers={"WWW-Authenticate": challenge(request)})
        kind, ref = request.match_info["kind"], request.match_info["ref"]
        if ref.endswith("missing"):
            errors = [{"code": script.not_found_code, "message": "unknown"}]
            return web.json_response({"errors": errors}, status=404)
        if kind == "manifests":
            digest = script.digest_header or sha256_digest(script.manifest)
            headers = {"Docker-Content-Digest": digest}
            return web.Response(
                body=script.manifest, headers={**headers, "Content-Type": script.media_type}
            )
        if script.redirect_blobs:
            raise web.HTTPTemporaryRedirect(f"{cdn_url[0]}/cdn/{ref}")
        body = script.blobs.get(ref, BLOB)
        if script.slow_blobs:
            response = web.StreamResponse(headers={"Content-Length": str(len(body))})
            await response.prepare(request)
            for i in range(4):
                await asyncio.sleep(script.slow_blobs)
                await response.write(body[i * len(body) // 4 : (i + 1) * len(body) // 4])
            await response.write_eof()
            return response
        if script.break_blobs:
            response = web.StreamResponse(headers={"Content-Length": str(len(body))})
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            assert request.transport is not None
            request.transport.close()
            return response
        return web.Response(body=body)

    async def tags(request: web.Request) -> web.Response:
        """Two pages: ["1"] then ["2"], linked the way distribution v3 does it."""
        if request.query.get("last") == "1":
            return web.json_response({"name": "x", "tags": ["2"]})
        link = f'</v2/{request.match_info["repo"]}/tags/list?last=1&n=1>; rel="next"'
        return web.json_response({"name": "x", "tags": ["1"]}, headers={"Link": link})

    app = web.Application()
    app.router.add_get("/token", token)
    app.router.add_get("/v2/{repo:.+}/tags/list", tags)
    app.router.add_route("*", "/v2/{repo:.+}/{kind:manifests|blobs}/{ref}", v2)
    return app


def fake_cdn(script: Script) -> web.Application:
    async def serve(request: web.Request) -> web.Response:
        script.cdn_authorization.append(request.headers.get("Authorization"))
        return web.Response(body=BLOB)

    app = web.Application()
    app.router.add_get("/cdn/{ref}", serve)
    return app


async def start_fake(aiohttp_server) -> tuple[Script, str]:  # type: ignore[no-untyped-def]
    """Start the fake registry and its CDN; return the script and the registry URL."""
    script = Script()
    cdn_url: list[str] = []
    cdn = await aiohttp_server(fake_cdn(script))
    cdn_url.append(str(cdn.make_url("")).rstrip("/"))
    server = await aiohttp_server(fake_registry(script, cdn_url))
    return script, str(server.make_url("")).rstrip("/")
