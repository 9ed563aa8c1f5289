"""The chunk cache on its own: a fetch callable over in-memory objects stands in for S3."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fusion_client.cache import ChunkCache, ReadStream
from fusion_client.cache.chunks import BOUNCE_BYTES

CHUNK = 64 * 1024


class FakeStore:
    """Objects by key; counts ranged GETs and can be slowed down or made to fail."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.gets: list[tuple[str, int, int]] = []
        self.delay = 0.0
        self.fail_with: Exception | None = None
        self.lock = threading.Lock()

    def fetch(self, bucket: str, key: str, offset: int, buf: memoryview, etag: str) -> int:
        with self.lock:
            self.gets.append((key, offset, len(buf)))
        if self.delay:
            time.sleep(self.delay)
        if self.fail_with is not None:
            raise self.fail_with
        data = self.objects[key][offset : offset + len(buf)]
        buf[: len(data)] = data
        return len(data)

    def fetched(self) -> int:
        return sum(length for _, _, length in self.gets)


def make_cache(directory: Path, store: FakeStore, capacity: int = 64 * CHUNK) -> ChunkCache:
    return ChunkCache(
        str(directory),
        fetch=store.fetch,
        capacity=capacity,
        chunk_size=CHUNK,
        fetch_size=4 * CHUNK,
        prefetch_max_chunks=16,
        workers=4,
        prefetch_after=2 * CHUNK,
    )


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def cache(tmp_path: Path, store: FakeStore) -> Iterator[ChunkCache]:
    cache = make_cache(tmp_path / "cache", store)
    yield cache
    cache.shutdown()


def read(cache: ChunkCache, obj, offset: int, size: int, stream: ReadStream | None = None) -> bytes:
    view, release = cache.read(obj, stream or ReadStream(), offset, size)
    data = bytes(view)
    view.release()
    if release:
        release()
    return data


def test_read_returns_the_object_bytes_across_chunk_boundaries(cache, store):
    data = store.objects["k"] = os.urandom(5 * CHUNK + 123)
    obj = cache.open("b", "k", "e1", len(data))
    assert read(cache, obj, CHUNK - 10, 3 * CHUNK) == data[CHUNK - 10 : 4 * CHUNK - 10]
    assert read(cache, obj, 5 * CHUNK, CHUNK) == data[5 * CHUNK :]
    assert read(cache, obj, 6 * CHUNK, CHUNK) == b""


def test_a_chunk_read_twice_is_fetched_once(cache, store):
    store.objects["k"] = os.urandom(4 * CHUNK)
    obj = cache.open("b", "k", "e1", 4 * CHUNK)
    read(cache, obj, 0, 100)
    read(cache, obj, 200, 100, ReadStream())
    assert len(store.gets) == 1
    assert cache.stats.chunk_hits == 1 and cache.stats.chunk_misses == 1


def test_small_and_large_fetches_both_serve_the_object_bytes_from_the_cache(cache, store):
    # Fetches up to BOUNCE_BYTES go through a bounce buffer and pwrite, larger ones straight
    # into the mapping; a second read of either is a hit with the same bytes.
    size = BOUNCE_BYTES + 3 * CHUNK
    data = store.objects["k"] = os.urandom(size + CHUNK)
    obj = cache.open("b", "k", "e1", len(data))
    assert read(cache, obj, 0, size) == data[:size]  # one GET, larger than a bounce buffer
    assert read(cache, obj, size, CHUNK) == data[size:]  # through the bounce buffer
    assert sorted(length for _, _, length in store.gets) == [CHUNK, size]
    assert read(cache, obj, 0, len(data)) == data
    assert len(store.gets) == 2


def test_concurrent_readers_of_one_chunk_share_one_fetch(cache, store):
    store.objects["k"] = os.urandom(2 * CHUNK)
    store.delay = 0.2
    obj = cache.open("b", "k", "e1", 2 * CHUNK)
    results: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: results.append(read(cache, obj, 0, CHUNK)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [store.objects["k"][:CHUNK]] * 8
    assert store.gets == [("k", 0, CHUNK)]


def test_a_sequential_reader_gets_a_growing_prefetch_window(cache, store):
    store.objects["k"] = os.urandom(64 * CHUNK)
    obj = cache.open("b", "k", "e1", 64 * CHUNK)
    stream = ReadStream()
    for offset in range(0, 8 * CHUNK, CHUNK // 2):
        read(cache, obj, offset, CHUNK // 2, stream)
    assert stream.window >= 4
    time.sleep(0.3)
    assert store.fetched() > 12 * CHUNK  # fetched well past what was read
    assert max(length for _, _, length in store.gets) == 4 * CHUNK  # runs join into one GET


def test_random_reads_fetch_only_the_chunks_they_touch(cache, store):
    store.objects["k"] = os.urandom(64 * CHUNK)
    obj = cache.open("b", "k", "e1", 64 * CHUNK)
    stream = ReadStream()
    for offset in (40 * CHUNK + 5, 3 * CHUNK, 20 * CHUNK + 7, 55 * CHUNK):
        read(cache, obj, offset, CHUNK // 4, stream)
    time.sleep(0.1)
    assert store.fetched() == 4 * CHUNK


def test_eviction_keeps_the_cache_files_within_capacity(tmp_path, store):
    cache = make_cache(tmp_path / "cache", store, capacity=8 * CHUNK)
    try:
        store.objects["k"] = os.urandom(32 * CHUNK)
        obj = cache.open("b", "k", "e1", 32 * CHUNK)
        for chunk in range(32):
            assert (
                read(cache, obj, chunk * CHUNK, CHUNK)
                == store.objects["k"][chunk * CHUNK : (chunk + 1) * CHUNK]
            )
        time.sleep(0.2)
        allocated = sum(p.stat().st_blocks * 512 for p in (tmp_path / "cache").iterdir())
        assert allocated <= 8 * CHUNK + 16 * 4096  # plus file-system metadata blocks
        assert cache.stats.evicted_chunks >= 24
        assert read(cache, obj, 0, CHUNK) == store.objects["k"][:CHUNK]  # refetched
    finally:
        cache.shutdown()


def test_chunks_pinned_by_an_unsent_reply_are_not_evicted(tmp_path, store):
    cache = make_cache(tmp_path / "cache", store, capacity=2 * CHUNK)
    try:
        store.objects["k"] = os.urandom(8 * CHUNK)
        obj = cache.open("b", "k", "e1", 8 * CHUNK)
        held, release = cache.read(obj, ReadStream(), 0, CHUNK)
        for chunk in range(1, 8):
            read(cache, obj, chunk * CHUNK, CHUNK)
        assert bytes(held) == store.objects["k"][:CHUNK]
        held.release()
        assert release is not None
        release()
    finally:
        cache.shutdown()


def test_a_failed_fetch_is_raised_and_the_next_read_retries(cache, store):
    store.objects["k"] = os.urandom(CHUNK)
    obj = cache.open("b", "k", "e1", CHUNK)
    store.fail_with = OSError(errno.EIO, "boom")
    with pytest.raises(OSError):
        read(cache, obj, 0, 10)
    store.fail_with = None
    assert read(cache, obj, 0, 10) == store.objects["k"][:10]


def test_an_object_shorter_than_listed_is_an_error_not_zeros(cache, store):
    store.objects["k"] = b"short"
    obj = cache.open("b", "k", "e1", 100)
    with pytest.raises(OSError) as raised:
        read(cache, obj, 0, 100)
    assert raised.value.errno == errno.EIO


def test_an_adopted_file_is_served_without_fetching(tmp_path, cache, store):
    data = os.urandom(3 * CHUNK + 5)
    staged = tmp_path / "cache" / "staged"
    staged.write_bytes(data)
    cache.adopt("b", "k", "e9", str(staged), len(data))
    obj = cache.open("b", "k", "e9", len(data))
    assert read(cache, obj, 0, len(data)) == data
    assert store.gets == []


def test_versions_of_one_key_are_cached_apart(cache, store):
    store.objects["k"] = b"a" * CHUNK
    old = cache.open("b", "k", "v1", CHUNK)
    assert read(cache, old, 0, 4) == b"aaaa"
    store.objects["k"] = b"b" * CHUNK
    new = cache.open("b", "k", "v2", CHUNK)
    assert read(cache, new, 0, 4) == b"bbbb"
    assert read(cache, old, 0, 4) == b"aaaa"


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)], check=True)
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_a_full_cache_directory_serves_reads_uncached(small_tmpfs, store):
    cache = make_cache(small_tmpfs / "cache", store, capacity=64 * CHUNK)  # budget > disk
    try:
        store.objects["k"] = os.urandom(48 * CHUNK)  # 3 MiB through a 1 MiB disk
        obj = cache.open("b", "k", "e1", 48 * CHUNK)
        stream = ReadStream()
        data = b"".join(
            read(cache, obj, offset, CHUNK, stream) for offset in range(0, 48 * CHUNK, CHUNK)
        )
        assert data == store.objects["k"]
        assert cache.capacity < 1024 * 1024
    finally:
        cache.shutdown()


def test_a_sequential_read_through_a_small_cache_fetches_each_chunk_once(tmp_path, store):
    cache = make_cache(tmp_path / "cache", store, capacity=8 * CHUNK)
    try:
        data = store.objects["k"] = os.urandom(64 * CHUNK)
        obj = cache.open("b", "k", "e1", len(data))
        stream = ReadStream()
        got = b"".join(
            read(cache, obj, offset, CHUNK // 2, stream)
            for offset in range(0, len(data), CHUNK // 2)
        )
        assert got == data
        assert store.fetched() <= len(data) * 1.1
    finally:
        cache.shutdown()
