"""Nothing a token brought in outlives it: once its TTL is over, its record, its `data:` layer
and the local copy of that layer leave the store and the data dir, in SQLite and in Redis."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import redis

from tests.api.helpers import WaveLayer, submit
from wave_proxy.api import tokens
from wave_proxy.api.handlers import SERVICE
from wave_proxy.app.housekeeping import sweep
from wave_proxy.server.keys import AUGMENTER, BLOBS

REDIS_DB = 12


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return ""
    server = request.getfixturevalue("redis_server")
    redis.Redis.from_url(server.url(REDIS_DB)).flushdb()
    return server.url(REDIS_DB)


def _stored_keys(store_url: str, data_dir: Path) -> list[str]:
    """Every key the store holds, read from the engine itself (expired or not)."""
    if store_url:
        client = redis.Redis.from_url(store_url)
        return sorted(k.decode().removeprefix("wave-proxy:kv:") for k in client.keys("*:kv:*"))
    db = sqlite3.connect(data_dir / "metadata.sqlite3")
    try:
        return sorted(row[0] for row in db.execute("SELECT key FROM kv"))
    finally:
        db.close()


async def test_expired_tokens_and_their_data_layers_are_purged(
    make_api, store_url: str, bundle_layer: WaveLayer, tmp_path: Path, monkeypatch
):
    monkeypatch.setattr(tokens, "EXPIRED_GRACE", 0.0)
    client = await make_api(store=store_url, token_ttl=1.0)
    client.app[SERVICE].resolver.retention = 1.0
    status, body = await submit(
        client,
        {"containerImage": "busybox:1", "containerConfig": {"layers": [bundle_layer.entry()]}},
    )
    assert status == 200, body
    token, digest = body["containerToken"], bundle_layer.gzip_digest
    blobs = client.app[BLOBS]
    held = _stored_keys(store_url, tmp_path / "data")
    assert {f"token/{token}", f"layerdata/{digest}", f"layer/{digest}"} <= set(held)
    assert blobs.size(digest) is not None

    await asyncio.sleep(1.5)
    await sweep(client.app)

    left = _stored_keys(store_url, tmp_path / "data")
    assert not [key for key in left if key.startswith(("token/", "layerdata/", "layer/"))]
    assert blobs.size(digest) is None, "the local copy went with the last token using it"
    fusion = client.app[SERVICE].resolver.fusion.all_current()
    assert fusion and all(blobs.size(layer.descriptor.digest) for layer in fusion)
    pull = await client.get(f"/v2/wt/{token}/library/busybox/manifests/1")
    assert pull.status == 404


async def test_a_layer_still_used_by_a_live_token_stays(
    make_api, bundle_layer: WaveLayer, monkeypatch
):
    monkeypatch.setattr(tokens, "EXPIRED_GRACE", 0.0)
    client = await make_api(token_ttl=60.0)
    request = {"containerImage": "busybox:1", "containerConfig": {"layers": [bundle_layer.entry()]}}
    status, _ = await submit(client, request)
    assert status == 200
    await sweep(client.app)
    assert client.app[BLOBS].size(bundle_layer.gzip_digest) is not None
    assert await client.app[AUGMENTER].store.count_values("token/") == 1
