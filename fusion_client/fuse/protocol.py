"""Request decoding, dispatch to `Operations`, and reply encoding: FUSE without the file descriptor.

`Protocol.handle(buffer, length)` takes one request exactly as read from /dev/fuse and returns
what to write back, so every opcode can be unit tested with bytes alone; `session.py` does the I/O.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fusion_client.fuse import abi
from fusion_client.fuse.abi import Opcode
from fusion_client.fuse.ops import (
    Attr,
    ConnInfo,
    Context,
    DirEntry,
    Entry,
    FuseError,
    Open,
    Operations,
    SetAttr,
)
from fusion_client.log import get_logger

log = get_logger("fuse")

# Capabilities we ask for (each only if the kernel offers it). Deliberately NOT requested:
# - WRITEBACK_CACHE: the kernel would buffer, merge and reorder writes and send them late (even
#   after close). Eager multipart uploads need every write as the application issues it, and
#   fsync/close must be able to report that the data is durable, so every write must reach us.
# - EXPORT_SUPPORT (no NFS export), POSIX_LOCKS/FLOCK_LOCKS (the kernel keeps locks locally),
#   SPLICE_* (no splice from Python), NO_OPEN_SUPPORT (files need open handles).
WANTED_FLAGS = (
    abi.ASYNC_READ
    | abi.PARALLEL_DIROPS
    | abi.AUTO_INVAL_DATA
    | abi.BIG_WRITES
    | abi.ATOMIC_O_TRUNC
    | abi.MAX_PAGES
    | abi.ABORT_ERROR
    | abi.CACHE_SYMLINKS
    | abi.INIT_EXT
)
READDIRPLUS_MODES = {
    "off": 0,
    "always": abi.DO_READDIRPLUS,  # `ls` without -l gets attributes too (one request per batch)
    "auto": abi.DO_READDIRPLUS | abi.READDIRPLUS_AUTO,  # plus only when the caller also stats
}

EARLY_INTERRUPTS_KEPT = 256
NO_REPLY: Any = object()  # handle() returns this payload for FORGET & co (the kernel awaits none)


@dataclass(slots=True)
class EntryReply:
    """A reply carrying new lookup references; if it cannot be delivered they are forgotten."""

    payload: bytes | bytearray | memoryview
    inos: Sequence[int]


def split_seconds(seconds: float) -> tuple[int, int]:
    """A timeout in seconds as the (whole seconds, nanoseconds) pair the kernel expects."""
    if seconds <= 0:
        return 0, 0
    whole = int(seconds)
    return whole, int((seconds - whole) * 1e9)


def attr_fields(a: Attr) -> tuple[int, ...]:
    """The fuse_attr field values, in order (times before 1970 clamp to the epoch)."""
    asec, ansec = divmod(max(a.atime_ns, 0), 1_000_000_000)
    msec, mnsec = divmod(max(a.mtime_ns, 0), 1_000_000_000)
    csec, cnsec = divmod(max(a.ctime_ns, 0), 1_000_000_000)
    return (
        a.ino,
        a.size,
        a.blocks,
        asec,
        msec,
        csec,
        ansec,
        mnsec,
        cnsec,
        a.mode,
        a.nlink,
        a.uid,
        a.gid,
        a.rdev,
        a.blksize,
        0,
    )


def entry_fields(e: Entry) -> tuple[int, ...]:
    """The fuse_entry_out field values, in order."""
    esec, ensec = split_seconds(e.entry_timeout)
    asec, ansec = split_seconds(e.attr_timeout)
    return (e.attr.ino, e.generation, esec, asec, ensec, ansec, *attr_fields(e.attr))


def pack_attr_out(attr: Attr, timeout: float) -> bytes:
    sec, nsec = split_seconds(timeout)
    return abi.ATTR_OUT.pack(sec, nsec, 0, *attr_fields(attr))


def open_flags(o: Open) -> int:
    return (
        (abi.FOPEN_DIRECT_IO if o.direct_io else 0)
        | (abi.FOPEN_KEEP_CACHE if o.keep_cache else 0)
        | (abi.FOPEN_NONSEEKABLE if o.nonseekable else 0)
        | (abi.FOPEN_CACHE_DIR if o.cache_dir else 0)
        | (abi.FOPEN_NOFLUSH if o.noflush else 0)
    )


def _close(iterator: Iterable[DirEntry]) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


def pack_dirents(entries: Iterable[DirEntry], offset: int, size: int) -> memoryview:
    """fuse_dirent records for READDIR, as many as fit in `size` bytes."""
    out = bytearray(size)
    pos = 0
    iterator = iter(entries)
    try:
        for index, d in enumerate(iterator):
            namelen = len(d.name)
            end = pos + abi.dirent_size(namelen)
            if end > size:
                break
            cookie = d.offset or offset + index + 1
            abi.DIRENT.pack_into(out, pos, d.ino, cookie, namelen, d.type)
            start = pos + abi.DIRENT.size
            out[start : start + namelen] = d.name
            pos = end
    finally:
        _close(iterator)
    return memoryview(out)[:pos]


_ABSENT = Entry(Attr(ino=0), entry_timeout=0.0, attr_timeout=0.0)


def pack_direntplus(
    entries: Iterable[DirEntry], offset: int, size: int
) -> tuple[memoryview, list[DirEntry]]:
    """fuse_direntplus records for READDIRPLUS, as many as fit in `size` bytes.

    Also returns the entries the kernel will count as lookups: those sent with a non-zero ino,
    except "." and ".." (the kernel does not link them).
    """
    out = bytearray(size)
    pos = 0
    counted: list[DirEntry] = []
    iterator = iter(entries)
    try:
        for index, d in enumerate(iterator):
            namelen = len(d.name)
            end = pos + abi.direntplus_size(namelen)
            if end > size:
                break
            entry = d.entry or _ABSENT
            cookie = d.offset or offset + index + 1
            abi.ENTRY_OUT.pack_into(out, pos, *entry_fields(entry))
            dirent = pos + abi.ENTRY_OUT.size
            abi.DIRENT.pack_into(out, dirent, d.ino, cookie, namelen, d.type)
            start = dirent + abi.DIRENT.size
            out[start : start + namelen] = d.name
            pos = end
            if entry.attr.ino and d.name not in (b".", b".."):
                counted.append(d)
    finally:
        _close(iterator)
    return memoryview(out)[:pos], counted


def _name(body: memoryview) -> bytes:
    """The single NUL-terminated name that makes up `body`."""
    raw = bytes(body)
    end = raw.find(b"\0")
    return raw if end < 0 else raw[:end]


def _two_names(body: memoryview) -> tuple[bytes, bytes]:
    first, second = bytes(body).split(b"\0")[:2]
    return first, second


Handler = Callable[[Context, int, memoryview, int], Any]
HEADER = abi.IN_HEADER.size


class Protocol:
    """Decodes requests, calls the file system, encodes replies. Thread-safe: any number of
    workers call `handle` at once; the only shared mutable state is the in-flight table."""

    def __init__(
        self,
        ops: Operations,
        *,
        max_write: int = 1 << 20,
        max_background: int = 64,
        readdirplus: str = "auto",
    ) -> None:
        if readdirplus not in READDIRPLUS_MODES:
            raise ValueError(f"readdirplus must be one of {sorted(READDIRPLUS_MODES)}")
        self.ops = ops
        self.max_write = max(4096, min(max_write, abi.MAX_MAX_PAGES * abi.PAGE_SIZE))
        self.max_background = max_background
        self.wanted_flags = WANTED_FLAGS | READDIRPLUS_MODES[readdirplus]
        if type(ops).readdirplus is Operations.readdirplus:
            # The kernel does not fall back to READDIR when READDIRPLUS answers ENOSYS: it
            # fails the listing. So only ask for it when the file system implements it.
            self.wanted_flags &= ~READDIRPLUS_MODES["auto"]
        self.conn: ConnInfo | None = None
        self.destroyed = False
        self.inflight: dict[int, Context] = {}
        # INTERRUPTs that overtook their request (read by another worker, not yet registered);
        # insertion-ordered and bounded, since most targets turn out to be already answered.
        self.early_interrupts: dict[int, None] = {}
        self.handlers: dict[int, Handler] = {
            Opcode.INIT: self._init,
            Opcode.DESTROY: self._destroy,
            Opcode.INTERRUPT: self._interrupt,
            Opcode.FORGET: self._forget,
            Opcode.BATCH_FORGET: self._batch_forget,
            Opcode.NOTIFY_REPLY: self._no_reply,
            Opcode.LOOKUP: self._lookup,
            Opcode.GETATTR: self._getattr,
            Opcode.SETATTR: self._setattr,
            Opcode.READLINK: self._readlink,
            Opcode.SYMLINK: self._symlink,
            Opcode.MKNOD: self._mknod,
            Opcode.MKDIR: self._mkdir,
            Opcode.UNLINK: self._unlink,
            Opcode.RMDIR: self._rmdir,
            Opcode.RENAME: self._rename,
            Opcode.RENAME2: self._rename2,
            Opcode.LINK: self._link,
            Opcode.OPEN: self._open,
            Opcode.CREATE: self._create,
            Opcode.READ: self._read,
            Opcode.WRITE: self._write,
            Opcode.FLUSH: self._flush,
            Opcode.RELEASE: self._release,
            Opcode.FSYNC: self._fsync,
            Opcode.FALLOCATE: self._fallocate,
            Opcode.LSEEK: self._lseek,
            Opcode.COPY_FILE_RANGE: self._copy_file_range,
            Opcode.OPENDIR: self._opendir,
            Opcode.READDIR: self._readdir,
            Opcode.READDIRPLUS: self._readdirplus,
            Opcode.RELEASEDIR: self._releasedir,
            Opcode.FSYNCDIR: self._fsyncdir,
            Opcode.STATFS: self._statfs,
            Opcode.ACCESS: self._access,
            Opcode.GETXATTR: self._getxattr,
            Opcode.LISTXATTR: self._listxattr,
            Opcode.SETXATTR: self._setxattr,
            Opcode.REMOVEXATTR: self._removexattr,
        }
        # Everything else (locks, ioctl, poll, bmap, statx, tmpfile, syncfs, DAX mappings and
        # opcodes newer than us) is answered ENOSYS by handle().

    @property
    def request_buffer_size(self) -> int:
        """Bytes a read() of /dev/fuse needs: the largest WRITE plus a page for its headers."""
        return max(abi.MIN_READ_BUFFER, self.max_write + abi.PAGE_SIZE)

    def handle(self, buf: memoryview, length: int) -> tuple[int, int, Any]:
        """Process one request; return (unique, errno or 0, payload or NO_REPLY)."""
        (_, opcode, unique, nodeid, uid, gid, pid, extlen, _) = abi.IN_HEADER.unpack_from(buf)
        if extlen:
            length -= extlen * 8  # extension headers trail the arguments; none are negotiated
        handler = self.handlers.get(opcode)
        if handler is None:
            return unique, errno.ENOSYS, None
        ctx = Context(uid, gid, pid, unique)
        inflight = self.inflight
        inflight[unique] = ctx
        if self.early_interrupts and unique in self.early_interrupts:
            self._interrupted(ctx)
        try:
            return unique, 0, handler(ctx, nodeid, buf, length)
        except FuseError as e:
            code = e.errno if 0 < e.errno < 512 else errno.EIO
        except OSError as e:  # e.g. ENOSPC from a full staging disk: the caller's real cause
            log.warning("FUSE %s on inode %d failed: %s", _opname(opcode), nodeid, e)
            code = e.errno if e.errno and 0 < e.errno < 512 else errno.EIO
        except Exception:
            log.exception("FUSE %s on inode %d failed", _opname(opcode), nodeid)
            code = errno.EIO
        finally:
            del inflight[unique]
        if opcode in abi.NO_REPLY_OPCODES:  # the kernel accepts no reply, not even an error
            return unique, 0, NO_REPLY
        return unique, code, None

    def undelivered(self, payload: Any) -> None:
        """A reply could not be written (its request was interrupted): undo lookup references."""
        if isinstance(payload, EntryReply):
            for ino in payload.inos:
                self.ops.forget(ino, 1)

    def finish(self) -> None:
        """The session ended: tell the file system once (plain fuse mounts get no DESTROY)."""
        if not self.destroyed:
            self.destroyed = True
            self.ops.destroy()

    # --- session ------------------------------------------------------------------------------
    def _init(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        major, minor, max_readahead, flags = abi.INIT_IN.unpack_from(buf, HEADER)
        if major > abi.KERNEL_VERSION:  # the kernel will send INIT again with our major
            return self._init_out(abi.KERNEL_VERSION, abi.KERNEL_MINOR_VERSION, 0, 0, 0, 0)
        if major < abi.KERNEL_VERSION or minor < abi.MIN_KERNEL_MINOR_VERSION:
            log.error("FUSE protocol %d.%d of this kernel is too old", major, minor)
            raise FuseError(errno.EPROTO)
        if flags & abi.INIT_EXT and n >= HEADER + abi.INIT_IN.size + abi.INIT_IN_FLAGS2.size:
            flags |= abi.INIT_IN_FLAGS2.unpack_from(buf, HEADER + abi.INIT_IN.size)[0] << 32
        minor = min(minor, abi.KERNEL_MINOR_VERSION)
        granted = self.wanted_flags & flags
        max_pages = -(-self.max_write // abi.PAGE_SIZE)
        self.conn = ConnInfo(
            proto_major=abi.KERNEL_VERSION,
            proto_minor=minor,
            max_write=self.max_write,
            max_read=self.max_write,
            max_readahead=max_readahead,
            max_pages=max_pages if granted & abi.MAX_PAGES else 32,
            max_background=self.max_background,
            time_gran=1,
            kernel_flags=flags,
            flags=granted,
        )
        self.ops.init(self.conn)
        return self._init_out(
            abi.KERNEL_VERSION, minor, max_readahead, granted, self.max_write, max_pages
        )

    def _init_out(
        self, major: int, minor: int, readahead: int, flags: int, max_write: int, max_pages: int
    ) -> bytes:
        return abi.INIT_OUT.pack(
            major,
            minor,
            readahead,
            flags & 0xFFFFFFFF,
            self.max_background,
            self.max_background * 3 // 4,
            max_write,
            1,  # time_gran: nanosecond timestamps
            max_pages,
            0,
            flags >> 32,
            0,
            0,
        )

    def _destroy(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        self.finish()
        return b""

    def _interrupt(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> Any:
        (target,) = abi.INTERRUPT_IN.unpack_from(buf, HEADER)
        # Remember it before looking, so a request registering meanwhile sees one or the other.
        early = self.early_interrupts
        early[target] = None
        if len(early) > EARLY_INTERRUPTS_KEPT:
            del early[next(iter(early))]
        victim = self.inflight.get(target)
        if victim is None:
            # Not running: either already answered (the kernel then drops this reply with
            # ENOENT) or not yet registered, and EAGAIN makes the kernel send it again.
            raise FuseError(errno.EAGAIN)
        self._interrupted(victim)
        return NO_REPLY  # the interrupted request itself answers (EINTR or its result)

    def _interrupted(self, victim: Context) -> None:
        self.early_interrupts.pop(victim.unique, None)
        if not victim.interrupted:
            victim.interrupted = True
            self.ops.interrupt(victim.unique)

    def _forget(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> Any:
        self.ops.forget(nodeid, abi.FORGET_IN.unpack_from(buf, HEADER)[0])
        return NO_REPLY

    def _batch_forget(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> Any:
        (count, _) = abi.BATCH_FORGET_IN.unpack_from(buf, HEADER)
        forget = self.ops.forget
        for ino, nlookup in abi.FORGET_ONE.iter_unpack(
            buf[HEADER + abi.BATCH_FORGET_IN.size :][: count * abi.FORGET_ONE.size]
        ):
            forget(ino, nlookup)
        return NO_REPLY

    def _no_reply(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> Any:
        return NO_REPLY

    # --- names --------------------------------------------------------------------------------
    @staticmethod
    def _entry(entry: Entry) -> EntryReply:
        ino = entry.attr.ino
        return EntryReply(abi.ENTRY_OUT.pack(*entry_fields(entry)), (ino,) if ino else ())

    def _lookup(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> EntryReply:
        return self._entry(self.ops.lookup(ctx, nodeid, _name(buf[HEADER:n])))

    def _getattr(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        flags, _, fh = abi.GETATTR_IN.unpack_from(buf, HEADER)
        attr, timeout = self.ops.getattr(ctx, nodeid, fh if flags & abi.GETATTR_FH else None)
        return pack_attr_out(attr, timeout)

    def _setattr(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        f = abi.SETATTR_IN.unpack_from(buf, HEADER)
        valid, fh, size = f[0], f[2], f[3]
        atime, mtime, ctime, atimens, mtimens, ctimens, mode = f[5:12]
        uid, gid = f[13], f[14]
        changes = SetAttr()
        if valid & abi.FATTR_MODE:
            changes.mode = mode
        if valid & abi.FATTR_UID:
            changes.uid = uid
        if valid & abi.FATTR_GID:
            changes.gid = gid
        if valid & abi.FATTR_SIZE:
            changes.size = size
        if valid & (abi.FATTR_ATIME_NOW | abi.FATTR_MTIME_NOW):
            now = time.time_ns()
        if valid & abi.FATTR_ATIME:
            changes.atime_ns = now if valid & abi.FATTR_ATIME_NOW else atime * 10**9 + atimens
        if valid & abi.FATTR_MTIME:
            changes.mtime_ns = now if valid & abi.FATTR_MTIME_NOW else mtime * 10**9 + mtimens
        if valid & abi.FATTR_CTIME:
            changes.ctime_ns = ctime * 10**9 + ctimens
        if valid & abi.FATTR_FH:
            changes.fh = fh
        attr, timeout = self.ops.setattr(ctx, nodeid, changes)
        return pack_attr_out(attr, timeout)

    def _readlink(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        return self.ops.readlink(ctx, nodeid)

    def _symlink(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> EntryReply:
        name, target = _two_names(buf[HEADER:n])
        return self._entry(self.ops.symlink(ctx, nodeid, name, target))

    def _mknod(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> EntryReply:
        mode, rdev, umask, _ = abi.MKNOD_IN.unpack_from(buf, HEADER)
        name = _name(buf[HEADER + abi.MKNOD_IN.size : n])
        return self._entry(self.ops.mknod(ctx, nodeid, name, mode, rdev, umask))

    def _mkdir(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> EntryReply:
        mode, umask = abi.MKDIR_IN.unpack_from(buf, HEADER)
        name = _name(buf[HEADER + abi.MKDIR_IN.size : n])
        return self._entry(self.ops.mkdir(ctx, nodeid, name, mode, umask))

    def _unlink(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        self.ops.unlink(ctx, nodeid, _name(buf[HEADER:n]))
        return b""

    def _rmdir(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        self.ops.rmdir(ctx, nodeid, _name(buf[HEADER:n]))
        return b""

    def _rename(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        (newdir,) = abi.RENAME_IN.unpack_from(buf, HEADER)
        old, new = _two_names(buf[HEADER + abi.RENAME_IN.size : n])
        self.ops.rename(ctx, nodeid, old, newdir, new, 0)
        return b""

    def _rename2(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        newdir, flags, _ = abi.RENAME2_IN.unpack_from(buf, HEADER)
        old, new = _two_names(buf[HEADER + abi.RENAME2_IN.size : n])
        self.ops.rename(ctx, nodeid, old, newdir, new, flags)
        return b""

    def _link(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> EntryReply:
        (oldnodeid,) = abi.LINK_IN.unpack_from(buf, HEADER)
        newname = _name(buf[HEADER + abi.LINK_IN.size : n])
        return self._entry(self.ops.link(ctx, oldnodeid, nodeid, newname))

    # --- files --------------------------------------------------------------------------------
    def _open(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        flags, _ = abi.OPEN_IN.unpack_from(buf, HEADER)
        handle = self.ops.open(ctx, nodeid, flags)
        return abi.OPEN_OUT.pack(handle.fh, open_flags(handle), 0)

    def _create(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> EntryReply:
        flags, mode, umask, _ = abi.CREATE_IN.unpack_from(buf, HEADER)
        name = _name(buf[HEADER + abi.CREATE_IN.size : n])
        entry, handle = self.ops.create(ctx, nodeid, name, mode, flags, umask)
        payload = abi.ENTRY_OPEN_OUT.pack(*entry_fields(entry), handle.fh, open_flags(handle), 0)
        return EntryReply(payload, (entry.attr.ino,) if entry.attr.ino else ())

    def _read(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> Any:
        fh, offset, size, _, _, _, _ = abi.READ_IN.unpack_from(buf, HEADER)
        return self.ops.read(ctx, nodeid, fh, offset, size)

    def _write(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        fh, offset, size, _, _, flags, _ = abi.WRITE_IN.unpack_from(buf, HEADER)
        start = HEADER + abi.WRITE_IN.size
        with buf[start : start + size] as data:
            written = self.ops.write(ctx, nodeid, fh, offset, data, flags)
        return abi.WRITE_OUT.pack(written, 0)

    def _flush(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        fh, _, _, lock_owner = abi.FLUSH_IN.unpack_from(buf, HEADER)
        self.ops.flush(ctx, nodeid, fh, lock_owner)
        return b""

    def _release(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        fh, flags, _, _ = abi.RELEASE_IN.unpack_from(buf, HEADER)
        self.ops.release(ctx, nodeid, fh, flags)
        return b""

    def _fsync(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        fh, flags, _ = abi.FSYNC_IN.unpack_from(buf, HEADER)
        self.ops.fsync(ctx, nodeid, fh, bool(flags & abi.FSYNC_FDATASYNC))
        return b""

    def _fallocate(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        fh, offset, length, mode, _ = abi.FALLOCATE_IN.unpack_from(buf, HEADER)
        self.ops.fallocate(ctx, nodeid, fh, offset, length, mode)
        return b""

    def _lseek(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        fh, offset, whence, _ = abi.LSEEK_IN.unpack_from(buf, HEADER)
        return abi.LSEEK_OUT.pack(self.ops.lseek(ctx, nodeid, fh, offset, whence))

    def _copy_file_range(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        fh_in, off_in, ino_out, fh_out, off_out, length, flags = abi.COPY_FILE_RANGE_IN.unpack_from(
            buf, HEADER
        )
        copied = self.ops.copy_file_range(
            ctx, nodeid, fh_in, off_in, ino_out, fh_out, off_out, length, flags
        )
        return abi.WRITE_OUT.pack(copied, 0)

    # --- directories --------------------------------------------------------------------------
    def _opendir(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        flags, _ = abi.OPEN_IN.unpack_from(buf, HEADER)
        handle = self.ops.opendir(ctx, nodeid, flags)
        return abi.OPEN_OUT.pack(handle.fh, open_flags(handle), 0)

    def _readdir(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> memoryview:
        fh, offset, size, _, _, _, _ = abi.READ_IN.unpack_from(buf, HEADER)
        return pack_dirents(self.ops.readdir(ctx, nodeid, fh, offset), offset, size)

    def _readdirplus(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> EntryReply:
        fh, offset, size, _, _, _, _ = abi.READ_IN.unpack_from(buf, HEADER)
        entries = self.ops.readdirplus(ctx, nodeid, fh, offset)
        payload, counted = pack_direntplus(entries, offset, size)
        if counted:
            self.ops.readdirplus_sent(ctx, nodeid, counted)
        return EntryReply(payload, [d.ino for d in counted])

    def _releasedir(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        fh, _, _, _ = abi.RELEASE_IN.unpack_from(buf, HEADER)
        self.ops.releasedir(ctx, nodeid, fh)
        return b""

    def _fsyncdir(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        fh, flags, _ = abi.FSYNC_IN.unpack_from(buf, HEADER)
        self.ops.fsyncdir(ctx, nodeid, fh, bool(flags & abi.FSYNC_FDATASYNC))
        return b""

    # --- file system --------------------------------------------------------------------------
    def _statfs(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        s = self.ops.statfs(ctx, nodeid)
        return abi.STATFS_OUT.pack(
            s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize, 0
        )

    def _access(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        mask, _ = abi.ACCESS_IN.unpack_from(buf, HEADER)
        self.ops.access(ctx, nodeid, mask)
        return b""

    # --- extended attributes ------------------------------------------------------------------
    @staticmethod
    def _sized(value: bytes, size: int) -> bytes:
        """getxattr/listxattr: size 0 asks how big the value is; too small a buffer is ERANGE."""
        if size == 0:
            return abi.GETXATTR_OUT.pack(len(value), 0)
        if len(value) > size:
            raise FuseError(errno.ERANGE)
        return value

    def _getxattr(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        size, _ = abi.GETXATTR_IN.unpack_from(buf, HEADER)
        name = _name(buf[HEADER + abi.GETXATTR_IN.size : n])
        return self._sized(self.ops.getxattr(ctx, nodeid, name), size)

    def _listxattr(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        size, _ = abi.GETXATTR_IN.unpack_from(buf, HEADER)
        names = self.ops.listxattr(ctx, nodeid)
        return self._sized(b"".join(name + b"\0" for name in names), size)

    def _setxattr(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        size, flags = abi.SETXATTR_IN.unpack_from(buf, HEADER)
        rest = bytes(buf[HEADER + abi.SETXATTR_IN.size : n])
        end = rest.index(b"\0")
        self.ops.setxattr(ctx, nodeid, rest[:end], rest[end + 1 : end + 1 + size], flags)
        return b""

    def _removexattr(self, ctx: Context, nodeid: int, buf: memoryview, n: int) -> bytes:
        self.ops.removexattr(ctx, nodeid, _name(buf[HEADER:n]))
        return b""


def _opname(opcode: int) -> str:
    try:
        return Opcode(opcode).name
    except ValueError:
        return f"opcode {opcode}"
