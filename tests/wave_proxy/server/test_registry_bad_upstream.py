"""The proxy app over HTTP against an upstream that misbehaves on purpose (fake_registry.py):
rate limits, outages, slowness, malformed or oversized manifests, CDN redirects, schema1."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.support.images import tar_layer, write_marker_layer
from tests.wave_proxy.upstream.fake_registry import BLOB, FAST, Script, start_fake
from wave_proxy.app.factory import create_app
from wave_proxy.config import LayerSpec, Settings
from wave_proxy.image import mediatypes as mt
from wave_proxy.image.digest import sha256_digest
from wave_proxy.server.keys import AUGMENTER, BLOB_CACHE
from wave_proxy.upstream.client import MAX_MANIFEST_BYTES

ACCEPT = {"Accept": ", ".join(mt.DEFAULT_ACCEPT)}


def seed_image(script: Script) -> None:
    """A valid Docker schema2 image served by the fake for every tag and digest."""
    layer = tar_layer({"a.txt": b"a"})
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        }
    ).encode()
    script.blobs = {sha256_digest(config): config, layer.digest: layer.compressed}
    script.manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": {
                "mediaType": mt.DOCKER_CONFIG,
                "size": len(config),
                "digest": sha256_digest(config),
            },
            "layers": [
                {"mediaType": mt.DOCKER_LAYER_GZIP, "size": layer.size, "digest": layer.digest}
            ],
        }
    ).encode()
    script.media_type = mt.DOCKER_MANIFEST


@pytest.fixture
async def fake(aiohttp_server, aiohttp_client, tmp_path) -> tuple[Script, TestClient]:
    script, url = await start_fake(aiohttp_server)
    script.auth = "none"
    seed_image(script)
    layer = tmp_path / "marker.tar.gz"
    write_marker_layer(layer)
    settings = Settings(
        registries={"docker.io": url}, layers=(LayerSpec(layer),), data_dir=tmp_path / "data"
    )
    client = await aiohttp_client(create_app(settings, retry=FAST, upstream_timeout=0.5))
    assert client.app is not None
    client.app[AUGMENTER].tag_ttl = 0  # every request asks upstream what its tag names now
    return script, client


def error(body: bytes) -> dict:
    return json.loads(body)["errors"][0]


async def test_upstream_429_goes_back_as_toomanyrequests_with_retry_after(fake):
    script, client = fake
    script.failures = [429]
    response = await client.get("/v2/org/tool/manifests/1", headers=ACCEPT)
    assert response.status == 429
    assert response.headers["Retry-After"] == "7"
    assert error(await response.read())["code"] == "TOOMANYREQUESTS"


async def test_transient_5xx_is_retried_and_the_pull_succeeds(fake):
    script, client = fake
    script.failures = [503, 502]
    response = await client.get("/v2/org/tool/manifests/1", headers=ACCEPT)
    assert response.status == 200
    assert script.failures == [], "both failures were answered, and retried past"
    assert json.loads(await response.read())["schemaVersion"] == 2


async def test_upstream_outage_is_unavailable_and_names_the_registry(fake):
    script, client = fake
    script.down = True
    response = await client.get("/v2/org/tool/manifests/1", headers=ACCEPT)
    assert response.status == 503
    body = error(await response.read())
    assert body["code"] == "UNAVAILABLE" and "docker.io" in body["message"]


async def test_slow_upstream_times_out_with_504(fake):
    script, client = fake
    script.delay = 2
    response = await client.get("/v2/org/tool/manifests/1", headers=ACCEPT)
    assert response.status == 504
    assert "timed out" in error(await response.read())["message"]


async def test_last_known_tag_is_served_while_upstream_is_down(fake):
    script, client = fake
    first = await client.get("/v2/org/tool/manifests/1", headers=ACCEPT)
    script.down = True
    second = await client.get("/v2/org/tool/manifests/1", headers=ACCEPT)
    assert second.status == 200
    assert second.headers["Docker-Content-Digest"] == first.headers["Docker-Content-Digest"]


@pytest.mark.parametrize(
    "manifest",
    [b"{not json", b'{"schemaVersion":2,"mediaType":"' + mt.DOCKER_MANIFEST.encode() + b'"}'],
    ids=["not-json", "no-config"],
)
async def test_malformed_upstream_manifest_is_manifest_invalid_and_nothing_is_stored(
    fake, manifest
):
    script, client = fake
    good = script.manifest
    script.manifest = manifest
    response = await client.get("/v2/org/tool/manifests/1", headers=ACCEPT)
    assert response.status == 502
    assert error(await response.read())["code"] == "MANIFEST_INVALID"
    script.manifest = good
    fixed = await client.get("/v2/org/tool/manifests/1", headers=ACCEPT)
    assert fixed.status == 200
    assert fixed.headers["X-Wave-Proxy-Augmented"] == "true"


async def test_oversized_upstream_manifest_is_refused(fake):
    script, client = fake
    script.manifest = b"{" + b" " * MAX_MANIFEST_BYTES + b"}"
    response = await client.get("/v2/org/tool/manifests/1", headers=ACCEPT)
    assert response.status == 502
    assert "exceeds" in error(await response.read())["message"]


async def test_upstream_blob_redirect_is_relayed_as_307(fake):
    script, client = fake
    script.redirect_blobs = True
    digest = "sha256:" + "e" * 64
    response = await client.get(f"/v2/org/tool/blobs/{digest}", allow_redirects=False)
    assert response.status == 307
    assert "/cdn/" in response.headers["Location"]
    assert response.headers["Docker-Content-Digest"] == digest


async def test_blob_broken_off_upstream_is_cut_short_not_completed(fake):
    script, client = fake
    script.break_blobs = True
    response = await client.get("/v2/org/tool/blobs/sha256:" + "e" * 64)
    assert response.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()
    script.break_blobs = False
    assert (await client.get("/v2/org/tool/manifests/1", headers=ACCEPT)).status == 200


async def test_upstream_name_unknown_is_passed_on(fake):
    script, client = fake
    script.not_found_code = "NAME_UNKNOWN"
    response = await client.get("/v2/org/missing/manifests/missing", headers=ACCEPT)
    assert response.status == 404
    assert error(await response.read())["code"] == "NAME_UNKNOWN"


async def test_tag_list_pages_link_back_to_the_proxy(fake):
    _, client = fake
    first = await client.get("/v2/org/tool/tags/list?n=1")
    assert (await first.json())["tags"] == ["1"]
    link = first.headers["Link"]
    assert link == '</v2/org/tool/tags/list?last=1&n=1>; rel="next"'
    second = await client.get(link[1 : link.index(">")])
    assert (await second.json())["tags"] == ["2"]
    assert "Link" not in second.headers


async def test_upstream_manifest_pulled_by_digest_is_served_while_upstream_is_down(fake):
    script, client = fake
    path = f"/v2/org/tool/manifests/{sha256_digest(script.manifest)}"
    first = await client.get(path, headers=ACCEPT)
    assert first.headers["X-Wave-Proxy-Augmented"] == "false"
    script.down = True
    again = await client.get(path, headers=ACCEPT)
    assert again.status == 200 and await again.read() == script.manifest
    assert (await client.get(path.replace("org/tool", "org/other"), headers=ACCEPT)).status == 503


async def test_cached_blob_is_served_while_upstream_is_down(fake):
    script, client = fake
    digest = sha256_digest(BLOB)
    assert await (await client.get(f"/v2/org/tool/blobs/{digest}")).read() == BLOB
    await client.app[BLOB_CACHE].settled()
    script.down = True
    again = await client.get(f"/v2/org/tool/blobs/{digest}")
    assert again.status == 200 and await again.read() == BLOB
    head = await client.head(f"/v2/org/tool/blobs/{digest}")
    assert head.headers["Content-Length"] == again.headers["Content-Length"]
    part = await client.get(f"/v2/org/tool/blobs/{digest}", headers={"Range": "bytes=4-9"})
    assert part.status == 206 and await part.read() == BLOB[4:10]


async def test_concurrent_cold_blob_requests_share_one_upstream_download(fake):
    script, client = fake
    script.slow_blobs = 0.05
    digest = sha256_digest(BLOB)
    path = f"/v2/org/tool/blobs/{digest}"
    await client.head(path)  # upstream confirms org/tool has it: followers may join
    leader = asyncio.create_task(client.get(path))
    cache = client.app[BLOB_CACHE]
    for _ in range(400):  # until the leader's download has started filling the cache
        if cache.filling(digest) is not None:
            break
        await asyncio.sleep(0.005)
    followers = [client.get(path), client.get(path, headers={"Range": "bytes=10-19"})]
    responses = [await leader, *await asyncio.gather(*followers)]
    bodies = [await response.read() for response in responses]
    assert bodies == [BLOB, BLOB, BLOB[10:20]]
    assert [r.status for r in responses] == [200, 200, 206]
    blob_gets = [s for s in script.seen if s[0] == "GET" and "/blobs/" in s[1]]
    assert len(blob_gets) == 1


async def test_a_client_leaving_mid_blob_does_not_stop_the_cache_fill(fake):
    script, client = fake
    script.slow_blobs = 0.05
    digest = sha256_digest(BLOB)
    response = await client.get(f"/v2/org/tool/blobs/{digest}")
    await response.content.readany()
    response.close()
    cache = client.app[BLOB_CACHE]
    for _ in range(400):
        if cache.filling(digest) is None:
            break
        await asyncio.sleep(0.005)
    await cache.settled()
    cached = cache.lookup(digest)
    assert cached is not None
    assert cached[0].read_bytes() == BLOB


async def test_cached_blob_is_not_served_under_another_repository(fake):
    script, client = fake
    digest = sha256_digest(BLOB)
    await (await client.get(f"/v2/org/tool/blobs/{digest}")).read()
    await client.app[BLOB_CACHE].settled()
    script.down = True
    other = await client.get(f"/v2/org/other/blobs/{digest}")
    assert other.status == 503, "only upstream may say whether org/other has this blob"


async def test_schema1_manifests_pass_through_with_a_warning(fake):
    script, client = fake
    script.manifest = json.dumps({"schemaVersion": 1, "name": "org/tool", "fsLayers": []}).encode()
    script.media_type = mt.DOCKER_SCHEMA1_SIGNED
    response = await client.get("/v2/org/tool/manifests/1", headers={"Accept": "*/*"})
    assert response.status == 200
    assert await response.read() == script.manifest
    assert response.headers["X-Wave-Proxy-Augmented"] == "false"
    assert "not augmented" in response.headers["Warning"]


async def test_signed_schema1_keeps_the_upstream_digest(fake):
    script, client = fake
    script.manifest = json.dumps(
        {"schemaVersion": 1, "name": "org/tool", "fsLayers": [], "signatures": [{"x": 1}]}
    ).encode()
    script.media_type = mt.DOCKER_SCHEMA1_SIGNED
    script.digest_header = "sha256:" + "5" * 64  # over the payload without signatures
    for reference in ("1", script.digest_header):
        response = await client.get(
            f"/v2/org/tool/manifests/{reference}", headers={"Accept": mt.DOCKER_SCHEMA1_SIGNED}
        )
        assert response.status == 200
        assert response.headers["Docker-Content-Digest"] == script.digest_header
        assert await response.read() == script.manifest


async def test_concurrent_cold_pulls_share_one_augmentation(fake):
    script, client = fake
    responses = await asyncio.gather(
        *(client.get("/v2/org/tool/manifests/1", headers=ACCEPT) for _ in range(8))
    )
    assert {r.status for r in responses} == {200}
    manifest_gets = [s for s in script.seen if s[0] == "GET" and "/manifests/" in s[1]]
    assert len(manifest_gets) == 1


async def test_upstream_manifest_nested_thousands_deep_is_manifest_invalid(fake):
    script, client = fake
    script.manifest = b'{"schemaVersion":2,"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await client.get("/v2/org/tool/manifests/1", headers=ACCEPT)
    assert response.status == 502
    assert error(await response.read())["code"] == "MANIFEST_INVALID"


async def test_range_with_thousands_of_digits_is_not_a_server_error(fake):
    script, client = fake
    digest = next(iter(script.blobs))
    assert (await client.get(f"/v2/org/tool/blobs/{digest}")).status == 200
    await client.app[BLOB_CACHE].settled()
    response = await client.get(
        f"/v2/org/tool/blobs/{digest}", headers={"Range": "bytes=0-" + "9" * 5000}
    )
    assert response.status == 206
    assert await response.read() == script.blobs[digest]


def corrupt_cached(client: TestClient, digest: str) -> None:
    """Flip the cached copy's bytes, keeping its size (what a disk fault does)."""
    path = client.app[BLOB_CACHE].path(digest)
    path.write_bytes(bytes(b ^ 0xFF for b in path.read_bytes()))


async def corrupt_count(client: TestClient) -> float:
    """What /metrics says about damaged cache entries found."""
    text = await (await client.get("/metrics")).text()
    for family in text_string_to_metric_families(text):
        if family.name == "wave_proxy_blob_cache_corrupt_blobs":
            return family.samples[0].value
    raise AssertionError("/metrics has no wave_proxy_blob_cache_corrupt_blobs")


async def test_a_corrupted_cached_blob_is_dropped_once_served_and_refilled_from_upstream(fake):
    script, client = fake
    digest = sha256_digest(BLOB)
    path = f"/v2/org/tool/blobs/{digest}"
    assert await (await client.get(path)).read() == BLOB
    await client.app[BLOB_CACHE].settled()
    corrupt_cached(client, digest)
    before = await corrupt_count(client)
    await (await client.get(path)).read()  # a client gets the damage once, and rejects it
    await client.app[BLOB_CACHE].settled()
    assert await corrupt_count(client) == before + 1
    retry = await client.get(path)
    assert await retry.read() == BLOB
    await client.app[BLOB_CACHE].settled()
    script.down = True
    assert await (await client.get(path)).read() == BLOB  # refilled into the cache


async def test_a_corrupted_cached_blob_is_dropped_after_a_restart_before_it_is_served(
    fake, aiohttp_client, tmp_path
):
    _, client = fake
    digest = sha256_digest(BLOB)
    path = f"/v2/org/tool/blobs/{digest}"
    assert await (await client.get(path)).read() == BLOB
    await client.app[BLOB_CACHE].settled()
    upstream_url = client.app[AUGMENTER].registries.get("docker.io").url
    await client.close()
    cache_file = tmp_path / "data" / "cache" / "sha256" / digest.removeprefix("sha256:")
    cache_file.write_bytes(bytes(b ^ 0xFF for b in cache_file.read_bytes()))
    settings = Settings(registries={"docker.io": upstream_url}, data_dir=tmp_path / "data")
    restarted = await aiohttp_client(create_app(settings, retry=FAST, upstream_timeout=0.5))
    await restarted.app[BLOB_CACHE].settled()  # the sweep after start
    assert not cache_file.exists()
    assert await (await restarted.get(path)).read() == BLOB
