"""The shared blob store on a real S3 server (moto) and leases on a real redis-server."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
import requests

from tests.support.redis import Redis, redis_server  # noqa: F401
from tests.support.s3servers import S3Server, moto_s3  # noqa: F401
from wave_proxy.store.redis import RedisLeases
from wave_proxy.store.shared import BlobStoreUnavailable, S3BlobStore


@pytest.fixture
def s3_env(moto_s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:  # noqa: F811
    """Credentials and endpoint the standard AWS way: the environment."""
    for name, value in moto_s3.env().items():
        monkeypatch.setenv(name, value)
    return moto_s3


def blob_file(tmp_path: Path, data: bytes) -> tuple[str, Path]:
    path = tmp_path / "blob"
    path.write_bytes(data)
    return "sha256:" + hashlib.sha256(data).hexdigest(), path


async def test_a_stored_blob_has_its_size_and_reads_by_range(s3_env: S3Server, tmp_path: Path):
    store = S3BlobStore(s3_env.new_bucket("shared"), "fleet")
    digest, path = blob_file(tmp_path, b"0123456789" * 1000)
    assert await store.size(digest) is None
    await store.put_file(digest, path)
    assert await store.size(digest) == 10_000
    assert b"".join([chunk async for chunk in store.read(digest, 5, 10)]) == b"5678901234"


async def test_blobs_are_kept_under_the_prefix_by_digest(s3_env: S3Server, tmp_path: Path):
    bucket = s3_env.new_bucket("shared")
    digest, path = blob_file(tmp_path, b"keyed")
    await S3BlobStore(bucket, "fleet").put_file(digest, path)
    listing = s3_env.boto3_client().list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listing["Contents"]] == [f"fleet/blobs/sha256/{digest[7:]}"]


async def test_a_presigned_url_serves_the_blob_and_ranges_without_credentials(
    s3_env: S3Server, tmp_path: Path
):
    store = S3BlobStore(s3_env.new_bucket("shared"))
    digest, path = blob_file(tmp_path, b"presigned content")
    await store.put_file(digest, path)
    url = await store.url(digest)
    assert url is not None and url.startswith(s3_env.endpoint)
    assert requests.get(url, timeout=10).content == b"presigned content"
    ranged = requests.get(url, headers={"Range": "bytes=0-8"}, timeout=10)
    assert ranged.status_code == 206 and ranged.content == b"presigned"


async def test_a_missing_bucket_fails_the_probe_with_a_clear_error(s3_env: S3Server):
    with pytest.raises(BlobStoreUnavailable, match="no-such-bucket"):
        await S3BlobStore("no-such-bucket").ping()


async def test_a_redis_lease_goes_to_one_replica_and_to_another_once_it_expires(
    redis_server: Redis,  # noqa: F811
):
    first, second = RedisLeases(redis_server.url(5)), RedisLeases(redis_server.url(5))
    try:
        token = await first.acquire("fill:test", 0.3)
        assert token is not None
        assert await second.acquire("fill:test", 0.3) is None
        assert await second.held("fill:test")
        await asyncio.sleep(0.5)  # the holder died: nobody renewed
        taken = await second.acquire("fill:test", 10)
        assert taken is not None
        assert not await first.renew("fill:test", token, 10)
        await first.release("fill:test", token)  # a stale holder cannot release it either
        assert await second.held("fill:test")
        await second.release("fill:test", taken)
        assert not await second.held("fill:test")
    finally:
        await first.close()
        await second.close()
