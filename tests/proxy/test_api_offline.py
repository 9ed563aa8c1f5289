"""An image pulled once through the proxy keeps pulling while its upstream is down.

Uses its own docker-registry (the session's must stay up for everyone else), stopped mid-test.
"""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp.test_utils import TestClient

from tests.support.images import ImageSpec, Layer, Pusher, tar_layer
from tests.support.registry import registry_running
from wave_proxy.app.factory import create_app
from wave_proxy.config import LayerSpec, Settings
from wave_proxy.image import mediatypes as mt
from wave_proxy.server.keys import AUGMENTER, BLOB_CACHE
from wave_proxy.upstream.client import RetryPolicy

ACCEPT = {"Accept": ", ".join(mt.DEFAULT_ACCEPT)}


async def pull(client: TestClient, repository: str) -> list[bytes]:
    """What a client fetches for `repository:1`: manifest, config and every layer."""
    manifest = await client.get(f"/v2/{repository}/manifests/1", headers=ACCEPT)
    assert manifest.status == 200, await manifest.text()
    body = json.loads(await manifest.read())
    contents = [json.dumps(body).encode()]
    for descriptor in [body["config"], *body["layers"]]:
        blob = await client.get(f"/v2/{repository}/blobs/{descriptor['digest']}")
        assert blob.status == 200, await blob.text()
        contents.append(await blob.read())
    return contents


async def test_a_pulled_image_pulls_again_with_the_upstream_stopped(
    aiohttp_client, tmp_path: Path, marker_layer: tuple[Path, Layer]
):
    with registry_running(tmp_path / "registry") as registry:
        layer = tar_layer({"opt/offline.txt": b"still here\n"})
        Pusher(registry).image("offline/tool", "1", ImageSpec((layer,), {"Cmd": ["sh"]}))
        settings = Settings(
            registries={"docker.io": registry.url},
            layers=(LayerSpec(marker_layer[0]),),
            data_dir=tmp_path / "data",
        )
        retry = RetryPolicy(attempts=2, first_delay=0.01)
        client = await aiohttp_client(create_app(settings, retry, upstream_timeout=2))
        assert client.app is not None
        client.app[AUGMENTER].tag_ttl = 0  # no fresh tag answer to lean on: upstream is asked
        online = await pull(client, "offline/tool")
        await client.app[BLOB_CACHE].settled()
    offline = await pull(client, "offline/tool")
    assert offline == online
