"""RedisMetadataStore keeps the MetadataStore contract against a real redis-server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.api.helpers import submit
from tests.support import free_port
from tests.support.redis import Redis, redis_running
from wave_proxy.store.metadata import StoredDocument, StoreUnavailable
from wave_proxy.store.redis import RedisMetadataStore


@pytest.fixture
async def store(redis_server: Redis):
    opened = await RedisMetadataStore.open(redis_server.url(1))
    yield opened
    await opened.close()


async def test_documents_round_trip_with_their_media_type(store: RedisMetadataStore) -> None:
    body = b'{"schemaVersion":2}\n\x00binary'
    await store.put_document("sha256:" + "1" * 64, StoredDocument("application/x.test", body))
    assert await store.get_document("sha256:" + "1" * 64) == StoredDocument(
        "application/x.test", body
    )
    assert await store.get_document("sha256:" + "2" * 64) is None


async def test_a_document_is_never_overwritten(store: RedisMetadataStore) -> None:
    digest = "sha256:" + "3" * 64
    await store.put_document(digest, StoredDocument("a/first", b"1"))
    await store.put_document(digest, StoredDocument("a/second", b"2"))
    assert await store.get_document(digest) == StoredDocument("a/first", b"1")


async def test_values_expire_after_their_ttl(store: RedisMetadataStore) -> None:
    await store.set_value("short", "v", ttl=0.05)
    await store.set_value("long", "w")
    assert await store.get_value("short") == "v"
    await asyncio.sleep(0.2)
    assert await store.get_value("short") is None
    assert await store.get_value("long") == "w"


async def test_unreachable_redis_fails_at_open_with_the_address() -> None:
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(
        StoreUnavailable, match=r"cannot reach the Redis store redis://127\.0\.0\.1"
    ):
        await RedisMetadataStore.open(url)


async def test_api_answers_503_naming_redis_while_it_is_down(make_api, tmp_path: Path) -> None:
    with redis_running(tmp_path) as server:
        api = await make_api(store=server.url(3))
        status, body = await submit(api, {"containerImage": "busybox:1"})
        assert status == 200
        token = body["containerToken"]
        server.service.stop()
        response = await api.get(f"/container-token/{token}")
        assert response.status == 503
        assert "Redis store redis://127.0.0.1" in (await response.json())["message"]
