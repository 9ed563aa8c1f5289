"""Container tokens: describe, status, delete, expiry, repository checks, API keys."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime

import pytest
from aiohttp.test_utils import TestClient

from tests.support.layers import WaveLayer
from tests.wave_proxy.api.helpers import pull_manifest, split_target, submit
from tests.wave_proxy.api.nfwave import nf_wave_request
from wave_proxy.api.handlers import SERVICE
from wave_proxy.config import Settings


async def test_describe_status_and_details_of_a_token(
    api: TestClient, bundle_layer: WaveLayer
) -> None:
    _, body = await submit(api, nf_wave_request("busybox:1", [bundle_layer.entry()]))
    token = body["containerToken"]
    described = await (await api.get(f"/container-token/{token}")).json()
    assert described["token"] == token
    assert described["source"]["image"] == "docker.io/library/busybox"
    assert described["wave"]["digest"] != described["source"]["digest"]
    status = await (await api.get(f"/v1alpha2/container/{token}/status")).json()
    assert (status["id"], status["status"], status["succeeded"]) == (token, "DONE", True)
    details = await (await api.get(f"/v1alpha2/container/{token}")).json()
    assert details["waveDigest"] == described["wave"]["digest"]


async def test_deleted_token_is_refused_with_a_message(api: TestClient) -> None:
    _, body = await submit(api, {"containerImage": "busybox:1"})
    token = body["containerToken"]
    assert (await api.delete(f"/container-token/{token}")).status == 200
    path, tag = split_target(body["targetImage"])
    response = await api.get(f"/v2/{path}/manifests/{tag}")
    error = (await response.json())["errors"][0]
    assert (response.status, error["code"]) == (403, "DENIED")
    assert "was deleted" in error["message"]


async def test_expired_token_is_refused_saying_it_expired(api: TestClient) -> None:
    _, body = await submit(api, {"containerImage": "busybox:1"})
    service = api.app[SERVICE]
    service.tokens.clock = lambda: time.time() + 37 * 3600  # past the default 36 h
    path, tag = split_target(body["targetImage"])
    response = await api.get(f"/v2/{path}/manifests/{tag}")
    error = (await response.json())["errors"][0]
    assert (response.status, error["code"]) == (403, "DENIED")
    assert "expired at" in error["message"]


async def test_token_ttl_is_configurable_and_reported(make_api) -> None:
    client = await make_api(token_ttl=600.0)
    before = time.time()
    _, body = await submit(client, {"containerImage": "busybox:1"})
    expiration = body["expiration"]
    moment = datetime.fromisoformat(expiration.replace("Z", "+00:00")).timestamp()
    assert before + 599 <= moment <= time.time() + 601


def test_settings_default_token_ttl_is_36_hours() -> None:
    assert dataclasses.replace(Settings()).token_ttl == 36 * 3600


async def test_unknown_token_gets_name_unknown(api: TestClient) -> None:
    response = await api.get("/v2/wt/0123456789abcdef01234567/library/busybox/manifests/1")
    error = (await response.json())["errors"][0]
    assert (response.status, error["code"]) == (404, "NAME_UNKNOWN")
    assert "unknown container token" in error["message"]


async def test_repository_not_matching_the_token_is_refused(api: TestClient) -> None:
    _, body = await submit(api, {"containerImage": "busybox:1"})
    token = body["containerToken"]
    response = await api.get(f"/v2/wt/{token}/shapes/oci/manifests/1")
    error = (await response.json())["errors"][0]
    assert (response.status, error["code"]) == (404, "NAME_UNKNOWN")
    assert "was issued for library/busybox, not shapes/oci" in error["message"]


async def test_tags_list_under_a_token_shows_the_token_tag(api: TestClient) -> None:
    _, body = await submit(api, {"containerImage": "busybox:1"})
    response = await api.get(f"/v2/wt/{body['containerToken']}/library/busybox/tags/list")
    assert await response.json() == {"name": "library/busybox", "tags": ["1"]}


async def test_api_key_is_required_when_configured(make_api) -> None:
    client = await make_api(api_keys=("k3y",))
    status, body = await submit(client, {"containerImage": "busybox:1"})
    assert status == 401 and "API key" in body["message"]
    status, _ = await submit(
        client, {"containerImage": "busybox:1"}, headers={"Authorization": "Bearer k3y"}
    )
    assert status == 200
    status, body = await submit(client, {"containerImage": "busybox:1", "towerAccessToken": "k3y"})
    assert status == 200
    # the /v2 side is authorised by the token in its path alone
    manifest, _ = await pull_manifest(client, body["targetImage"])
    assert manifest["schemaVersion"] == 2


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/container-token/{token}"),
        ("DELETE", "/container-token/{token}"),
        ("GET", "/v1alpha2/container/{token}"),
        ("GET", "/v1alpha2/container/{token}/status"),
    ],
)
async def test_token_reads_and_deletes_need_the_api_key_when_configured(
    make_api, method: str, path: str
) -> None:
    client = await make_api(api_keys=("k3y",))
    key = {"Authorization": "Bearer k3y"}
    request = {"containerImage": "busybox:1", "containerConfig": {"env": ["SECRET=s3cr3t"]}}
    _, body = await submit(client, request, headers=key)
    url = path.format(token=body["containerToken"])
    refused = await client.request(method, url)
    assert refused.status == 401
    assert "s3cr3t" not in await refused.text()
    wrong = await client.request(method, url, headers={"Authorization": "Bearer wrong"})
    assert wrong.status == 401
    assert (await client.request(method, url, headers=key)).status == 200


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"],
    ids=["malformed", "deeply-nested"],
)
async def test_a_body_without_the_api_key_is_refused_before_it_is_parsed(
    make_api, body: bytes
) -> None:
    client = await make_api(api_keys=("k3y",))
    response = await client.post("/v1alpha2/container", data=body)
    assert response.status == 401
    assert "API key" in (await response.json())["message"]


async def test_tokens_carry_at_least_128_random_bits(api: TestClient) -> None:
    tokens = set()
    for _ in range(3):
        _, body = await submit(api, {"containerImage": "busybox:1"})
        tokens.add(body["containerToken"])
    assert len(tokens) == 3
    assert all(len(t) >= 32 and int(t, 16) >= 0 for t in tokens)  # 32 hex = 128 bits
