"""Inodes of the mount: the tree the kernel has been told about, with FUSE lookup counts.

A node knows its parent and its own name, not its full key, so renaming a directory moves its
whole subtree by changing one node. Keys are computed on demand by walking up to the bucket.
"""

from __future__ import annotations

import itertools
import os
import stat
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fusion_client.fuse.ops import ROOT_INO, Attr, Entry

if TYPE_CHECKING:
    from fusion_client.fs.writes import WriteState

SCHEME_INOS = {"s3": 2, "gs": 3, "az": 4}  # /fusion/s3, /fusion/gs, /fusion/az
LAST_ROOT_INO = max(SCHEME_INOS.values())

DIR, FILE, LINK = stat.S_IFDIR, stat.S_IFREG, stat.S_IFLNK
DEFAULT_PERMISSIONS = {DIR: 0o755, FILE: 0o644, LINK: 0o777}


@dataclass(eq=False, slots=True)
class Node:
    ino: int
    kind: int  # DIR, FILE or LINK
    name: str
    parent: Node | None
    scheme: str | None  # s3, gs or az: which store holds it; None for the mount root
    bucket: str | None  # None for the mount root and the scheme directories
    size: int = 0
    etag: str | None = None  # version token last seen in the store; None if only local
    mtime_ns: int = 0
    atime_ns: int | None = None  # session-only overrides (utimens, chmod...)
    mtime_set_ns: int | None = None
    ctime_ns: int | None = None
    permissions: int | None = None  # session-only chmod
    uid: int = 0
    gid: int = 0
    link_target: bytes | None = None
    checked_at: float = 0.0  # monotonic time the attributes were last confirmed with the store
    lookups: int = 0
    opens: int = 0
    write: WriteState | None = None  # set while the file has local, not yet durable content
    closed_at: float = -1e9  # monotonic time a writer last closed it with changes
    page_cache_etag: str | None = None  # the version the kernel's page cache holds
    listing: dict[str, Listed] | None = None  # a directory's children, kept current by us
    listed_at: float = 0.0  # monotonic time the listing was last read from the store
    list_seconds: float = 0.0  # how long that took (a costly listing is trusted longer)
    changes: dict[str, Listed | None] | None = None  # our changes while a listing is read
    names: list[str] | None = None  # the listing's names in order (reading files ahead)

    @property
    def key(self) -> str:
        """The object key (files, links) or key prefix without the slash (directories)."""
        parts: list[str] = []
        node: Node | None = self
        while node is not None and node.parent is not None and node.parent.bucket is not None:
            parts.append(node.name)
            node = node.parent
        return "/".join(reversed(parts))

    @property
    def prefix(self) -> str:
        """Key prefix of a directory's children: '' for a bucket, 'a/b/' below."""
        key = self.key
        return f"{key}/" if key else ""

    @property
    def is_bucket(self) -> bool:
        return self.bucket is not None and self.parent is not None and self.parent.bucket is None

    def attr(self) -> Attr:
        size = self.write.size if self.write is not None else self.size
        if self.kind == LINK and self.link_target is not None:
            size = len(self.link_target)
        mtime = self.write.mtime_ns if self.write is not None else self.mtime_ns
        if self.mtime_set_ns is not None:
            mtime = self.mtime_set_ns
        permissions = (
            DEFAULT_PERMISSIONS[self.kind] if self.permissions is None else self.permissions
        )
        return Attr(
            ino=self.ino,
            size=size,
            blocks=-(-size // 512),
            atime_ns=mtime if self.atime_ns is None else self.atime_ns,
            mtime_ns=mtime,
            ctime_ns=mtime if self.ctime_ns is None else self.ctime_ns,
            mode=self.kind | permissions,
            nlink=1,  # directories too: "unknown", so find(1) never skips subdirectories
            uid=self.uid,
            gid=self.gid,
        )


@dataclass(frozen=True, slots=True)
class Listed:
    """A child as the store describes it (from a listing, HEAD or our own upload)."""

    kind: int
    size: int = 0
    etag: str | None = None
    mtime_ns: int = 0
    link_target: bytes | None = None


@dataclass(slots=True)
class InodeTable:
    """Nodes by inode number and by (parent, name); callers hold the file system's lock."""

    owner_uid: int = field(default_factory=os.getuid)
    owner_gid: int = field(default_factory=os.getgid)
    by_ino: dict[int, Node] = field(default_factory=dict)
    by_name: dict[tuple[int, str], Node] = field(default_factory=dict)
    schemes: tuple[str, ...] = ("s3",)  # the stores this mount serves, a directory each
    _numbers: itertools.count = field(default_factory=lambda: itertools.count(LAST_ROOT_INO + 1))

    def __post_init__(self) -> None:
        now = time.time_ns()
        root = Node(ROOT_INO, DIR, "", None, None, None, mtime_ns=now, lookups=1)
        nodes = [root]
        for scheme in self.schemes:
            node = Node(SCHEME_INOS[scheme], DIR, scheme, root, scheme, None, mtime_ns=now)
            node.lookups = 1
            self.by_name[(ROOT_INO, scheme)] = node
            nodes.append(node)
        for node in nodes:
            node.uid, node.gid = self.owner_uid, self.owner_gid
            self.by_ino[node.ino] = node

    def get(self, ino: int) -> Node | None:
        return self.by_ino.get(ino)

    def child(self, parent: Node, name: str) -> Node | None:
        return self.by_name.get((parent.ino, name))

    def children(self, parent: Node) -> list[Node]:
        return [node for (ino, _), node in self.by_name.items() if ino == parent.ino]

    def upsert(self, parent: Node, name: str, listed: Listed, now: float) -> Node:
        """The node for parent/name with the attributes S3 reported, keeping its inode number
        while the type stays the same (a replaced object is the same file, new content)."""
        node = self.by_name.get((parent.ino, name))
        if node is None or node.kind != listed.kind:
            if node is not None:
                self.unlink(node)
            bucket = parent.bucket if parent.bucket is not None else name
            node = Node(next(self._numbers), listed.kind, name, parent, parent.scheme, bucket)
            node.uid, node.gid = self.owner_uid, self.owner_gid
            self.by_ino[node.ino] = node
            self.by_name[(parent.ino, name)] = node
        if node.write is None and listed.kind != DIR:
            if listed.etag != node.etag:
                node.link_target = None
            node.size, node.etag, node.mtime_ns = listed.size, listed.etag, listed.mtime_ns
        if listed.link_target is not None:
            node.link_target = listed.link_target
        if listed.kind == DIR and not node.mtime_ns:
            node.mtime_ns = listed.mtime_ns or time.time_ns()
        node.checked_at = now
        return node

    def unlink(self, node: Node) -> None:
        """Take the name away; the inode lives on while the kernel or a handle still uses it."""
        if node.parent is not None and self.by_name.get((node.parent.ino, node.name)) is node:
            del self.by_name[(node.parent.ino, node.name)]
        self._collect(node)

    def move(self, node: Node, parent: Node, name: str) -> None:
        replaced = self.by_name.get((parent.ino, name))
        if replaced is not None and replaced is not node:
            self.unlink(replaced)
        if node.parent is not None and self.by_name.get((node.parent.ino, node.name)) is node:
            del self.by_name[(node.parent.ino, node.name)]
        node.parent, node.name = parent, name
        self.by_name[(parent.ino, name)] = node

    def forget(self, node: Node, count: int) -> None:
        node.lookups = max(0, node.lookups - count)
        self._collect(node)

    def _collect(self, node: Node) -> None:
        """Drop an inode the kernel has forgotten, unless a handle or a pending write holds it."""
        if node.lookups or node.opens or node.write is not None or node.ino <= LAST_ROOT_INO:
            return
        self.by_ino.pop(node.ino, None)
        if node.parent is not None and self.by_name.get((node.parent.ino, node.name)) is node:
            del self.by_name[(node.parent.ino, node.name)]

    def entry(self, node: Node, ttl: float) -> Entry:
        return Entry(node.attr(), entry_timeout=ttl, attr_timeout=ttl)
