"""The on-disk cache of upstream blobs: verified before publishing, bounded, LRU."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest

from wave_proxy.store.blobcache import BlobCache, FillBrokenOff


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fill(cache: BlobCache, data: bytes) -> bool:
    writer = cache.writer(digest_of(data), len(data))
    assert writer is not None
    for i in range(0, len(data), 3):
        writer.write(data[i : i + 3])
    return writer.commit()


def test_a_complete_blob_is_published_and_found(tmp_path):
    cache = BlobCache(tmp_path, 1000)
    assert fill(cache, b"hello blob")
    hit = cache.lookup(digest_of(b"hello blob"))
    assert hit is not None and hit[0].read_bytes() == b"hello blob" and hit[1] == 10


def test_content_that_does_not_match_its_digest_is_never_published(tmp_path):
    cache = BlobCache(tmp_path, 1000)
    writer = cache.writer(digest_of(b"expected"), 8)
    assert writer is not None
    writer.write(b"tampered")
    assert not writer.commit()
    assert cache.lookup(digest_of(b"expected")) is None
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_short_stream_is_not_published(tmp_path):
    cache = BlobCache(tmp_path, 1000)
    writer = cache.writer(digest_of(b"complete"), 8)
    assert writer is not None
    writer.write(b"compl")
    assert not writer.commit()
    assert cache.lookup(digest_of(b"complete")) is None


def test_only_one_writer_fills_a_blob_at_a_time(tmp_path):
    cache = BlobCache(tmp_path, 1000)
    first = cache.writer(digest_of(b"x"), 1)
    assert first is not None
    assert cache.writer(digest_of(b"x"), 1) is None
    first.abort()
    assert cache.writer(digest_of(b"x"), 1) is not None


def test_blobs_larger_than_the_cache_are_not_cached(tmp_path):
    assert BlobCache(tmp_path, 10).writer(digest_of(b"y" * 11), 11) is None


def test_least_recently_used_blobs_are_evicted_first(tmp_path):
    cache = BlobCache(tmp_path, 25)
    old, used, new = b"a" * 10, b"b" * 10, b"c" * 10
    fill(cache, old)
    fill(cache, used)
    past = time.time() - 100
    os.utime(cache.path(digest_of(old)), (past, past))
    os.utime(cache.path(digest_of(used)), (past + 1, past + 1))
    assert cache.lookup(digest_of(used)) is not None  # a hit makes it recent
    fill(cache, new)
    assert cache.lookup(digest_of(old)) is None
    assert cache.lookup(digest_of(used)) is not None
    assert cache.lookup(digest_of(new)) is not None


def test_reopening_counts_existing_entries_and_drops_partial_writes(tmp_path):
    cache = BlobCache(tmp_path, 25)
    fill(cache, b"a" * 10)
    (tmp_path / "tmp" / "partial").write_bytes(b"half")
    reopened = BlobCache(tmp_path, 25)
    assert list((tmp_path / "tmp").iterdir()) == []
    fill(reopened, b"b" * 10)
    fill(reopened, b"c" * 10)
    assert reopened.lookup(digest_of(b"a" * 10)) is None, "the oldest made room"


def test_a_lowered_bound_holds_at_once_after_a_restart(tmp_path):
    cache = BlobCache(tmp_path, 100)
    blobs = [bytes([65 + i]) * 10 for i in range(5)]
    for age, data in enumerate(blobs):
        fill(cache, data)
        past = time.time() - 100 + age
        os.utime(cache.path(digest_of(data)), (past, past))
    reopened = BlobCache(tmp_path, 25)
    assert reopened.used_bytes == 20
    kept = [data for data in blobs if reopened.lookup(digest_of(data)) is not None]
    assert kept == blobs[-2:], "the most recently used stay"


async def collect(fill, start: int, length: int) -> bytes:
    return b"".join([chunk async for chunk in fill.follow(start, length)])


async def test_a_follower_reads_a_fill_as_it_grows(tmp_path):
    cache = BlobCache(tmp_path, 1000)
    data = bytes(range(200))
    writer = cache.writer(digest_of(data), len(data))
    assert writer is not None and cache.filling(digest_of(data)) is writer
    whole = asyncio.create_task(collect(writer, 0, len(data)))
    part = asyncio.create_task(collect(writer, 150, 20))
    for i in range(0, len(data), 50):
        await asyncio.sleep(0.01)
        writer.write(data[i : i + 50])
    cache.commit_soon(writer)
    assert await whole == data
    assert await part == data[150:170]
    await cache.settled()
    assert cache.filling(digest_of(data)) is None
    assert cache.lookup(digest_of(data)) is not None


async def test_followers_are_cut_when_the_fill_breaks_off(tmp_path):
    cache = BlobCache(tmp_path, 1000)
    writer = cache.writer(digest_of(b"x" * 100), 100)
    assert writer is not None
    follower = asyncio.create_task(collect(writer, 0, 100))
    writer.write(b"x" * 40)
    await asyncio.sleep(0.01)
    writer.abort()
    with pytest.raises(FillBrokenOff):
        await follower
    assert cache.filling(digest_of(b"x" * 100)) is None


async def test_a_follower_arriving_as_the_fill_is_published_reads_the_published_blob(tmp_path):
    cache = BlobCache(tmp_path, 1000)
    data = b"published"
    writer = cache.writer(digest_of(data), len(data))
    assert writer is not None
    writer.write(data)
    writer.finish()
    assert writer.commit()
    assert await collect(writer, 0, len(data)) == data
