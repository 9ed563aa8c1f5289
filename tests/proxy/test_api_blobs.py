"""The proxy app over HTTP against the real docker-registry upstream: blobs and Range."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.support.images import Layer, Shapes
from tests.support.registry import Registry
from wave_proxy.app.factory import create_app
from wave_proxy.config import LayerSpec, Settings


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
async def client(aiohttp_client, upstream: Registry, marker_layer: tuple[Path, Layer], tmp_path):
    settings = Settings(
        registries={"docker.io": upstream.url},
        layers=(LayerSpec(marker_layer[0]),),
        data_dir=tmp_path / "data",
    )
    return await aiohttp_client(create_app(settings))


def blob_path(shapes: Shapes, which: str, marker_layer) -> tuple[str, bytes]:
    """(URL path, expected bytes) of an appended layer or an upstream layer."""
    if which == "appended":
        return f"/v2/shapes/oci/blobs/{marker_layer[1].digest}", marker_layer[1].compressed
    layer = shapes.schema2.layers[-1]
    return f"/v2/shapes/schema2/blobs/{layer.digest}", layer.compressed


@pytest.fixture(params=["appended", "upstream"])
def blob(request, shapes: Shapes, marker_layer) -> tuple[str, bytes]:
    return blob_path(shapes, request.param, marker_layer)


async def test_blob_body_matches_its_digest_and_head_agrees(client: TestClient, blob):
    path, expected = blob
    got = await client.get(path)
    head = await client.head(path)
    assert got.status == head.status == 200
    assert await got.read() == expected
    assert got.headers["Docker-Content-Digest"] == sha256(expected)
    for header in ("Content-Length", "Docker-Content-Digest", "ETag"):
        assert got.headers[header] == head.headers[header], header
    assert int(head.headers["Content-Length"]) == len(expected)


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [("bytes=10-29", 10, 29), ("bytes=10-", 10, None), ("bytes=-7", -7, None)],
)
async def test_range_requests_get_206_with_content_range(
    client: TestClient, blob, range_header, start, end
):
    path, expected = blob
    response = await client.get(path, headers={"Range": range_header})
    part = expected[start : None if end is None else end + 1]
    assert response.status == 206
    assert await response.read() == part
    first = start if start >= 0 else len(expected) + start
    assert response.headers["Content-Range"] == (
        f"bytes {first}-{first + len(part) - 1}/{len(expected)}"
    )


@pytest.mark.parametrize("range_header", ["bytes=100000000-", "bytes=50-10"])
async def test_unsatisfiable_ranges_get_416(client: TestClient, blob, range_header):
    path, _ = blob
    response = await client.get(path, headers={"Range": range_header})
    assert response.status == 416


@pytest.mark.parametrize("range_header", ["bytes=abc", "lines=1-2", "bytes=0-1,5-6"])
async def test_junk_ranges_are_ignored_and_the_whole_blob_served(client, blob, range_header):
    path, expected = blob
    response = await client.get(path, headers={"Range": range_header})
    assert response.status == 200
    assert await response.read() == expected


async def test_missing_blob_is_blob_unknown(client: TestClient):
    response = await client.get("/v2/shapes/oci/blobs/sha256:" + "0" * 64)
    assert response.status == 404
    assert (await response.json())["errors"][0]["code"] == "BLOB_UNKNOWN"


async def test_invalid_blob_digest_is_digest_invalid(client: TestClient):
    response = await client.get("/v2/shapes/oci/blobs/sha256:XYZ")
    assert response.status == 400
    assert (await response.json())["errors"][0]["code"] == "DIGEST_INVALID"


async def test_produced_config_is_served_only_under_its_repository(client: TestClient):
    manifest = await client.get(
        "/v2/shapes/oci/manifests/1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    config_digest = json.loads(await manifest.read())["config"]["digest"]
    assert (await client.get(f"/v2/shapes/oci/blobs/{config_digest}")).status == 200
    elsewhere = await client.get(f"/v2/shapes/schema2/blobs/{config_digest}")
    assert elsewhere.status == 404
