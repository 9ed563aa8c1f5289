"""The upstream client against the scriptable fake registry (fake_registry.py)."""

from __future__ import annotations

import base64

import aiohttp
import pytest

from tests.wave_proxy.upstream.fake_registry import BLOB, FAST, MANIFEST, OCI, start_fake
from wave_proxy.image.digest import sha256_digest
from wave_proxy.upstream.auth import Credentials
from wave_proxy.upstream.client import MAX_MANIFEST_BYTES, RegistryClient
from wave_proxy.upstream.errors import (
    UpstreamBadResponse,
    UpstreamDenied,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamUnavailable,
)


@pytest.fixture
async def setup(aiohttp_server):
    script, url = await start_fake(aiohttp_server)
    async with aiohttp.ClientSession(auto_decompress=False) as session:

        def client(credentials: Credentials | None = None, **options) -> RegistryClient:
            return RegistryClient("fake.io", url, session, credentials, FAST, 5, **options)

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


async def test_tokens_are_refetched_once_they_expire(setup):
    script, client = setup
    script.expires_in = 60
    now = [1000.0]
    upstream = client(clock=lambda: now[0])
    await upstream.get_manifest("org/tool", "1", [OCI])
    now[0] += 45  # refreshed a little before the server's expiry, not after
    await upstream.get_manifest("org/tool", "1", [OCI])
    assert script.issued == 1
    now[0] += 10
    await upstream.get_manifest("org/tool", "1", [OCI])
    assert script.issued == 2
    assert script.seen[-1][2] == "Bearer tok-2"


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
