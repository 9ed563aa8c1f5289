"""The file-system side of the FUSE protocol: the types and the `Operations` base class.

A file system subclasses `Operations` and overrides what it supports; the protocol layer
(protocol.py, driven by the worker threads of session.py) decodes kernel requests, calls these
methods and encodes replies.
Nothing here knows about /dev/fuse bytes, so a file system can be read and tested on its own.

Conventions every method follows:
- Raise `FuseError(errno.X)` to answer with an error. An OSError is logged and answered with its
  errno (ENOSPC from a full disk reaches the writer as ENOSPC); any other exception is logged
  and answered with EIO, so a bug never hangs the caller.
- Methods not overridden answer ENOSYS, except open/opendir (succeed with handle 0),
  release/releasedir (succeed) and statfs (an empty file system), as in libfuse. For ACCESS,
  FLUSH, FSYNC, FSYNCDIR the kernel then treats every later call as success; for xattrs and
  FALLOCATE as EOPNOTSUPP; for CREATE it falls back to MKNOD + OPEN; LINK fails with EPERM.
  READDIRPLUS is only negotiated when `readdirplus` is overridden (the kernel would fail
  listings on its ENOSYS). So "not overridden" is the cheapest way to say "not supported".
- Inode numbers are the file system's own; 1 is the root (`ROOT_INO`). The kernel keeps a lookup
  count per inode: every `Entry` with a non-zero ino returned by lookup, mkdir, mknod, symlink,
  link or create adds one, as does every entry of a READDIRPLUS reply that the kernel actually
  received (reported through `readdirplus_sent`). `forget(ino, n)` subtracts n; at zero the inode
  may be dropped. If a reply carrying an entry cannot be delivered (the request was interrupted),
  the protocol layer calls `forget(ino, 1)` itself, so counts stay balanced.
- Methods run concurrently on several worker threads (one request per thread at a time); a file
  system must lock its own shared state.
- `ctx.interrupted` turns true when the kernel sends INTERRUPT for the request (the caller got a
  signal). Long operations may poll it and raise `FuseError(errno.EINTR)`; `interrupt()` is also
  called (from another worker thread, or just before the request starts when the INTERRUPT
  overtook it), so blocking waits can be woken. Reads through the page cache are readahead
  requests the kernel never interrupts; only direct-I/O reads and other waits are.

Entry point (in `fusion_client.fuse`; modules mounting.py and session.py):
    session = mount(ops, mountpoint, options=MountOptions(allow_other=True, ...))
        # raises MountError(one-line cause); MountOptions also holds fsname/subtype, read_only,
        # default_permissions, use_fusermount (force the fusermount3 path), max_write (1 MiB),
        # max_background, readdirplus ("auto" | "always" | "off"), read_ahead_kb (1024)
    session.serve(threads=4)            # blocks until unmounted; or session.start(threads=4)
    session.stop_and_unmount(lazy=False, timeout=None) -> bool  # False: workers still serving
    session.wait(timeout) -> bool / session.serving      # (a lazy unmount waits for last close)
    session.abort() -> bool             # sever the connection (fusectl): waiting requests fail
        # A process that exits while serving aborts its connection at exit, so files it holds
        # open on its own mount cannot deadlock its exit.
    session.notify_inval_inode(ino, offset=0, length=-1)   # drop cached data/attributes
    session.notify_inval_entry(parent, name)                # drop a cached name
Do not call the notify_* methods from inside a request on the same directory/inode (the kernel
may hold locks the notification needs); call them from another thread.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

ROOT_INO = 1

#: What `Operations.read` may hand back: a bytes-like object, or several sent with one writev.
Buffer = bytes | bytearray | memoryview


class FuseError(Exception):
    """Raised by an operation to answer the kernel with `-errno`."""

    def __init__(self, errno_: int, message: str = "") -> None:
        super().__init__(errno_, message or errno.errorcode.get(errno_, str(errno_)))
        self.errno = errno_


@dataclass(slots=True)
class Attr:
    """File attributes (struct fuse_attr). `mode` includes the file type bits (stat.S_IFREG...)."""

    ino: int
    size: int = 0
    blocks: int = 0  # in 512-byte units, as st_blocks
    atime_ns: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    mode: int = 0
    nlink: int = 1
    uid: int = 0
    gid: int = 0
    rdev: int = 0
    blksize: int = 4096


@dataclass(slots=True)
class Entry:
    """A name resolved to an inode (struct fuse_entry_out); timeouts are seconds the kernel caches.

    `Entry.negative(timeout)` (ino 0) tells the kernel the name does not exist and lets it cache
    that answer for `timeout` seconds; raising FuseError(ENOENT) is the uncached equivalent.
    """

    attr: Attr
    generation: int = 0
    entry_timeout: float = 1.0
    attr_timeout: float = 1.0

    @classmethod
    def negative(cls, timeout: float) -> Entry:
        return cls(Attr(ino=0), entry_timeout=timeout, attr_timeout=0.0)


@dataclass(slots=True)
class Open:
    """An open file or directory handle (struct fuse_open_out).

    keep_cache: keep the kernel's page cache from earlier opens (immutable content).
    direct_io: bypass the page cache (every read/write reaches the file system as issued).
    cache_dir: (opendir) let the kernel cache the directory listing.
    noflush: the kernel may skip FLUSH on close when nothing was written (7.35+).
    """

    fh: int
    direct_io: bool = False
    keep_cache: bool = False
    nonseekable: bool = False
    cache_dir: bool = False
    noflush: bool = False


@dataclass(slots=True)
class SetAttr:
    """The changes of a SETATTR: only fields the kernel marked valid are not None.

    atime/mtime "now" (utimensat UTIME_NOW) arrive already resolved to time.time_ns(). A size
    change is a truncate; fh is set when it came through an open handle (ftruncate).
    """

    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    atime_ns: int | None = None
    mtime_ns: int | None = None
    ctime_ns: int | None = None
    fh: int | None = None


@dataclass(slots=True)
class DirEntry:
    """One directory entry for readdir/readdirplus.

    type: the DT_* value, i.e. `stat.S_IFMT(mode) >> 12`.
    offset: the cookie the kernel hands back to continue *after* this entry. 0 means "assign it":
        the protocol layer uses request_offset + index + 1, so an iterator must yield entries in a
        stable order and, given offset N, start at the (N+1)-th entry.
    entry: required for readdirplus (attributes and timeouts for the kernel's cache); ignored by
        readdir. Use ino 0 in it (or leave it None for "." and "..") to send the name without
        attributes; such entries never count as lookups.
    """

    name: bytes
    ino: int
    type: int
    entry: Entry | None = None
    offset: int = 0


@dataclass(slots=True)
class StatFs:
    """File-system statistics (struct fuse_kstatfs); block counts are in `frsize` units."""

    blocks: int
    bfree: int
    bavail: int
    files: int
    ffree: int
    bsize: int = 4096
    namelen: int = 1024
    frsize: int = 4096


@dataclass(slots=True)
class Context:
    """Who issued a request, and whether the kernel has since asked to interrupt it.

    Valid for the duration of the call; do not keep it beyond (it describes one request).
    """

    uid: int
    gid: int
    pid: int
    unique: int
    interrupted: bool = False


@dataclass(slots=True)
class ReadReply:
    """A READ answer made of several buffers (e.g. views of an mmap'd cache), sent with one writev.

    `release` runs after the reply has been written (or failed), so a cache can pin the pages it
    handed out and unpin them there: the kernel copies the data during writev, not later.
    """

    buffers: Sequence[Buffer]
    release: Callable[[], None] | None = None


@dataclass(slots=True, frozen=True)
class ConnInfo:
    """What INIT negotiated with the kernel; given to `Operations.init`."""

    proto_major: int
    proto_minor: int
    max_write: int  # largest WRITE the kernel sends; also the largest READ it asks for
    max_read: int
    max_readahead: int
    max_pages: int
    max_background: int
    time_gran: int
    kernel_flags: int  # every capability the kernel offered (FUSE_* bits, flags2 << 32)
    flags: int  # the capabilities in force (our request & what the kernel offered)

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)


class Operations:
    """Base class of a file system: override what you support; the rest answers ENOSYS.

    Every request method receives the request `Context` first. Names are bytes (no decoding).
    """

    # --- lifecycle -------------------------------------------------------------------------
    def init(self, conn: ConnInfo) -> None:
        """Called once INIT is negotiated, before any other request."""

    def destroy(self) -> None:
        """Called when the session ends (after unmount); plain `fuse` mounts get no DESTROY
        request from the kernel, so the session calls this itself when its loop ends."""

    def interrupt(self, unique: int) -> None:
        """The kernel asked to interrupt request `unique` (its ctx.interrupted is already true)."""

    # --- names and inodes ------------------------------------------------------------------
    def lookup(self, ctx: Context, parent: int, name: bytes) -> Entry:
        raise FuseError(errno.ENOSYS)

    def forget(self, ino: int, nlookup: int) -> None:
        """Drop `nlookup` from ino's lookup count (FORGET and each item of BATCH_FORGET)."""

    def readdirplus_sent(self, ctx: Context, parent: int, entries: Sequence[DirEntry]) -> None:
        """The entries of a READDIRPLUS reply that count as lookups (ino != 0, not "."/"..");
        called just before the reply is written. Add one to each one's lookup count."""

    def getattr(self, ctx: Context, ino: int, fh: int | None) -> tuple[Attr, float]:
        """Return (attributes, attr_timeout seconds)."""
        raise FuseError(errno.ENOSYS)

    def setattr(self, ctx: Context, ino: int, changes: SetAttr) -> tuple[Attr, float]:
        raise FuseError(errno.ENOSYS)

    def readlink(self, ctx: Context, ino: int) -> bytes:
        raise FuseError(errno.ENOSYS)

    def symlink(self, ctx: Context, parent: int, name: bytes, target: bytes) -> Entry:
        raise FuseError(errno.ENOSYS)

    def mknod(
        self, ctx: Context, parent: int, name: bytes, mode: int, rdev: int, umask: int
    ) -> Entry:
        raise FuseError(errno.ENOSYS)

    def mkdir(self, ctx: Context, parent: int, name: bytes, mode: int, umask: int) -> Entry:
        raise FuseError(errno.ENOSYS)

    def unlink(self, ctx: Context, parent: int, name: bytes) -> None:
        raise FuseError(errno.ENOSYS)

    def rmdir(self, ctx: Context, parent: int, name: bytes) -> None:
        raise FuseError(errno.ENOSYS)

    def rename(
        self, ctx: Context, parent: int, name: bytes, newparent: int, newname: bytes, flags: int
    ) -> None:
        """RENAME and RENAME2; flags are RENAME_NOREPLACE (1) / RENAME_EXCHANGE (2) / 0."""
        raise FuseError(errno.ENOSYS)

    def link(self, ctx: Context, ino: int, newparent: int, newname: bytes) -> Entry:
        raise FuseError(errno.ENOSYS)

    # --- files ------------------------------------------------------------------------------
    def open(self, ctx: Context, ino: int, flags: int) -> Open:
        """flags are the open(2) flags (O_RDONLY, O_TRUNC with ATOMIC_O_TRUNC, O_APPEND...).
        Default: every open succeeds with handle 0 (as libfuse does)."""
        return Open(fh=0)

    def create(
        self, ctx: Context, parent: int, name: bytes, mode: int, flags: int, umask: int
    ) -> tuple[Entry, Open]:
        raise FuseError(errno.ENOSYS)

    def read(self, ctx: Context, ino: int, fh: int, offset: int, size: int) -> Buffer | ReadReply:
        """Return at most `size` bytes at `offset`; fewer means end of file.

        Return a memoryview of an mmap (or a ReadReply of several) to send it without copying.
        """
        raise FuseError(errno.ENOSYS)

    def write(
        self, ctx: Context, ino: int, fh: int, offset: int, data: memoryview, flags: int
    ) -> int:
        """Write `data` at `offset`; return the count written. `data` views the request buffer
        and is valid only during the call (copy it to keep it). `flags` are the file's open
        flags (e.g. O_APPEND)."""
        raise FuseError(errno.ENOSYS)

    def flush(self, ctx: Context, ino: int, fh: int, lock_owner: int) -> None:
        """Called on every close(2) of a descriptor (there may be several per open)."""
        raise FuseError(errno.ENOSYS)

    def release(self, ctx: Context, ino: int, fh: int, flags: int) -> None:
        """The last reference to the open handle is gone; the reply is not awaited by close()."""

    def fsync(self, ctx: Context, ino: int, fh: int, datasync: bool) -> None:
        raise FuseError(errno.ENOSYS)

    def fallocate(
        self, ctx: Context, ino: int, fh: int, offset: int, length: int, mode: int
    ) -> None:
        raise FuseError(errno.ENOSYS)

    def lseek(self, ctx: Context, ino: int, fh: int, offset: int, whence: int) -> int:
        """SEEK_DATA / SEEK_HOLE only (the kernel handles the others itself)."""
        raise FuseError(errno.ENOSYS)

    def copy_file_range(
        self,
        ctx: Context,
        ino_in: int,
        fh_in: int,
        offset_in: int,
        ino_out: int,
        fh_out: int,
        offset_out: int,
        length: int,
        flags: int,
    ) -> int:
        raise FuseError(errno.ENOSYS)

    # --- directories ------------------------------------------------------------------------
    def opendir(self, ctx: Context, ino: int, flags: int) -> Open:
        """Default: succeeds with handle 0 (as libfuse does), so readdir alone lists."""
        return Open(fh=0)

    def readdir(self, ctx: Context, ino: int, fh: int, offset: int) -> Iterable[DirEntry]:
        """Entries after cookie `offset` (0 = from the start, including "." and ".." if you
        want them listed). Yield lazily: the protocol stops pulling once the kernel's buffer
        is full, and the entry that did not fit is asked for again on the next call."""
        raise FuseError(errno.ENOSYS)

    def readdirplus(self, ctx: Context, ino: int, fh: int, offset: int) -> Iterable[DirEntry]:
        """As readdir, each DirEntry with `.entry`. Do NOT count lookups here: the protocol
        reports the entries that were really sent via `readdirplus_sent`."""
        raise FuseError(errno.ENOSYS)

    def releasedir(self, ctx: Context, ino: int, fh: int) -> None:
        """Default: nothing to release."""

    def fsyncdir(self, ctx: Context, ino: int, fh: int, datasync: bool) -> None:
        raise FuseError(errno.ENOSYS)

    # --- file system ------------------------------------------------------------------------
    def statfs(self, ctx: Context, ino: int) -> StatFs:
        """Default: an empty file system (df shows zeros instead of failing)."""
        return StatFs(blocks=0, bfree=0, bavail=0, files=0, ffree=0, namelen=255)

    def access(self, ctx: Context, ino: int, mask: int) -> None:
        raise FuseError(errno.ENOSYS)

    # --- extended attributes (ENOSYS = the kernel stops asking: EOPNOTSUPP from then on) ---
    def getxattr(self, ctx: Context, ino: int, name: bytes) -> bytes:
        """Return the value (the protocol answers size probes and ERANGE); ENODATA if absent."""
        raise FuseError(errno.ENOSYS)

    def listxattr(self, ctx: Context, ino: int) -> Sequence[bytes]:
        raise FuseError(errno.ENOSYS)

    def setxattr(self, ctx: Context, ino: int, name: bytes, value: bytes, flags: int) -> None:
        raise FuseError(errno.ENOSYS)

    def removexattr(self, ctx: Context, ino: int, name: bytes) -> None:
        raise FuseError(errno.ENOSYS)
