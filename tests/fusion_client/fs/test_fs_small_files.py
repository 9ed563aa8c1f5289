"""Many small files on in-memory stores, counted request by request: a directory's listing is
kept current by our own changes (a name known absent costs nothing), small new files upload
after close, and files rewritten in close/reopen cycles upload once when they settle."""

from __future__ import annotations

import os
import threading
import time

import pytest

from fusion_client.fuse import FuseError
from fusion_client.store.memory import MemoryNotFound
from tests.fusion_client.fs.memstore_fs import CTX, MemFusion, memory_fusion
from tests.support import wait_until

LONG = 60.0  # seconds: a TTL or settle time no test reaches


@pytest.fixture
def mem(tmp_path):
    yield from memory_fusion(tmp_path, ttl=LONG, write_settle=LONG)


def requests(mem: MemFusion) -> dict[str, int]:
    return dict(mem.stores["s3"].calls)


def made_since(before: dict[str, int], mem: MemFusion) -> dict[str, int]:
    """The store requests made since `before` was taken, by operation."""
    after = requests(mem)
    return {op: after[op] - before.get(op, 0) for op in after if after[op] != before.get(op, 0)}


def mkdir(mem: MemFusion, path: str) -> None:
    parent, name = mem.parent(path)
    mem.fs.lookup(CTX, parent, name)
    mem.fs.mkdir(CTX, parent, name, 0o755, 0o022)


def append(mem: MemFusion, path: str, data: bytes) -> None:
    """`echo data >> path` as the kernel sends it: lookup, open, write at the end, close."""
    parent, name = mem.parent(path)
    ino = mem.fs.lookup(CTX, parent, name).attr.ino
    if not ino:
        mem.write_file(path, data)
        return
    fh = mem.fs.open(CTX, ino, os.O_WRONLY | os.O_APPEND).fh
    try:
        size = mem.fs.getattr(CTX, ino, fh)[0].size
        mem.fs.write(CTX, ino, fh, size, memoryview(data), 0)
        mem.fs.flush(CTX, ino, fh, 0)
    finally:
        mem.fs.release(CTX, ino, fh, 0)


def test_files_written_into_a_directory_made_through_the_mount_cost_one_put_each(mem):
    mkdir(mem, "s3/bkt/out")
    before = requests(mem)
    for n in range(200):
        mem.write_file(f"s3/bkt/out/f{n}", b"x" * 8192)
    mem.fs.drain()
    assert made_since(before, mem) == {"put_object": 200}


def test_a_lookup_in_a_small_unlisted_directory_lists_it_once_for_every_name(mem):
    for n in range(3):
        mem.stores["s3"].put_object("bkt", f"in/old{n}", b"o" * 5000)  # not symlink-probed
    parent = mem.ino("s3/bkt/in")
    before = requests(mem)
    for n in range(50):
        assert mem.fs.lookup(CTX, parent, f"new{n}".encode()).attr.ino == 0
    assert mem.fs.lookup(CTX, parent, b"old1").attr.size == 5000
    assert made_since(before, mem) == {"list_page": 1}


def test_the_kept_listing_shows_created_renamed_and_unlinked_files(mem):
    mkdir(mem, "s3/bkt/d")
    for name in ("a", "b", "c"):
        mem.write_file(f"s3/bkt/d/{name}", name.encode())
    parent = mem.ino("s3/bkt/d")
    mem.fs.rename(CTX, parent, b"a", parent, b"z", 0)
    mem.fs.unlink(CTX, parent, b"b")
    mem.fs.drain()
    lists = mem.stores["s3"].calls["list_page"]
    assert [mem.fs.lookup(CTX, parent, n).attr.ino != 0 for n in (b"a", b"b", b"c", b"z")] == [
        False,
        False,
        True,
        True,
    ]
    assert mem.stores["s3"].calls["list_page"] == lists
    assert mem.names("s3/bkt/d") == ["c", "z"]
    assert mem.stores["s3"].data("bkt", "d/z") == b"a"


@pytest.fixture
def short_ttl(tmp_path):
    yield from memory_fusion(tmp_path, ttl=0.05, write_settle=0.1)


def test_a_name_another_client_created_is_found_once_the_listing_is_stale(short_ttl):
    mkdir(short_ttl, "s3/bkt/shared")
    parent = short_ttl.ino("s3/bkt/shared")
    short_ttl.stores["s3"].put_object("bkt", "shared/theirs", b"t")
    time.sleep(0.1)
    assert short_ttl.fs.lookup(CTX, parent, b"theirs").attr.size == 1


def test_close_of_a_small_new_file_does_not_wait_for_its_upload(mem):
    store = mem.stores["s3"]
    gate = threading.Event()
    put = store.put_object
    store.put_object = lambda *a, **k: (gate.wait(30), put(*a, **k))[1]  # type: ignore[method-assign]
    mem.write_file("s3/bkt/quick.txt", b"quick\n")
    assert store.calls["put_object"] == 0
    assert mem.read_file("s3/bkt/quick.txt") == b"quick\n"  # this mount reads it at once
    gate.set()
    mem.fs.drain()
    assert store.data("bkt", "quick.txt") == b"quick\n"


def test_fsync_waits_for_the_background_upload_of_a_closed_file(mem):
    store = mem.stores["s3"]
    gate = threading.Event()
    put = store.put_object
    store.put_object = lambda *a, **k: (gate.wait(30), put(*a, **k))[1]  # type: ignore[method-assign]
    mem.write_file("s3/bkt/synced.txt", b"synced\n")
    ino, fh = mem.open("s3/bkt/synced.txt")
    synced = threading.Thread(target=mem.fs.fsync, args=(CTX, ino, fh, False))
    synced.start()
    synced.join(0.2)
    assert synced.is_alive()
    gate.set()
    synced.join(30)
    assert store.data("bkt", "synced.txt") == b"synced\n"
    mem.fs.release(CTX, ino, fh, 0)


def test_a_failed_background_upload_is_eio_at_fsync_and_lost_at_exit(mem):
    down = MemoryNotFound(0, "ConnectionError", "down")  # any store error past retries
    mem.stores["s3"].fail_next("put_object", down, times=9)
    mem.write_file("s3/bkt/lost.txt", b"lost")  # close itself succeeds
    ino, fh = mem.open("s3/bkt/lost.txt")
    with pytest.raises(FuseError):
        mem.fs.fsync(CTX, ino, fh, False)
    mem.fs.release(CTX, ino, fh, 0)
    mem.fs.drain()
    assert list(mem.fs.lost_files()) == ["s3://bkt/lost.txt"]


def test_appending_in_close_reopen_cycles_uploads_once_when_the_file_settles(mem):
    for n in range(100):
        append(mem, "s3/bkt/log.txt", b"line %d\n" % n)
    puts = mem.stores["s3"].calls["put_object"]
    mem.fs.drain()
    expected = b"".join(b"line %d\n" % n for n in range(100))
    assert mem.stores["s3"].data("bkt", "log.txt") == expected
    assert puts <= 1 and mem.stores["s3"].calls["put_object"] == puts + 1


def test_a_file_left_alone_after_append_cycles_is_uploaded_without_exit(short_ttl):
    for n in range(5):
        append(short_ttl, "s3/bkt/settles.txt", b"%d\n" % n)
    objects = short_ttl.stores["s3"].buckets["bkt"]
    settled = b"0\n1\n2\n3\n4\n"
    wait_until(lambda: objects["settles.txt"].data == settled, 10, "the settled upload")


def test_reading_the_files_of_a_listed_directory_costs_one_get_each_and_again_nothing(mem):
    bodies = {f"in/f{n:02d}": os.urandom(5000 + n) for n in range(40)}
    for key, body in bodies.items():
        mem.stores["s3"].put_object("bkt", key, body)
    mem.ino("s3/bkt/in")
    before = requests(mem)
    names = mem.names("s3/bkt/in")
    for _ in range(2):
        assert {f"in/{name}": mem.read_file(f"s3/bkt/in/{name}") for name in names} == bodies
    assert made_since(before, mem) == {"list_page": 1, "get_range_into": 40}


def test_opening_a_file_of_a_listed_directory_fetches_the_next_small_files_ahead(mem):
    for n in range(10):
        mem.stores["s3"].put_object("bkt", f"ahead/f{n}", b"a" * 5000)
    mem.stores["s3"].put_object("bkt", "ahead/large", b"b" * (2 * 2**20))  # past one chunk
    mem.names("s3/bkt/ahead")
    ino, fh = mem.open("s3/bkt/ahead/f3")
    calls = mem.stores["s3"].calls
    wait_until(lambda: calls["get_range_into"] == 6, 10, "f4 to f9 fetched ahead")
    mem.fs.release(CTX, ino, fh, 0)
