"""/healthz and /readyz of the app itself: ready once started, not ready when an appended layer
is gone from the blob store or while draining, alive throughout."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.support.images import Layer
from tests.support.registry import Registry
from wave_proxy.app.factory import create_app
from wave_proxy.app.health import LIFECYCLE
from wave_proxy.config import LayerSpec, Settings
from wave_proxy.server.keys import BLOBS


@pytest.fixture
async def client(
    aiohttp_client, upstream: Registry, marker_layer: tuple[Path, Layer], tmp_path: Path
) -> TestClient:
    settings = Settings(
        registries={"docker.io": upstream.url},
        layers=(LayerSpec(marker_layer[0]),),
        data_dir=tmp_path / "data",
    )
    return await aiohttp_client(create_app(settings))


async def test_a_started_proxy_is_alive_and_ready(client: TestClient):
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert (ready.status, await ready.text()) == (200, "ready\n")


async def test_an_appended_layer_missing_from_the_blob_store_makes_it_unready(
    client: TestClient, marker_layer: tuple[Path, Layer]
):
    client.app[BLOBS].remove(marker_layer[1].digest)
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert marker_layer[1].digest in await ready.text()
    assert (await client.get("/healthz")).status == 200


async def test_draining_makes_it_unready_at_once(client: TestClient):
    client.app[LIFECYCLE].draining = True
    ready = await client.get("/readyz")
    assert ready.status == 503 and "draining" in await ready.text()
