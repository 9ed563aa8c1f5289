"""File-system semantics on in-memory stores (no /dev/fuse, root or server): names, listings,
writes and their outcomes, renames, symlinks, version pinning, and the one errno mapping."""

from __future__ import annotations

import errno
import os

import pytest

from fusion_client.fuse import FuseError
from fusion_client.store import (
    AccessDenied,
    PreconditionFailed,
    StoreError,
    StoreUnavailable,
    Throttled,
)
from fusion_client.store.memory import MemoryStoreError
from tests.fusion_client.fs.memstore_fs import CTX, MemFusion, MiB, memory_fusion


@pytest.fixture
def mem(tmp_path):
    yield from memory_fusion(tmp_path, "s3", "gs", "az")


def store_error(kind: type, status: int, code: str) -> Exception:
    error_class = type(f"Memory{kind.__name__}", (MemoryStoreError, kind), {})
    error = error_class.__new__(error_class)
    StoreError.__init__(error, status, code, "injected", request_id="req-1")
    return error


def errno_of(call) -> int:
    with pytest.raises(FuseError) as raised:
        call()
    return raised.value.errno


def test_the_mount_root_lists_one_directory_per_store(mem: MemFusion):
    assert mem.names("") == ["az", "gs", "s3"]


def test_a_stored_object_is_found_by_lookup_with_its_size(mem: MemFusion):
    mem.stores["gs"].put_object("bkt", "dir/data.txt", b"hello")
    attr = mem.fs.getattr(CTX, mem.ino("gs/bkt/dir/data.txt"), None)[0]
    assert attr.size == 5 and attr.mode & 0o170000 == 0o100000


def test_a_missing_name_is_a_negative_lookup(mem: MemFusion):
    parent = mem.ino("s3/bkt")
    assert mem.fs.lookup(CTX, parent, b"nothing-here").attr.ino == 0


def test_readdir_shows_files_and_prefixes_as_directories_across_listing_pages(mem: MemFusion):
    store = mem.stores["az"]
    for n in range(1005):  # more than one page of 1000
        store.put_object("bkt", f"many/f{n:04d}", b"x")
    store.put_object("bkt", "many/sub/inner", b"y")
    names = mem.names("az/bkt/many")
    assert len(names) == 1006 and "sub" in names and names[0] == "f0000"
    assert store.calls["list_page"] >= 2


def test_a_written_file_is_in_the_store_once_synced(mem: MemFusion):
    mem.write_file("az/bkt/result.txt", b"result\n", fsync=True)
    assert mem.stores["az"].data("bkt", "result.txt") == b"result\n"
    assert mem.fs.lost_files() == {}


def test_a_large_written_file_is_uploaded_in_parts_and_reads_back_whole(mem: MemFusion):
    data = os.urandom(12 * MiB + 5)
    mem.write_file("gs/bkt/big.bin", data)
    assert mem.stores["gs"].data("bkt", "big.bin") == data
    assert mem.stores["gs"].calls["upload_part"] == 3
    assert mem.read_file("gs/bkt/big.bin") == data


def test_an_upload_that_fails_for_good_is_eio_at_fsync_and_named_as_lost(mem: MemFusion):
    down = store_error(StoreUnavailable, 0, "ConnectionError")
    mem.stores["s3"].fail_next("put_object", down, times=9)  # fsync, close, exit
    assert errno_of(lambda: mem.write_file("s3/bkt/lost.txt", b"data", fsync=True)) == errno.EIO
    mem.fs.drain()
    assert list(mem.fs.lost_files()) == ["s3://bkt/lost.txt"]


def test_a_later_successful_upload_clears_the_loss(mem: MemFusion):
    down = store_error(StoreUnavailable, 0, "ConnectionError")
    mem.stores["s3"].fail_next("put_object", down, times=2)
    with pytest.raises(FuseError):
        mem.write_file("s3/bkt/again.txt", b"one", fsync=True)
    mem.write_file("s3/bkt/again.txt", b"two")
    mem.fs.drain()
    assert mem.fs.lost_files() == {}
    assert mem.stores["s3"].data("bkt", "again.txt") == b"two"


def test_rename_moves_the_object_and_removes_the_old_key(mem: MemFusion):
    mem.stores["gs"].put_object("bkt", "a.txt", b"content")
    parent = mem.ino("gs/bkt")
    mem.fs.rename(CTX, parent, b"a.txt", parent, b"b.txt", 0)
    assert mem.stores["gs"].data("bkt", "b.txt") == b"content"
    assert "a.txt" not in mem.stores["gs"].buckets["bkt"]


def test_rename_of_a_directory_moves_every_object_below_it(mem: MemFusion):
    for key in ("d/x", "d/sub/y"):
        mem.stores["az"].put_object("bkt", key, key.encode())
    parent = mem.ino("az/bkt")
    mem.fs.rename(CTX, parent, b"d", parent, b"e", 0)
    assert sorted(mem.stores["az"].buckets["bkt"]) == ["e/sub/y", "e/x"]


def test_rename_between_clouds_is_exdev_so_mv_copies(mem: MemFusion):
    mem.stores["s3"].put_object("bkt", "a.txt", b"content")
    call = lambda: mem.fs.rename(CTX, mem.ino("s3/bkt"), b"a.txt", mem.ino("gs/bkt"), b"a", 0)  # noqa: E731
    assert errno_of(call) == errno.EXDEV


def test_a_symlink_is_an_object_holding_its_target_and_reads_back_as_a_link(mem: MemFusion):
    entry = mem.fs.symlink(CTX, mem.ino("gs/bkt"), b"link", b"target/file")
    assert mem.stores["gs"].data("bkt", "link") == b"target/file"
    assert mem.stores["gs"].head_object("bkt", "link").metadata["mode"] == "41471"
    assert mem.fs.readlink(CTX, entry.attr.ino) == b"target/file"


def test_a_listed_symlink_is_shown_as_a_link(mem: MemFusion):
    mem.stores["az"].put_object("bkt", "ln", b"elsewhere", metadata={"mode": "41471"})
    mem.names("az/bkt")
    attr = mem.fs.getattr(CTX, mem.ino("az/bkt/ln"), None)[0]
    assert attr.mode & 0o170000 == 0o120000


def test_rmdir_of_a_directory_with_objects_is_enotempty(mem: MemFusion):
    mem.stores["s3"].put_object("bkt", "full/x", b"1")
    assert errno_of(lambda: mem.fs.rmdir(CTX, mem.ino("s3/bkt"), b"full")) == errno.ENOTEMPTY


def test_a_reader_stays_on_the_version_it_opened(mem: MemFusion):
    store = mem.stores["gs"]
    store.put_object("bkt", "v.bin", b"1" * (3 * MiB))
    ino, fh = mem.open("gs/bkt/v.bin")
    try:
        assert mem.pread(ino, fh, 0, 10) == b"1" * 10
        store.put_object("bkt", "v.bin", b"2" * (3 * MiB))
        assert errno_of(lambda: mem.pread(ino, fh, 2 * MiB, 10)) == errno.EIO
    finally:
        mem.fs.release(CTX, ino, fh, 0)
    assert mem.read_file("gs/bkt/v.bin")[:10] == b"2" * 10


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (store_error(AccessDenied, 403, "AuthorizationPermissionMismatch"), errno.EACCES),
        (store_error(Throttled, 429, "TooManyRequests"), errno.EBUSY),
        (store_error(StoreUnavailable, 0, "ConnectionError"), errno.EIO),
        (store_error(PreconditionFailed, 412, "ConditionNotMet"), errno.EIO),
    ],
    ids=["denied-is-eacces", "throttled-is-ebusy", "unreachable-is-eio", "changed-is-eio"],
)
def test_store_errors_map_to_one_errno_each(mem: MemFusion, error, expected):
    mem.stores["az"].put_object("bkt", "f", b"x")
    mem.stores["az"].fail_next("list_page", error)  # a lookup lists a small directory first,
    mem.stores["az"].fail_next("head_object", error)  # and asks for the name when that fails
    assert errno_of(lambda: mem.ino("az/bkt/f")) == expected
