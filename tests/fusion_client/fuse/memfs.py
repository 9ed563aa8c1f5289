"""An in-memory file system on the fuse Operations API, for testing the protocol layer for real.

It keeps what tests need to observe the kernel's side of the conversation: lookup counts per
inode (balanced once the kernel forgets), the sizes of WRITE requests, interrupted requests, and
how many READ replies were released.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from fusion_client.fuse import (
    ROOT_INO,
    Attr,
    ConnInfo,
    Context,
    DirEntry,
    Entry,
    FuseError,
    Open,
    Operations,
    ReadReply,
    SetAttr,
    StatFs,
)

RENAME_NOREPLACE = 1
SLOW_NAME = b"slow"  # reading a file of this name blocks until the request is interrupted


@dataclass
class Node:
    ino: int
    mode: int
    data: bytearray = field(default_factory=bytearray)
    children: dict[bytes, int] = field(default_factory=dict)
    target: bytes = b""
    nlink: int = 1
    nlookup: int = 0
    opened: int = 0
    times: list[int] = field(default_factory=lambda: [time.time_ns()] * 3)  # atime mtime ctime
    uid: int = 0
    gid: int = 0


class MemFS(Operations):
    def __init__(
        self, *, timeout: float = 1.0, negative_timeout: float = 0.0, keep_cache: bool = False
    ) -> None:
        self.timeout = timeout
        self.keep_cache = keep_cache
        self.negative_timeout = negative_timeout
        self.lock = threading.RLock()
        self.nodes: dict[int, Node] = {ROOT_INO: Node(ROOT_INO, stat.S_IFDIR | 0o755, nlink=2)}
        self.next_ino = ROOT_INO + 1
        self.conn: ConnInfo | None = None
        self.calls: Counter[str] = Counter()
        self.write_sizes: list[int] = []
        self.read_sizes: list[int] = []
        self.interrupted: list[int] = []
        self.read_releases = 0
        self.destroyed = False

    # --- helpers -------------------------------------------------------------------------------
    def attr(self, node: Node) -> Attr:
        size = len(node.target) if stat.S_ISLNK(node.mode) else len(node.data)
        atime, mtime, ctime = node.times
        return Attr(
            ino=node.ino,
            size=size,
            blocks=(size + 511) // 512,
            atime_ns=atime,
            mtime_ns=mtime,
            ctime_ns=ctime,
            mode=node.mode,
            nlink=node.nlink,
            uid=node.uid,
            gid=node.gid,
        )

    def entry(self, node: Node) -> Entry:
        return Entry(self.attr(node), entry_timeout=self.timeout, attr_timeout=self.timeout)

    def node(self, ino: int) -> Node:
        try:
            return self.nodes[ino]
        except KeyError:
            raise FuseError(errno.ESTALE) from None

    def directory(self, ino: int) -> Node:
        node = self.node(ino)
        if not stat.S_ISDIR(node.mode):
            raise FuseError(errno.ENOTDIR)
        return node

    def child(self, parent: int, name: bytes) -> Node:
        ino = self.directory(parent).children.get(name)
        if ino is None:
            raise FuseError(errno.ENOENT)
        return self.nodes[ino]

    def add(self, parent: int, name: bytes, mode: int, ctx: Context) -> Node:
        directory = self.directory(parent)
        if name in directory.children:
            raise FuseError(errno.EEXIST)
        node = Node(self.next_ino, mode, uid=ctx.uid, gid=ctx.gid)
        self.next_ino += 1
        if stat.S_ISDIR(mode):
            node.nlink = 2
            directory.nlink += 1
        self.nodes[node.ino] = node
        directory.children[name] = node.ino
        return node

    def looked_up(self, node: Node) -> Entry:
        node.nlookup += 1
        return self.entry(node)

    def drop_if_unused(self, node: Node) -> None:
        if node.nlink == 0 and node.nlookup == 0 and node.opened == 0:
            del self.nodes[node.ino]

    def populate(self, names: Sequence[bytes], data: bytes = b"") -> None:
        """Files in the root made behind the kernel's back (so it has cached none of them)."""
        with self.lock:
            ctx = Context(0, 0, 0, 0)
            for name in names:
                self.add(ROOT_INO, name, stat.S_IFREG | 0o644, ctx).data[:] = data

    def replace_behind(self, name: bytes, data: bytes) -> int:
        """Change a root file's content without the kernel knowing; returns its inode."""
        with self.lock:
            node = self.child(ROOT_INO, name)
            node.data[:] = data
            return node.ino

    def remove_behind(self, name: bytes) -> None:
        """Delete a root entry without the kernel knowing."""
        with self.lock:
            node = self.child(ROOT_INO, name)
            del self.nodes[ROOT_INO].children[name]
            node.nlink = 0

    def held_lookups(self) -> dict[int, int]:
        """Inodes (other than the root) the kernel still holds lookup references to."""
        with self.lock:
            return {n.ino: n.nlookup for n in self.nodes.values() if n.nlookup and n.ino != 1}

    # --- lifecycle ----------------------------------------------------------------------------
    def init(self, conn: ConnInfo) -> None:
        self.conn = conn

    def destroy(self) -> None:
        self.destroyed = True

    def interrupt(self, unique: int) -> None:
        with self.lock:
            self.interrupted.append(unique)

    # --- names --------------------------------------------------------------------------------
    def lookup(self, ctx: Context, parent: int, name: bytes) -> Entry:
        with self.lock:
            self.calls["lookup"] += 1
            if self.negative_timeout and name not in self.directory(parent).children:
                return Entry.negative(self.negative_timeout)
            return self.looked_up(self.child(parent, name))

    def forget(self, ino: int, nlookup: int) -> None:
        with self.lock:
            self.calls["forget"] += 1
            node = self.nodes[ino]
            assert node.nlookup >= nlookup, f"inode {ino} forgotten more than looked up"
            node.nlookup -= nlookup
            self.drop_if_unused(node)

    def readdirplus_sent(self, ctx: Context, parent: int, entries: Sequence[DirEntry]) -> None:
        with self.lock:
            for d in entries:
                self.nodes[d.ino].nlookup += 1

    def getattr(self, ctx: Context, ino: int, fh: int | None) -> tuple[Attr, float]:
        with self.lock:
            self.calls["getattr"] += 1
            return self.attr(self.node(ino)), self.timeout

    def setattr(self, ctx: Context, ino: int, changes: SetAttr) -> tuple[Attr, float]:
        with self.lock:
            node = self.node(ino)
            if changes.size is not None:
                del node.data[changes.size :]
                node.data.extend(bytes(changes.size - len(node.data)))
                node.times[1] = time.time_ns()
            if changes.mode is not None:
                node.mode = stat.S_IFMT(node.mode) | stat.S_IMODE(changes.mode)
            if changes.uid is not None:
                node.uid = changes.uid
            if changes.gid is not None:
                node.gid = changes.gid
            if changes.atime_ns is not None:
                node.times[0] = changes.atime_ns
            if changes.mtime_ns is not None:
                node.times[1] = changes.mtime_ns
            return self.attr(node), self.timeout

    def readlink(self, ctx: Context, ino: int) -> bytes:
        with self.lock:
            return self.node(ino).target

    def symlink(self, ctx: Context, parent: int, name: bytes, target: bytes) -> Entry:
        with self.lock:
            node = self.add(parent, name, stat.S_IFLNK | 0o777, ctx)
            node.target = target
            return self.looked_up(node)

    def mknod(
        self, ctx: Context, parent: int, name: bytes, mode: int, rdev: int, umask: int
    ) -> Entry:
        if not stat.S_ISREG(mode):
            raise FuseError(errno.EPERM)
        with self.lock:
            return self.looked_up(self.add(parent, name, mode & ~umask, ctx))

    def mkdir(self, ctx: Context, parent: int, name: bytes, mode: int, umask: int) -> Entry:
        with self.lock:
            return self.looked_up(self.add(parent, name, stat.S_IFDIR | (mode & ~umask), ctx))

    def unlink(self, ctx: Context, parent: int, name: bytes) -> None:
        with self.lock:
            node = self.child(parent, name)
            if stat.S_ISDIR(node.mode):
                raise FuseError(errno.EISDIR)
            del self.nodes[parent].children[name]
            node.nlink -= 1
            self.drop_if_unused(node)

    def rmdir(self, ctx: Context, parent: int, name: bytes) -> None:
        with self.lock:
            node = self.child(parent, name)
            if not stat.S_ISDIR(node.mode):
                raise FuseError(errno.ENOTDIR)
            if node.children:
                raise FuseError(errno.ENOTEMPTY)
            del self.nodes[parent].children[name]
            self.nodes[parent].nlink -= 1
            node.nlink = 0
            self.drop_if_unused(node)

    def rename(
        self, ctx: Context, parent: int, name: bytes, newparent: int, newname: bytes, flags: int
    ) -> None:
        with self.lock:
            node = self.child(parent, name)
            target_dir = self.directory(newparent)
            replaced = target_dir.children.get(newname)
            if flags & ~RENAME_NOREPLACE:
                raise FuseError(errno.EINVAL)  # RENAME_EXCHANGE / WHITEOUT are not supported
            if flags & RENAME_NOREPLACE and replaced is not None:
                raise FuseError(errno.EEXIST)
            if replaced is not None:
                old = self.nodes[replaced]
                if stat.S_ISDIR(old.mode) and old.children:
                    raise FuseError(errno.ENOTEMPTY)
                old.nlink = 0
                self.drop_if_unused(old)
            del self.nodes[parent].children[name]
            target_dir.children[newname] = node.ino

    # --- files --------------------------------------------------------------------------------
    def open(self, ctx: Context, ino: int, flags: int) -> Open:
        with self.lock:
            node = self.node(ino)
            if flags & os.O_TRUNC:
                node.data.clear()
            node.opened += 1
            slow = self.nodes[ROOT_INO].children.get(SLOW_NAME) == ino
            # direct I/O for the slow file: its reads wait in the caller, not in readahead
            return Open(fh=ino, direct_io=slow, keep_cache=self.keep_cache)

    def create(
        self, ctx: Context, parent: int, name: bytes, mode: int, flags: int, umask: int
    ) -> tuple[Entry, Open]:
        with self.lock:
            node = self.add(parent, name, stat.S_IFREG | (mode & ~umask), ctx)
            node.opened += 1
            return self.looked_up(node), Open(fh=node.ino)

    def read(self, ctx: Context, ino: int, fh: int, offset: int, size: int) -> ReadReply:
        with self.lock:
            self.calls["read"] += 1
            self.read_sizes.append(size)
            node = self.node(ino)
            slow = self.nodes[ROOT_INO].children.get(SLOW_NAME) == ino
            chunk = bytes(node.data[offset : offset + size])
        if slow:
            self.wait_for_interrupt(ctx)
        # Two buffers, like a reply that spans two cache chunks.
        view = memoryview(chunk)
        half = len(chunk) // 2
        return ReadReply([view[:half], view[half:]], release=self.released)

    def wait_for_interrupt(self, ctx: Context) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if ctx.interrupted:
                raise FuseError(errno.EINTR)
            time.sleep(0.01)

    def released(self) -> None:
        with self.lock:
            self.read_releases += 1

    def write(
        self, ctx: Context, ino: int, fh: int, offset: int, data: memoryview, flags: int
    ) -> int:
        with self.lock:
            self.write_sizes.append(len(data))
            node = self.node(ino)
            if offset > len(node.data):
                node.data.extend(bytes(offset - len(node.data)))
            node.data[offset : offset + len(data)] = data
            node.times[1] = time.time_ns()
            return len(data)

    def flush(self, ctx: Context, ino: int, fh: int, lock_owner: int) -> None:
        self.calls["flush"] += 1

    def release(self, ctx: Context, ino: int, fh: int, flags: int) -> None:
        with self.lock:
            node = self.node(ino)
            node.opened -= 1
            self.drop_if_unused(node)

    def fsync(self, ctx: Context, ino: int, fh: int, datasync: bool) -> None:
        self.calls["fsync"] += 1

    # --- directories --------------------------------------------------------------------------
    def opendir(self, ctx: Context, ino: int, flags: int) -> Open:
        with self.lock:
            self.directory(ino)
            return Open(fh=ino)

    def listing(self, ino: int) -> list[tuple[bytes, Node]]:
        with self.lock:
            directory = self.directory(ino)
            names = sorted(directory.children.items())
            return [(b".", directory), (b"..", directory)] + [
                (name, self.nodes[child]) for name, child in names
            ]

    def readdir(self, ctx: Context, ino: int, fh: int, offset: int) -> Iterator[DirEntry]:
        self.calls["readdir"] += 1
        for name, node in self.listing(ino)[offset:]:
            yield DirEntry(name, node.ino, stat.S_IFMT(node.mode) >> 12)

    def readdirplus(self, ctx: Context, ino: int, fh: int, offset: int) -> Iterator[DirEntry]:
        self.calls["readdirplus"] += 1
        for name, node in self.listing(ino)[offset:]:
            dot = name in (b".", b"..")
            entry = None if dot else self.entry(node)
            yield DirEntry(name, node.ino, stat.S_IFMT(node.mode) >> 12, entry)

    def releasedir(self, ctx: Context, ino: int, fh: int) -> None:
        pass

    # --- file system --------------------------------------------------------------------------
    def statfs(self, ctx: Context, ino: int) -> StatFs:
        with self.lock:
            used = sum(len(n.data) for n in self.nodes.values()) // 4096
            return StatFs(
                blocks=1 << 20,
                bfree=(1 << 20) - used,
                bavail=(1 << 20) - used,
                files=1 << 20,
                ffree=(1 << 20) - len(self.nodes),
            )
