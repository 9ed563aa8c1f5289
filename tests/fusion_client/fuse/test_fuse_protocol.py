"""The FUSE wire protocol without a mount: requests as the kernel encodes them, replies checked
byte by byte against the ABI."""

from __future__ import annotations

import errno
import stat
import threading
from collections.abc import Iterator

import pytest

from fusion_client.fuse import (
    Attr,
    ConnInfo,
    Context,
    DirEntry,
    Entry,
    FuseError,
    Open,
    Operations,
    SetAttr,
    abi,
)
from fusion_client.fuse.abi import Opcode
from fusion_client.fuse.protocol import NO_REPLY, EntryReply, Protocol, split_seconds

ALL_FLAGS = (1 << 31) - 1  # every capability bit a kernel could offer in `flags`


def request(
    opcode: int, body: bytes = b"", *, nodeid: int = 1, unique: int = 8
) -> tuple[memoryview, int]:
    """A request exactly as read from /dev/fuse."""
    data = abi.IN_HEADER.pack(40 + len(body), opcode, unique, nodeid, 1000, 1000, 4242, 0, 0)
    return memoryview(bytearray(data + body)), 40 + len(body)


def init_body(minor: int = 40, flags: int = ALL_FLAGS, readahead: int = 131072) -> bytes:
    return abi.INIT_IN.pack(7, minor, readahead, flags) + bytes(48)


class Recorder(Operations):
    """Records what the protocol handed to it and answers with fixed values."""

    def __init__(self) -> None:
        self.seen: list[tuple] = []
        self.conn: ConnInfo | None = None

    def init(self, conn: ConnInfo) -> None:
        self.conn = conn

    def forget(self, ino: int, nlookup: int) -> None:
        self.seen.append(("forget", ino, nlookup))

    def lookup(self, ctx: Context, parent: int, name: bytes) -> Entry:
        if name == b"missing":
            return Entry.negative(2.5)
        if name == b"boom":
            raise RuntimeError("bug in the file system")
        if name == b"full":
            raise OSError(errno.ENOSPC, "No space left on device")
        return Entry(Attr(ino=7, size=3, mode=stat.S_IFREG | 0o644), entry_timeout=1.5)

    def setattr(self, ctx: Context, ino: int, changes: SetAttr) -> tuple[Attr, float]:
        self.seen.append(("setattr", changes))
        return Attr(ino=ino, mode=stat.S_IFREG), 1.0

    def write(
        self, ctx: Context, ino: int, fh: int, offset: int, data: memoryview, flags: int
    ) -> int:
        self.seen.append(("write", fh, offset, bytes(data), data.obj))
        return len(data)

    def create(
        self, ctx: Context, parent: int, name: bytes, mode: int, flags: int, umask: int
    ) -> tuple[Entry, Open]:
        self.seen.append(("create", parent, name, mode, flags, umask))
        return Entry(Attr(ino=9, mode=mode)), Open(fh=33, keep_cache=True)

    def rename(
        self, ctx: Context, parent: int, name: bytes, newparent: int, newname: bytes, flags: int
    ) -> None:
        self.seen.append(("rename", parent, name, newparent, newname, flags))

    def getxattr(self, ctx: Context, ino: int, name: bytes) -> bytes:
        if name != b"user.k":
            raise FuseError(errno.ENODATA)
        return b"value"

    def readdir(self, ctx: Context, ino: int, fh: int, offset: int) -> Iterator[DirEntry]:
        for i in range(offset, 1000):
            yield DirEntry(f"entry-{i:03d}".encode(), 100 + i, stat.S_IFREG >> 12)

    def readdirplus(self, ctx: Context, ino: int, fh: int, offset: int) -> Iterator[DirEntry]:
        names = [b".", b".."] + [f"e{i}".encode() for i in range(50)]
        for i in range(offset, len(names)):
            dot = names[i] in (b".", b"..")
            entry = None if dot else Entry(Attr(ino=200 + i, mode=stat.S_IFREG))
            yield DirEntry(names[i], 1 if dot else 200 + i, stat.S_IFDIR >> 12, entry)

    def readdirplus_sent(self, ctx: Context, parent: int, entries) -> None:
        self.seen.append(("sent", [d.ino for d in entries]))


@pytest.fixture
def ops() -> Recorder:
    return Recorder()


@pytest.fixture
def protocol(ops: Recorder) -> Protocol:
    protocol = Protocol(ops)
    protocol.handle(*request(Opcode.INIT, init_body()))
    return protocol


def unpack_dirents(payload: bytes) -> list[tuple[int, int, int, bytes]]:
    records, pos = [], 0
    while pos < len(payload):
        ino, off, namelen, kind = abi.DIRENT.unpack_from(payload, pos)
        start = pos + abi.DIRENT.size
        records.append((ino, off, kind, payload[start : start + namelen]))
        pos += abi.dirent_size(namelen)
    return records


def test_struct_sizes_match_the_kernel_abi() -> None:
    sizes = {
        abi.IN_HEADER: 40,
        abi.OUT_HEADER: 16,
        abi.INIT_OUT: 64,
        abi.ATTR: 88,
        abi.ENTRY_OUT: 128,
        abi.ATTR_OUT: 104,
        abi.OPEN_OUT: 16,
        abi.ENTRY_OPEN_OUT: 144,
        abi.STATFS_OUT: 80,
        abi.SETATTR_IN: 88,
        abi.READ_IN: 40,
        abi.WRITE_IN: 40,
        abi.RELEASE_IN: 24,
        abi.FALLOCATE_IN: 32,
        abi.COPY_FILE_RANGE_IN: 56,
        abi.DIRENT: 24,
    }
    assert {s.format: s.size for s in sizes} == {s.format: n for s, n in sizes.items()}
    assert abi.DEV_IOC_CLONE == 0x8004E500


def test_init_negotiates_1mib_writes_and_only_the_wanted_flags(ops: Recorder) -> None:
    protocol = Protocol(ops)
    unique, error, payload = protocol.handle(*request(Opcode.INIT, init_body(minor=40)))
    major, minor, readahead, flags, background, congestion, max_write, gran, pages, *_ = (
        abi.INIT_OUT.unpack(payload)
    )
    assert (unique, error, major, minor) == (8, 0, 7, abi.KERNEL_MINOR_VERSION)
    assert (max_write, pages, readahead, gran) == (1 << 20, 256, 131072, 1)
    assert (background, congestion) == (64, 48)
    wanted = (
        abi.ASYNC_READ,
        abi.PARALLEL_DIROPS,
        abi.DO_READDIRPLUS,
        abi.READDIRPLUS_AUTO,
        abi.AUTO_INVAL_DATA,
        abi.BIG_WRITES,
        abi.ATOMIC_O_TRUNC,
        abi.MAX_PAGES,
    )
    assert all(flags & flag for flag in wanted)
    assert not flags & (abi.WRITEBACK_CACHE | abi.EXPORT_SUPPORT | abi.POSIX_LOCKS)
    assert ops.conn is not None and ops.conn.max_write == 1 << 20 and ops.conn.has(abi.MAX_PAGES)


def test_init_grants_nothing_the_kernel_did_not_offer(ops: Recorder) -> None:
    protocol = Protocol(ops, readdirplus="off")
    offered = abi.ASYNC_READ | abi.DO_READDIRPLUS | abi.WRITEBACK_CACHE
    _, _, payload = protocol.handle(*request(Opcode.INIT, init_body(minor=31, flags=offered)))
    _, minor, _, flags, *_ = abi.INIT_OUT.unpack(payload)
    assert (minor, flags) == (31, abi.ASYNC_READ)


def test_init_asks_for_readdirplus_only_if_the_file_system_implements_it() -> None:
    class Plain(Operations):
        pass

    _, _, payload = Protocol(Plain()).handle(*request(Opcode.INIT, init_body()))
    flags = abi.INIT_OUT.unpack(payload)[3]
    assert not flags & (abi.DO_READDIRPLUS | abi.READDIRPLUS_AUTO) and flags & abi.ASYNC_READ


def test_init_reads_the_high_capability_bits_of_newer_kernels(ops: Recorder) -> None:
    body = abi.INIT_IN.pack(7, 40, 0, abi.INIT_EXT | abi.ASYNC_READ) + abi.INIT_IN_FLAGS2.pack(1)
    _, _, payload = Protocol(ops).handle(*request(Opcode.INIT, body + bytes(44)))
    assert ops.conn is not None and ops.conn.kernel_flags >> 32 == 1
    assert abi.INIT_OUT.unpack(payload)[3] == abi.INIT_EXT | abi.ASYNC_READ


def test_init_from_a_kernel_before_7_36_has_a_short_body(ops: Recorder) -> None:
    _, error, _ = Protocol(ops).handle(*request(Opcode.INIT, abi.INIT_IN.pack(7, 31, 0, 0)))
    assert error == 0 and ops.conn is not None and ops.conn.proto_minor == 31


def test_init_from_a_newer_major_answers_our_version_and_waits_for_another(
    ops: Recorder,
) -> None:
    protocol = Protocol(ops)
    body = abi.INIT_IN.pack(8, 0, 0, 0) + bytes(48)
    _, error, payload = protocol.handle(*request(Opcode.INIT, body))
    assert error == 0 and abi.INIT_OUT.unpack(payload)[:2] == (7, abi.KERNEL_MINOR_VERSION)
    assert protocol.conn is None and ops.conn is None


def test_init_from_a_too_old_kernel_is_eproto(ops: Recorder) -> None:
    _, error, _ = Protocol(ops).handle(*request(Opcode.INIT, init_body(minor=12)))
    assert error == errno.EPROTO


@pytest.mark.parametrize("opcode", [Opcode.GETLK, Opcode.IOCTL, Opcode.STATX, Opcode.TMPFILE, 999])
def test_opcodes_we_do_not_serve_answer_enosys(protocol: Protocol, opcode: int) -> None:
    assert protocol.handle(*request(opcode, bytes(64)))[1:] == (errno.ENOSYS, None)


def test_operations_not_overridden_answer_enosys(protocol: Protocol) -> None:
    assert protocol.handle(*request(Opcode.READLINK))[1] == errno.ENOSYS
    assert protocol.handle(*request(Opcode.FSYNC, abi.FSYNC_IN.pack(1, 0, 0)))[1] == errno.ENOSYS


def test_open_release_and_statfs_succeed_by_default_as_in_libfuse() -> None:
    protocol = Protocol(Operations())
    for opcode in (Opcode.OPEN, Opcode.OPENDIR):
        assert protocol.handle(*request(opcode, abi.OPEN_IN.pack(0, 0)))[1:] == (
            0,
            abi.OPEN_OUT.pack(0, 0, 0),
        )
    for opcode in (Opcode.RELEASE, Opcode.RELEASEDIR):
        assert protocol.handle(*request(opcode, abi.RELEASE_IN.pack(0, 0, 0, 0)))[1:] == (0, b"")
    _, error, statfs = protocol.handle(*request(Opcode.STATFS))
    assert error == 0 and abi.STATFS_OUT.unpack(statfs)[6] == 255  # namelen


def test_a_bug_in_an_operation_answers_eio_instead_of_hanging(protocol: Protocol) -> None:
    assert protocol.handle(*request(Opcode.LOOKUP, b"boom\0"))[1:] == (errno.EIO, None)


def test_an_os_error_in_an_operation_answers_its_errno(protocol: Protocol) -> None:
    assert protocol.handle(*request(Opcode.LOOKUP, b"full\0"))[1:] == (errno.ENOSPC, None)


def test_forget_and_batch_forget_reach_the_file_system_without_a_reply(
    protocol: Protocol, ops: Recorder
) -> None:
    assert protocol.handle(*request(Opcode.FORGET, abi.FORGET_IN.pack(3), nodeid=7))[2] is (
        NO_REPLY
    )
    batch = abi.BATCH_FORGET_IN.pack(2, 0) + abi.FORGET_ONE.pack(8, 1) + abi.FORGET_ONE.pack(9, 4)
    assert protocol.handle(*request(Opcode.BATCH_FORGET, batch))[2] is NO_REPLY
    assert ops.seen == [("forget", 7, 3), ("forget", 8, 1), ("forget", 9, 4)]


def test_lookup_answers_an_entry_with_split_timeouts(protocol: Protocol) -> None:
    _, error, reply = protocol.handle(*request(Opcode.LOOKUP, b"file\0"))
    assert error == 0 and isinstance(reply, EntryReply) and list(reply.inos) == [7]
    nodeid, _, entry_s, attr_s, entry_ns, attr_ns, ino, size, *_ = abi.ENTRY_OUT.unpack(
        reply.payload
    )
    assert (nodeid, entry_s, entry_ns, attr_s, attr_ns, ino, size) == (7, 1, 5e8, 1, 0, 7, 3)


def test_negative_entry_is_ino_zero_with_a_timeout_and_counts_no_lookup(
    protocol: Protocol,
) -> None:
    _, _, reply = protocol.handle(*request(Opcode.LOOKUP, b"missing\0"))
    nodeid, _, entry_s, _, entry_ns, *_ = abi.ENTRY_OUT.unpack(reply.payload)
    assert (nodeid, entry_s, entry_ns, list(reply.inos)) == (0, 2, 5e8, [])


def test_undelivered_entry_reply_gives_its_lookup_back(protocol: Protocol, ops: Recorder) -> None:
    _, _, reply = protocol.handle(*request(Opcode.LOOKUP, b"file\0"))
    protocol.undelivered(reply)
    assert ops.seen == [("forget", 7, 1)]


def test_setattr_passes_only_valid_fields_and_resolves_now(
    protocol: Protocol, ops: Recorder
) -> None:
    valid = abi.FATTR_SIZE | abi.FATTR_MODE | abi.FATTR_MTIME | abi.FATTR_MTIME_NOW
    body = abi.SETATTR_IN.pack(valid, 0, 0, 123, 0, 0, 5, 0, 0, 0, 0, 0o600, 0, 0, 0, 0)
    assert protocol.handle(*request(Opcode.SETATTR, body, nodeid=4))[1] == 0
    (_, changes) = ops.seen[0]
    assert (changes.size, changes.mode, changes.uid, changes.atime_ns) == (123, 0o600, None, None)
    assert changes.mtime_ns > 5 * 10**9  # "now", not the 5 seconds in the request


def test_write_hands_over_a_view_of_the_request_buffer_not_a_copy(
    protocol: Protocol, ops: Recorder
) -> None:
    buf, n = request(Opcode.WRITE, abi.WRITE_IN.pack(5, 4096, 3, 0, 0, 0o2, 0) + b"abc")
    _, error, payload = protocol.handle(buf, n)
    assert (error, abi.WRITE_OUT.unpack(payload)) == (0, (3, 0))
    (_, fh, offset, data, underlying) = ops.seen[0]
    assert (fh, offset, data) == (5, 4096, b"abc") and underlying is buf.obj


def test_create_answers_entry_and_open_handle(protocol: Protocol, ops: Recorder) -> None:
    body = abi.CREATE_IN.pack(0o101, stat.S_IFREG | 0o644, 0o022, 0) + b"new\0"
    _, _, reply = protocol.handle(*request(Opcode.CREATE, body, nodeid=3))
    assert len(reply.payload) == 144 and list(reply.inos) == [9]
    fh, open_flags, _ = abi.OPEN_OUT.unpack_from(reply.payload, 128)
    assert (fh, open_flags) == (33, abi.FOPEN_KEEP_CACHE)
    assert ops.seen == [("create", 3, b"new", stat.S_IFREG | 0o644, 0o101, 0o022)]


def test_rename2_passes_both_names_and_flags(protocol: Protocol, ops: Recorder) -> None:
    body = abi.RENAME2_IN.pack(12, 1, 0) + b"old\0new\0"
    assert protocol.handle(*request(Opcode.RENAME2, body, nodeid=3))[1:] == (0, b"")
    assert ops.seen == [("rename", 3, b"old", 12, b"new", 1)]


def test_readdir_packs_aligned_records_until_the_kernel_buffer_is_full(
    protocol: Protocol,
) -> None:
    _, _, payload = protocol.handle(
        *request(Opcode.READDIR, abi.READ_IN.pack(0, 0, 4096, 0, 0, 0, 0))
    )
    records = unpack_dirents(bytes(payload))
    per_record = abi.dirent_size(len(b"entry-000"))  # 24 + 9 -> 40 bytes
    assert len(records) == 4096 // per_record and len(payload) <= 4096
    assert records[0] == (100, 1, stat.S_IFREG >> 12, b"entry-000")
    assert [off for _, off, _, _ in records] == list(range(1, len(records) + 1))


def test_readdir_resumes_at_the_entry_that_did_not_fit(protocol: Protocol) -> None:
    first = unpack_dirents(
        bytes(protocol.handle(*request(Opcode.READDIR, abi.READ_IN.pack(0, 0, 400, 0, 0, 0, 0)))[2])
    )
    cookie = first[-1][1]
    second = unpack_dirents(
        bytes(
            protocol.handle(*request(Opcode.READDIR, abi.READ_IN.pack(0, cookie, 400, 0, 0, 0, 0)))[
                2
            ]
        )
    )
    assert second[0][3] == f"entry-{len(first):03d}".encode()


def test_readdirplus_counts_lookups_only_for_sent_entries_other_than_dots(
    protocol: Protocol, ops: Recorder
) -> None:
    size = 2 * abi.direntplus_size(2) + 3 * abi.direntplus_size(2) + 8  # room for 5 records
    _, _, reply = protocol.handle(
        *request(Opcode.READDIRPLUS, abi.READ_IN.pack(0, 0, size, 0, 0, 0, 0))
    )
    assert ops.seen == [("sent", [202, 203, 204])] and list(reply.inos) == [202, 203, 204]
    payload = bytes(reply.payload)
    first_name_at = abi.ENTRY_OUT.size + abi.DIRENT.size
    assert payload[first_name_at : first_name_at + 1] == b"."
    assert abi.ENTRY_OUT.unpack_from(payload, 0)[0] == 0  # "." carries no entry


def test_interrupt_flags_the_running_request_and_answers_eagain_for_unknown_ones(
    ops: Recorder,
) -> None:
    started, release = threading.Event(), threading.Event()
    seen: list[Context] = []
    interrupted: list[int] = []

    class Slow(Recorder):
        def readlink(self, ctx: Context, ino: int) -> bytes:
            seen.append(ctx)
            started.set()
            release.wait(10)
            raise FuseError(errno.EINTR if ctx.interrupted else errno.EIO)

        def interrupt(self, unique: int) -> None:
            interrupted.append(unique)

    protocol = Protocol(Slow())
    result: list[tuple] = []
    worker = threading.Thread(
        target=lambda: result.append(protocol.handle(*request(Opcode.READLINK, unique=40)))
    )
    worker.start()
    assert started.wait(10)
    answer = protocol.handle(*request(Opcode.INTERRUPT, abi.INTERRUPT_IN.pack(40), unique=41))
    assert answer[2] is NO_REPLY and seen[0].interrupted and interrupted == [40]
    release.set()
    worker.join(10)
    assert result == [(40, errno.EINTR, None)]
    unknown = protocol.handle(*request(Opcode.INTERRUPT, abi.INTERRUPT_IN.pack(90), unique=91))
    assert unknown == (91, errno.EAGAIN, None)


def test_interrupt_that_overtakes_its_request_still_reaches_it(ops: Recorder) -> None:
    seen: list[bool] = []

    class Watcher(Recorder):
        def readlink(self, ctx: Context, ino: int) -> bytes:
            seen.append(ctx.interrupted)
            return b"target"

    protocol = Protocol(Watcher())
    early = protocol.handle(*request(Opcode.INTERRUPT, abi.INTERRUPT_IN.pack(60), unique=61))
    assert early == (61, errno.EAGAIN, None)
    protocol.handle(*request(Opcode.READLINK, unique=60))
    protocol.handle(*request(Opcode.READLINK, unique=62))
    assert seen == [True, False] and not protocol.early_interrupts


def test_getxattr_answers_size_probes_and_erange(protocol: Protocol) -> None:
    def getxattr(size: int, name: bytes = b"user.k") -> tuple:
        body = abi.GETXATTR_IN.pack(size, 0) + name + b"\0"
        return protocol.handle(*request(Opcode.GETXATTR, body))[1:]

    assert getxattr(0) == (0, abi.GETXATTR_OUT.pack(5, 0))
    assert getxattr(64) == (0, b"value")
    assert getxattr(2) == (errno.ERANGE, None)
    assert getxattr(64, b"user.none") == (errno.ENODATA, None)


def test_timeouts_split_into_seconds_and_nanoseconds() -> None:
    assert split_seconds(0) == (0, 0)
    assert split_seconds(-1) == (0, 0)
    assert split_seconds(2.25) == (2, 250_000_000)
