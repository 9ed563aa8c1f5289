"""The upstream client against a scriptable in-process registry that misbehaves on purpose.

The real docker-registry cannot be made to answer 503, 429 or redirect to a CDN on demand; this
small aiohttp app can, and it records what the client sent.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from wave_proxy.image.digest import sha256_digest
from wave_proxy.upstream.auth import Credentials
from wave_proxy.upstream.client import MAX_MANIFEST_BYTES, RegistryClient, RetryPolicy
from wave_proxy.upstream.errors import (
    UpstreamBadResponse,
    UpstreamDenied,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamUnavailable,
)

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
        if script.failures:
            status = script.failures.pop(0)
            return web.Response(status=status, headers={"Retry-After": "7"})
        if not authorized(request):
            return web.Response(status=401, headers={"WWW-Authenticate": challenge(request)})
        kind, ref = request.match_info["kind"], request.match_info["ref"]
        if ref.endswith("missing"):
            return web.Response(status=404)
        if kind == "manifests":
            headers = {"Docker-Content-Digest": sha256_digest(script.manifest)}
            return web.Response(body=script.manifest, content_type=OCI, headers=headers)
        if script.redirect_blobs:
            raise web.HTTPTemporaryRedirect(f"{cdn_url[0]}/cdn/{ref}")
        return web.Response(body=BLOB)

    app = web.Application()
    app.router.add_get("/token", token)
    app.router.add_route("*", "/v2/{repo:.+}/{kind:manifests|blobs}/{ref}", v2)
    return app


def fake_cdn(script: Script) -> web.Application:
    async def serve(request: web.Request) -> web.Response:
        script.cdn_authorization.append(request.headers.get("Authorization"))
        return web.Response(body=BLOB)

    app = web.Application()
    app.router.add_get("/cdn/{ref}", serve)
    return app


@pytest.fixture
async def setup(aiohttp_server):
    script = Script()
    cdn_url: list[str] = []
    cdn = await aiohttp_server(fake_cdn(script))
    cdn_url.append(str(cdn.make_url("")).rstrip("/"))
    server = await aiohttp_server(fake_registry(script, cdn_url))
    async with aiohttp.ClientSession(auto_decompress=False) as session:

        def client(credentials: Credentials | None = None) -> RegistryClient:
            url = str(server.make_url("")).rstrip("/")
            return RegistryClient("fake.io", url, session, credentials, FAST, timeout=5)

        yield script, client


async def test_anonymous_token_is_fetched_for_the_repository_pull_scope(setup):
    script, client = setup
    fetched = await client().get_manifest("org/tool", "1", [OCI])
    assert fetched.body == MANIFEST
    assert script.token_requests == [{"scope": "repository:org/tool:pull", "service": "fake"}]


async def test_tokens_are_cached_until_they_expire(setup):
    script, client = setup
    upstream = client()
    for _ in range(3):
        await upstream.get_manifest("org/tool", "1", [OCI])
    assert len(script.token_requests) == 1
    assert [auth for _, _, auth in script.seen] == [
        None,
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-1",
    ]


async def test_credentials_are_sent_to_the_token_server(setup):
    script, client = setup
    script.user = Credentials("me", "pw")
    await client(Credentials("me", "pw")).get_manifest("org/tool", "1", [OCI])
    assert script.issued == 1
    with pytest.raises(UpstreamDenied, match="refused"):
        await client(Credentials("me", "wrong")).get_manifest("org/tool", "1", [OCI])


async def test_a_401_with_a_cached_token_refreshes_it_once(setup):
    script, client = setup
    upstream = client()
    await upstream.get_manifest("org/tool", "1", [OCI])
    script.issued += 1  # the registry revokes tok-1; only tok-2 (issued next) is valid
    await upstream.get_manifest("org/tool", "1", [OCI])
    assert script.issued == 3


async def test_basic_auth_registries_get_basic_credentials(setup):
    script, client = setup
    script.auth, script.user = "basic", Credentials("me", "pw")
    await client(Credentials("me", "pw")).get_manifest("org/tool", "1", [OCI])
    assert script.seen[-1][2] == Credentials("me", "pw").basic_header()
    with pytest.raises(UpstreamDenied, match="requires credentials"):
        await client().get_manifest("org/tool", "1", [OCI])


async def test_5xx_is_retried_with_backoff(setup):
    script, client = setup
    script.auth, script.failures = "none", [503, 502]
    assert (await client().get_manifest("org/tool", "1", [OCI])).body == MANIFEST
    assert len(script.seen) == 3


async def test_persistent_5xx_becomes_unavailable(setup):
    script, client = setup
    script.auth, script.failures = "none", [500, 500, 500]
    with pytest.raises(UpstreamUnavailable, match="after 3 attempts"):
        await client().get_manifest("org/tool", "1", [OCI])


async def test_429_is_raised_at_once_with_retry_after(setup):
    script, client = setup
    script.auth, script.failures = "none", [429]
    with pytest.raises(UpstreamRateLimited) as caught:
        await client().get_manifest("org/tool", "1", [OCI])
    assert caught.value.retry_after == "7"
    assert len(script.seen) == 1


async def test_unreachable_upstream_is_reported_as_unavailable():
    async with aiohttp.ClientSession() as session:
        upstream = RegistryClient("down.io", "http://127.0.0.1:9", session, retry=FAST)
        with pytest.raises(UpstreamUnavailable, match="unreachable"):
            await upstream.get_manifest("a", "1", [OCI])


async def test_missing_manifest_is_not_found(setup):
    script, client = setup
    script.auth = "none"
    with pytest.raises(UpstreamNotFound) as caught:
        await client().get_manifest("org/tool", "missing", [OCI])
    assert caught.value.code == "MANIFEST_UNKNOWN"


async def test_oversized_manifest_is_refused(setup):
    script, client = setup
    script.auth, script.manifest = "none", b"{" + b" " * MAX_MANIFEST_BYTES + b"}"
    with pytest.raises(UpstreamBadResponse, match="exceeds"):
        await client().get_manifest("org/tool", "1", [OCI])


async def test_manifest_by_digest_must_match_its_digest(setup):
    script, client = setup
    script.auth = "none"
    with pytest.raises(UpstreamBadResponse, match="does not match"):
        await client().get_manifest("org/tool", sha256_digest(b"other"), [OCI])


async def test_blob_redirect_is_handed_back_not_followed(setup):
    script, client = setup
    script.redirect_blobs = True
    blob = await client().open_blob("GET", "org/tool", sha256_digest(BLOB), None)
    assert blob.redirect is not None and "/cdn/" in blob.redirect
    assert script.cdn_authorization == []


async def test_internal_blob_reads_follow_redirects_without_our_credentials(setup):
    script, client = setup
    script.redirect_blobs = True
    body = await client().read_blob("org/tool", sha256_digest(BLOB))
    assert body == BLOB
    assert script.cdn_authorization == [None]
    assert script.seen[-1][2] == "Bearer tok-1"


async def test_blob_read_verifies_the_digest(setup):
    script, client = setup
    script.auth = "none"
    with pytest.raises(UpstreamBadResponse):
        await client().read_blob("org/tool", sha256_digest(b"something else"))


def test_basic_header_encodes_user_and_password():
    header = Credentials("me", "p:w").basic_header()
    assert base64.b64decode(header.split()[1]) == b"me:p:w"
