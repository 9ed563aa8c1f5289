"""The file system behind /fusion: FUSE operations mapped onto objects of the stores.

Layout: /fusion/<scheme>/<bucket>/<key>, a scheme directory per store (s3, gs, az), each store
behind the one ObjectStore interface (fusion_client.store). A bucket (Azure: container) appears
on its first lookup; directories are key prefixes (and zero-byte `dir/` markers); symlinks are
small objects whose body is the target and whose `mode` metadata says S_IFLNK (the s3fs
convention, so s3fs mounts agree). docs/SEMANTICS.md states every guarantee and limit; this
module is the implementation of that document.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import itertools
import os
import re
import stat
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fusion_client.cache import CachedObject, ChunkCache, ReadStream
from fusion_client.fs.errors import store_errors
from fusion_client.fs.nodes import DIR, FILE, LINK, SCHEME_INOS, InodeTable, Listed, Node
from fusion_client.fs.settle import Settler
from fusion_client.fs.writes import WriteState
from fusion_client.fuse.ops import (
    ROOT_INO,
    Attr,
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
from fusion_client.log import get_logger
from fusion_client.store import AccessDenied, BucketNotFound, ObjectInfo, ObjectNotFound

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fusion_client.cache.chunks import Fetch
    from fusion_client.settings import Settings
    from fusion_client.store import ObjectStore
    from fusion_client.upload import Uploader

log = get_logger("fs")

MAX_KEY_BYTES = 1024  # S3's and GCS's limit (Azure allows more)
MAX_NAME_BYTES = 255  # the kernel's NAME_MAX
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
SYMLINK_MODE = str(stat.S_IFLNK | 0o777)
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]$")
_COPY_THREADS = 16
SYMLINK_PROBES_PER_LISTING = 1000
LISTING_TRUST_FACTOR = 10  # a listing that took t seconds is trusted for max(TTL, 10 t)
FILES_AHEAD = 64  # small files of a listed directory fetched ahead of a reader opening them
BACKGROUND_FILES = 64  # closed files uploading in the background at most (each holds a fd)


@dataclass(eq=False, slots=True)
class Handle:
    node: Node
    writable: bool = False
    etag: str | None = None  # the object version a reader is pinned to (set at open)
    size: int = 0
    obj: CachedObject | None = None
    stream: ReadStream = field(default_factory=ReadStream)
    entries: list[DirEntry] | None = None  # directory snapshot for readdir offsets


@dataclass(slots=True)
class FsStats:
    bytes_served: int = 0
    bytes_written: int = 0


class FusionFileSystem(Operations):
    def __init__(
        self,
        stores: Mapping[str, ObjectStore],
        cache: ChunkCache,
        uploaders: Mapping[str, Uploader],
        settings: Settings,
        staging_dir: str,
    ) -> None:
        """`stores` and `uploaders` by scheme (s3, gs, az): each scheme is a directory."""
        self.stores, self.cache, self.uploaders = stores, cache, uploaders
        self.mount = settings.mount.rstrip("/")
        self.ttl = settings.metadata_ttl
        self.negative_ttl = settings.negative_ttl
        self.write_settle = settings.write_settle
        self.small_file = settings.upload_part_size  # smaller new files upload after close
        self.symlink_probe_max = settings.symlink_probe_max
        self.staging_dir = staging_dir
        os.makedirs(staging_dir, exist_ok=True)
        self.table = InodeTable(schemes=tuple(s for s in SCHEME_INOS if s in stores))
        self.stats = FsStats()
        self.lock = threading.RLock()
        self.handles: dict[int, Handle] = {}
        self.writing: set[Node] = set()
        # URL -> None when the last upload of that object succeeded, else its error.
        self.upload_outcomes: dict[str, str | None] = {}
        self._fh = itertools.count(1)
        self._staging_names = itertools.count()
        self._link_types: dict[tuple[str, str, str, str], bool] = {}  # symlink probe per version
        self._pool = ThreadPoolExecutor(_COPY_THREADS, thread_name_prefix="fusion-meta")
        self.settler = Settler(
            self._settle_job, workers=settings.upload_threads, limit=BACKGROUND_FILES
        )

    # -- names and attributes ------------------------------------------------------------

    def lookup(self, ctx: Context, parent: int, name: bytes) -> Entry:
        text = _decode(name)
        with self.lock:
            directory = self._dir(parent)
            if text is None:
                return Entry.negative(self.negative_ttl)
            child = self.table.child(directory, text)
            if child is not None and self._trusted(child):
                child.lookups += 1
                return self.table.entry(child, self.ttl)
            listing = self._known_listing(directory)
            known_dir = child is not None and child.kind == DIR
        if listing is None:
            listing = self._relist(directory, full=False)
        listed = self._resolve(directory, text, listing)
        if listed is None and listing is not None and known_dir:
            # A directory we know of that the listing lacks: ask the store itself (a marker
            # with nothing under it is not a prefix to fake-gcs-server's listings).
            listed = self._resolve(directory, text, None)
        with self.lock:
            if listed is None:
                child = self.table.child(directory, text)
                if child is not None and child.write is None:
                    self.table.unlink(child)
                return Entry.negative(self.negative_ttl)
            node = self.table.upsert(directory, text, listed, time.monotonic())
            node.lookups += 1
            return self.table.entry(node, self.ttl)

    def forget(self, ino: int, nlookup: int) -> None:
        with self.lock:
            node = self.table.get(ino)
            if node is not None:
                self.table.forget(node, nlookup)

    def readdirplus_sent(self, ctx: Context, parent: int, entries: Sequence[DirEntry]) -> None:
        with self.lock:
            for item in entries:
                node = self.table.get(item.ino)
                if node is not None:
                    node.lookups += 1

    def getattr(self, ctx: Context, ino: int, fh: int | None) -> tuple[Attr, float]:
        node = self._node(ino)
        if node.kind != DIR and node.write is None and not self._current(node):
            self._refresh(node)
        return node.attr(), self.ttl

    def setattr(self, ctx: Context, ino: int, changes: SetAttr) -> tuple[Attr, float]:
        node = self._node(ino)
        if changes.size is not None:
            if node.kind == DIR:
                raise FuseError(errno.EISDIR)
            if node.kind == LINK:
                raise FuseError(errno.EINVAL)
            self._truncate(node, changes.size, through_handle=changes.fh is not None)
        with self.lock:
            if changes.mode is not None:
                node.permissions = changes.mode & 0o7777
            if changes.uid is not None:
                node.uid = changes.uid
            if changes.gid is not None:
                node.gid = changes.gid
            if changes.atime_ns is not None:
                node.atime_ns = changes.atime_ns
            if changes.mtime_ns is not None:
                node.mtime_set_ns = changes.mtime_ns
            node.ctime_ns = changes.ctime_ns or time.time_ns()
            return node.attr(), self.ttl

    def access(self, ctx: Context, ino: int, mask: int) -> None:
        """Permissions are not enforced (the store decides); only report non-executable files."""
        node = self._node(ino)
        if mask & os.X_OK and node.kind == FILE and not node.attr().mode & 0o111:
            raise FuseError(errno.EACCES)

    def statfs(self, ctx: Context, ino: int) -> StatFs:
        blocks = 2**50 // 4096  # an object store has no meaningful size limit: report 1 PiB free
        return StatFs(
            blocks=blocks, bfree=blocks, bavail=blocks, files=2**32, ffree=2**32, namelen=255
        )

    # -- symlinks --------------------------------------------------------------------------

    def readlink(self, ctx: Context, ino: int) -> bytes:
        node = self._node(ino)
        if node.kind != LINK:
            raise FuseError(errno.EINVAL)
        if node.link_target is None:
            body = memoryview(bytearray(node.size))
            with self._errors("readlink", node):
                count = self._store(node).get_range_into(
                    node.bucket or "", node.key, 0, body, if_match=node.etag
                )
            node.link_target = bytes(body[:count])
        return node.link_target

    def symlink(self, ctx: Context, parent: int, name: bytes, target: bytes) -> Entry:
        directory, text = self._new_name(parent, name)
        self._must_not_exist(directory, text)
        key = directory.prefix + text
        with self._errors("symlink", directory, key):
            etag = self._store(directory).put_object(
                directory.bucket or "", key, target, metadata={"mode": SYMLINK_MODE}
            )
        listed = Listed(LINK, len(target), etag, time.time_ns(), link_target=target)
        return self._created(ctx, directory, text, listed)

    def link(self, ctx: Context, ino: int, newparent: int, newname: bytes) -> Entry:
        raise FuseError(errno.EPERM)  # object stores have no hard links

    # -- directories -------------------------------------------------------------------------

    def mkdir(self, ctx: Context, parent: int, name: bytes, mode: int, umask: int) -> Entry:
        directory, text = self._new_name(parent, name)
        self._must_not_exist(directory, text)
        key = f"{directory.prefix}{text}/"
        with self._errors("mkdir", directory, key):
            self._store(directory).put_object(directory.bucket or "", key, b"")
        entry = self._created(ctx, directory, text, Listed(DIR, mtime_ns=time.time_ns()))
        with self.lock:
            node = self.table.get(entry.attr.ino)
            if node is not None:
                node.permissions = mode & ~umask & 0o7777
                node.listing, node.listed_at = {}, time.monotonic()  # known empty
                entry.attr = node.attr()
        return entry

    def rmdir(self, ctx: Context, parent: int, name: bytes) -> None:
        directory = self._dir(parent)
        node = self._existing(directory, name)
        if node.kind != DIR:
            raise FuseError(errno.ENOTDIR)
        if node.is_bucket or node.bucket is None:
            raise FuseError(errno.EPERM)
        self._must_be_empty(node)
        with self._errors("rmdir", node, node.prefix):
            self._store(node).delete_object(node.bucket, node.prefix)
        with self.lock:
            self.table.unlink(node)
            self._note(directory, node.name, None)

    def opendir(self, ctx: Context, ino: int, flags: int) -> Open:
        node = self._node(ino)
        if node.kind != DIR:
            raise FuseError(errno.ENOTDIR)
        with self.lock:
            fh = next(self._fh)
            self.handles[fh] = Handle(node)
            node.opens += 1
        return Open(fh)

    def readdir(self, ctx: Context, ino: int, fh: int, offset: int) -> Iterable[DirEntry]:
        handle = self._handle(fh)
        if offset == 0 or handle.entries is None:
            handle.entries = self._snapshot(handle.node)
        entries = handle.entries
        return (entries[index] for index in range(offset, len(entries)))  # lazy: no list copy

    readdirplus = readdir

    def releasedir(self, ctx: Context, ino: int, fh: int) -> None:
        with self.lock:
            handle = self.handles.pop(fh, None)
            if handle is None:
                return
            handle.node.opens -= 1
            # Drop the inodes listed but never handed to the kernel (plain readdir, or entries
            # that did not fit): the table only keeps what the kernel or a handle uses.
            listed = [item.ino for item in handle.entries or ()]
            for number in [*listed, handle.node.ino]:
                node = self.table.get(number)
                if node is not None:
                    self.table.forget(node, 0)

    def fsyncdir(self, ctx: Context, ino: int, fh: int, datasync: bool) -> None:
        """Directory changes are made in the store as they happen: nothing is pending."""

    # -- files -------------------------------------------------------------------------------

    def create(
        self, ctx: Context, parent: int, name: bytes, mode: int, flags: int, umask: int
    ) -> tuple[Entry, Open]:
        directory, text = self._new_name(parent, name)
        with self.lock:
            existing = self.table.child(directory, text)
        if existing is not None:
            if existing.kind == DIR:
                raise FuseError(errno.EISDIR)
            self._reopen(existing)
        with self.lock:
            node = self.table.upsert(
                directory, text, Listed(FILE, mtime_ns=time.time_ns()), time.monotonic()
            )
            node.permissions = mode & ~umask & 0o7777
            node.uid, node.gid = ctx.uid, ctx.gid
            state = self._write_state(node, fresh=True)
            if not state.dirty or state.size:
                state.truncate(0)
            node.lookups += 1
            if node.etag is None:
                self._note(directory, text, Listed(FILE, mtime_ns=state.mtime_ns))
            fh = self._open_handle(node, writable=True)
        return self.table.entry(node, self.ttl), Open(fh)

    def mknod(
        self, ctx: Context, parent: int, name: bytes, mode: int, rdev: int, umask: int
    ) -> Entry:
        if not stat.S_ISREG(mode):
            raise FuseError(errno.EPERM)  # no FIFOs, sockets or devices in object stores
        entry, opened = self.create(ctx, parent, name, mode, os.O_WRONLY, umask)
        self.flush(ctx, entry.attr.ino, opened.fh, 0)
        self.release(ctx, entry.attr.ino, opened.fh, 0)
        return entry

    def open(self, ctx: Context, ino: int, flags: int) -> Open:
        node = self._node(ino)
        if node.kind == DIR:
            raise FuseError(errno.EISDIR)
        writable = flags & os.O_ACCMODE != os.O_RDONLY
        if not writable and node.write is None and not self._current(node):
            self._refresh(node)  # close-to-open: a reader sees the version current at open
        if writable:
            self._reopen(node)
        with self.lock:
            if writable:
                truncate = bool(flags & os.O_TRUNC)
                state = self._write_state(node, fresh=truncate)
                if truncate and state.size:
                    state.truncate(0)
            fh = self._open_handle(node, writable)
            keep_cache = node.write is None and node.etag == node.page_cache_etag
            node.page_cache_etag = node.etag if node.write is None else None
        if not writable:
            self._read_ahead_files(node)
        return Open(fh, keep_cache=keep_cache)

    def read(self, ctx: Context, ino: int, fh: int, offset: int, size: int) -> bytes | ReadReply:
        handle = self._handle(fh)
        node = handle.node
        state = node.write
        if state is not None and state.local:
            data = state.read(offset, size)
            with self.lock:
                self.stats.bytes_served += len(data)
            return data
        with self.lock:
            if handle.obj is None:
                if handle.etag is None:  # a write handle reading before its first change
                    handle.etag, handle.size = node.etag, node.size
                handle.obj = self.cache.open(
                    self._location(node), node.key, handle.etag or "", handle.size
                )
        with self._errors("read", node):
            view, release = self.cache.read(handle.obj, handle.stream, offset, size)
        with self.lock:
            self.stats.bytes_served += len(view)
        return ReadReply([view], release)

    def write(
        self, ctx: Context, ino: int, fh: int, offset: int, data: memoryview, flags: int
    ) -> int:
        handle = self._handle(fh)
        node = handle.node
        if not handle.writable or node.write is None:
            raise FuseError(errno.EBADF)
        with self._errors("write", node):
            try:
                count = node.write.write(self._uploader(node), self._target(node), offset, data)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                self.cache.free_disk(max(len(data), 64 * 2**20))  # the read cache yields
                count = node.write.write(self._uploader(node), self._target(node), offset, data)
        with self.lock:
            node.mtime_set_ns = None  # a write is a modification: its time wins over utimens
            self.stats.bytes_written += count
        return count

    def flush(self, ctx: Context, ino: int, fh: int, lock_owner: int) -> None:
        """close(2) of a changed file: see _closed for when it is uploaded.

        An empty new file waits for the last close (release): shells open, dup2 and close a
        redirection target before anything is written, and that must not cost an extra PUT."""
        handle = self._handle(fh)
        state = handle.node.write
        if handle.writable and state is not None and not (state.size == 0 and state.local):
            self._closed(handle.node, last=False)

    def fsync(self, ctx: Context, ino: int, fh: int, datasync: bool) -> None:
        """Returns once the file is durable in the store, even an empty one (a background upload
        is waited for; one that failed is tried again here and its failure returned)."""
        node = self._handle(fh).node
        if node.write is not None:
            self.settler.settle(node)
            self._finish(node)

    def release(self, ctx: Context, ino: int, fh: int, flags: int) -> None:
        with self.lock:
            handle = self.handles.pop(fh, None)
        if handle is None:
            return
        node = handle.node
        if handle.obj is not None:
            self.cache.release(handle.obj)
        state = node.write
        if handle.writable and state is not None:
            with self.lock:
                state.handles -= 1
                last = state.handles == 0
            if last and state.dirty and not state.unlinked:
                # A failure is recorded in upload_outcomes and reported by the launcher.
                with contextlib.suppress(FuseError):
                    self._closed(node, last=True)
            self._retire_if_idle(node, state)
        with self.lock:
            node.opens -= 1
            self.table.forget(node, 0)

    def unlink(self, ctx: Context, parent: int, name: bytes) -> None:
        directory = self._dir(parent)
        node = self._existing(directory, name)
        if node.kind == DIR:
            raise FuseError(errno.EISDIR)
        state = node.write
        if state is not None:
            self.settler.cancel(node)
            state.discard()
        with self._errors("unlink", node):
            self._store(node).delete_object(node.bucket or "", node.key)
        with self.lock:
            self.upload_outcomes.pop(self._url(node), None)
            self.table.unlink(node)
            self._note(directory, node.name, None)
        if state is not None:
            self._retire_if_idle(node, state)

    def rename(
        self, ctx: Context, parent: int, name: bytes, newparent: int, newname: bytes, flags: int
    ) -> None:
        if flags & RENAME_EXCHANGE:
            raise FuseError(errno.EINVAL)
        source_dir = self._dir(parent)
        node = self._existing(source_dir, name)
        target_dir, text = self._new_name(newparent, newname)
        if node.is_bucket:
            raise FuseError(errno.EPERM)
        if target_dir.scheme != node.scheme:
            raise FuseError(errno.EXDEV)  # across clouds: mv copies and deletes by itself
        replaced = self._optional(target_dir, text)
        if replaced is node:
            return
        if replaced is not None:
            if flags & RENAME_NOREPLACE:
                raise FuseError(errno.EEXIST)
            if node.kind == DIR and replaced.kind != DIR:
                raise FuseError(errno.ENOTDIR)
            if node.kind != DIR and replaced.kind == DIR:
                raise FuseError(errno.EISDIR)
            if replaced.kind == DIR:
                self._must_be_empty(replaced)
        if node.kind == DIR:
            if _is_within(target_dir, node):
                raise FuseError(errno.EINVAL)
            self._rename_dir(node, target_dir, text, replaced)
        else:
            self._rename_file(node, target_dir, text)
        with self.lock:
            self._note(source_dir, node.name, None)
            self.table.move(node, target_dir, text)
            self._note(target_dir, text, _listing_of(node))

    # -- lifecycle ---------------------------------------------------------------------------

    def drain(self) -> None:
        """Make every written file durable (the launcher calls this after the command exits)."""
        self.settler.settle_all()
        with self.lock:
            pending = [node for node in self.writing if node.write and node.write.dirty]
        for node in pending:
            with contextlib.suppress(FuseError):  # recorded in upload_outcomes
                self._finish(node)

    def lost_files(self) -> dict[str, str]:
        """Objects whose last upload failed: URL -> cause."""
        with self.lock:
            return {target: cause for target, cause in self.upload_outcomes.items() if cause}

    def destroy(self) -> None:
        self.settler.shutdown()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- internals: resolving names --------------------------------------------------------

    def _resolve(
        self, directory: Node, name: str, listing: dict[str, Listed] | None
    ) -> Listed | None:
        """What the store has at directory/name: a file, link or directory, or None."""
        if directory.ino == ROOT_INO:
            return None
        if directory.bucket is None:
            return self._resolve_bucket(directory, name)
        bucket = directory.bucket or ""
        if listing is not None:
            listed = listing.get(name)
            if listed is not None and listed.kind == FILE:
                listed = self._probe_links(directory, {name: listed})[name]
            return listed
        key = directory.prefix + name
        if len(key.encode()) > MAX_KEY_BYTES:
            raise FuseError(errno.ENAMETOOLONG)
        store = self._store(directory)
        with self._errors("lookup", directory, key):
            try:
                return _listed(store.head_object(bucket, key))
            except ObjectNotFound:
                pass
            page = store.list_page(bucket, key + "/", max_keys=1)
        if page.objects or page.prefixes:
            return Listed(DIR)
        return None

    def _resolve_bucket(self, root: Node, name: str) -> Listed | None:
        if not _BUCKET_NAME.match(name):
            return None
        with store_errors("lookup", f"{root.scheme}://{name}", f"{self.mount}/{root.name}/{name}"):
            try:
                self._store(root).head_bucket(name)
            except BucketNotFound:
                return None
            except AccessDenied:
                pass  # listing may still be allowed; its own errors will tell
        return Listed(DIR, mtime_ns=time.time_ns())

    def _refresh(self, node: Node) -> None:
        """Re-read a file's attributes (HEAD); a vanished object keeps its last ones."""
        with self._errors("stat", node):
            try:
                info = self._store(node).head_object(node.bucket or "", node.key)
            except ObjectNotFound:
                return
        with self.lock:
            if node.parent is not None and node.write is None:
                listed = _listed(info)
                if listed.kind == node.kind:
                    self.table.upsert(node.parent, node.name, listed, time.monotonic())

    def _snapshot(self, directory: Node) -> list[DirEntry]:
        if directory.bucket is None:  # the mount root or a scheme directory
            with self.lock:
                children = {node.name: node for node in self.table.children(directory)}
        else:
            listing = self._relist(directory, full=True) or {}
            now = time.monotonic()
            with self.lock:
                children = {
                    node.name: node
                    for node in self.table.children(directory)
                    if node.write is not None and not node.write.unlinked
                }
                for name, listed in listing.items():
                    if name not in children:
                        children[name] = self.table.upsert(directory, name, listed, now)
        parent = directory.parent or directory
        entries = [
            DirEntry(b".", directory.ino, DIR >> 12),
            DirEntry(b"..", parent.ino, DIR >> 12),
        ]
        with self.lock:
            for name, node in sorted(children.items()):
                if node is not None:
                    entry = self.table.entry(node, self.ttl)
                    entries.append(DirEntry(name.encode(), node.ino, node.kind >> 12, entry))
        return entries

    def _known_listing(self, directory: Node) -> dict[str, Listed] | None:
        """The directory's listing while it is trusted (callers hold self.lock): for the TTL, or,
        if it has several pages, ten times as long as reading it took, so re-reading a large
        directory that we keep writing into costs at most a tenth of the time
        (docs/SEMANTICS.md, "Consistency")."""
        trusted = max(self.ttl, LISTING_TRUST_FACTOR * directory.list_seconds)
        if directory.listing is None or time.monotonic() - directory.listed_at >= trusted:
            return None
        return directory.listing

    def _relist(self, directory: Node, *, full: bool) -> dict[str, Listed] | None:
        """Read the directory's listing from the store and keep it (with our own changes made
        meanwhile). Unless `full`, only a directory known before or listed in one page is
        read (a lookup in a huge bucket costs a HEAD, not a walk); None when not read."""
        if directory.bucket is None or directory.ino == ROOT_INO:
            return None
        with self.lock:
            if not full and directory.listing is None and self._fresh_attempt(directory):
                return None  # too large to list for a lookup, tried lately
            keep = directory.changes is None  # else another thread is reading it: do not keep
            if not keep and not full:
                return None
            if keep:
                directory.changes = {}
            pages = None if full or directory.listing is not None else 1
        started = time.monotonic()
        listing = None
        try:
            listing = self._list(directory, pages)
        except FuseError:
            if full:
                raise  # a lookup goes on without (listing may be denied where HEAD is not)
        finally:
            with self.lock:
                if keep:
                    listing = self._keep_listing(directory, listing, started)
        return listing

    def _keep_listing(
        self, directory: Node, listing: dict[str, Listed] | None, started: float
    ) -> dict[str, Listed] | None:
        """Install a listing read since `started`, with the changes we made meanwhile (callers
        hold self.lock)."""
        changes, directory.changes = directory.changes or {}, None
        if listing is None:  # too large (or failed): a lookup does not try again for a while
            if directory.listing is None:
                directory.listed_at, directory.list_seconds = started, time.monotonic() - started
            return None
        directory.listed_at = started
        # Only a listing of several pages is trusted longer than the TTL (_known_listing).
        directory.list_seconds = time.monotonic() - started if len(listing) > 1000 else 0.0
        for name, listed in changes.items():
            if listed is None:
                listing.pop(name, None)
            else:
                listing[name] = listed
        directory.listing, directory.names = listing, None
        return listing

    def _read_ahead_files(self, node: Node) -> None:
        """A file of a listed directory is opened for reading: fetch the next small files of the
        listing (in name order, as `cat dir/*` opens them) into the cache in the background, so
        each costs one GET at most and the reader finds it there (ChunkCache.warm bounds it)."""
        parent = node.parent
        with self.lock:
            listing = self._known_listing(parent) if parent is not None else None
            if parent is None or listing is None:
                return
            if parent.names is None:
                parent.names = sorted(listing)
            start = bisect.bisect_right(parent.names, node.name)
            ahead = [(n, listing.get(n)) for n in parent.names[start : start + FILES_AHEAD]]
            location, prefix = self._location(node), parent.prefix
        for name, listed in ahead:
            if listed is not None and listed.kind == FILE and listed.etag:
                self.cache.warm(location, prefix + name, listed.etag, listed.size)

    def _fresh_attempt(self, directory: Node) -> bool:
        trusted = max(self.ttl, LISTING_TRUST_FACTOR * directory.list_seconds)
        return directory.listed_at > 0 and time.monotonic() - directory.listed_at < trusted

    def _note(self, directory: Node | None, name: str, listed: Listed | None) -> None:
        """Keep the directory's listing current with a change made through this mount
        (callers hold self.lock): writing N files never re-reads it, and a name it does not
        hold is known absent without a request."""
        if directory is None:
            return
        directory.names = None
        if directory.listing is not None:
            if listed is None:
                directory.listing.pop(name, None)
            else:
                directory.listing[name] = listed
        if directory.changes is not None:
            directory.changes[name] = listed

    def _current(self, node: Node) -> bool:
        """A file's attributes need no HEAD: checked within the TTL, or its directory's trusted
        listing (re-read if it went stale) shows the same version."""
        if self._fresh(node.checked_at):
            return True
        parent = node.parent
        if parent is None:
            return False
        with self.lock:
            listing = self._known_listing(parent)
            known = parent.listing is not None
        if listing is None and known:
            listing = self._relist(parent, full=True)
        listed = (listing or {}).get(node.name)
        return listed is not None and listed.kind == node.kind and listed.etag == node.etag

    def _list(self, directory: Node, pages: int | None = None) -> dict[str, Listed] | None:
        """Every child of a directory (all pages of a listing with a delimiter), or None if it
        has more than `pages` pages. When a name is both a file and a prefix, the file is
        shown (as lookup does)."""
        bucket, prefix = directory.bucket or "", directory.prefix
        store = self._store(directory)
        children: dict[str, Listed] = {}
        token = None
        with self._errors("listDirectory", directory, prefix):
            for page_number in itertools.count(1):
                page = store.list_page(bucket, prefix, token=token)
                for sub in page.prefixes:
                    name = sub[len(prefix) : -1]
                    if _visible(name):
                        children.setdefault(name, Listed(DIR))
                for info in page.objects:
                    name = info.key[len(prefix) :]
                    if _visible(name):
                        children[name] = Listed(FILE, info.size, info.etag, info.last_modified_ns)
                token = page.next_token
                if not token:
                    break
                if pages is not None and page_number >= pages:
                    return None
        return self._probe_links(directory, children)

    def _probe_links(self, directory: Node, children: dict[str, Listed]) -> dict[str, Listed]:
        """Listings do not carry metadata: HEAD the small objects (once per version) to tell
        symlinks from files, in parallel. Directories with very many small objects are not
        probed (`ls -l` of them would cost a request per object); their names are checked
        when looked up one by one."""
        store, scheme = self._store(directory), directory.scheme or ""
        bucket, prefix = directory.bucket or "", directory.prefix
        unknown = [
            name
            for name, listed in children.items()
            if listed.kind == FILE
            and 0 < listed.size <= self.symlink_probe_max
            and (scheme, bucket, prefix + name, listed.etag or "") not in self._link_types
        ]
        if len(unknown) > SYMLINK_PROBES_PER_LISTING:
            unknown = []

        def probe(name: str) -> None:
            listed = children[name]
            try:
                info = store.head_object(bucket, prefix + name)
            except ObjectNotFound:
                return
            if info.etag == listed.etag:
                self._link_types[(scheme, bucket, prefix + name, listed.etag or "")] = (
                    _listed(info).kind == LINK
                )

        with self._errors("listDirectory", directory, prefix):
            list(self._pool.map(probe, unknown))
        result = dict(children)
        for name, listed in children.items():
            if listed.kind == FILE and self._link_types.get(
                (scheme, bucket, prefix + name, listed.etag or "")
            ):
                result[name] = Listed(LINK, listed.size, listed.etag, listed.mtime_ns)
        return result

    # -- internals: writing ----------------------------------------------------------------

    def _write_state(self, node: Node, *, fresh: bool) -> WriteState:
        """The node's staging state, created on first use (callers hold self.lock)."""
        if node.write is not None:
            return node.write
        cycle = time.monotonic() - node.closed_at < self.write_settle
        path = os.path.join(self.staging_dir, f"staging-{next(self._staging_names)}")
        if fresh or node.etag is None:
            state = WriteState(path, size=0, download=None)
        else:
            key, etag, size = node.key, node.etag, node.size
            location, url, where = self._location(node), self._url(node), self._path(node)
            state = WriteState(
                path,
                size=size,
                download=lambda fd: self._download(location, key, etag, size, fd, url, where),
            )
        state.reopened = cycle  # closed with changes moments ago: `cmd >> out` in a loop
        node.write = state
        self.writing.add(node)
        return state

    def _reopen(self, node: Node) -> None:
        """A writer opens the file again: if it was closed with changes not yet uploaded, this
        is a close/reopen cycle, and the upload waits until the file settles."""
        self.settler.cancel(node)
        with self.lock:
            if node.write is not None and node.write.closed:
                node.write.reopened = True

    def _closed(self, node: Node, *, last: bool) -> None:
        """A writer closed a changed file (FLUSH, or the last RELEASE). A small new file is
        uploaded in the background; a file in close/reopen cycles once no writer has had it
        for FUSION_WRITE_SETTLE seconds; any other is durable before close returns (an error
        is EIO). fsync and the launcher's exit wait for them all (docs/SEMANTICS.md)."""
        state = node.write
        if state is None or not state.dirty or state.unlinked:
            return
        with self.lock:
            node.closed_at = time.monotonic()
            state.closed = True
        if state.reopened:
            if last and not self.settler.schedule(node, self.write_settle):
                self._finish(node)
            return
        if self.settler.pending(node):
            return  # already on its way (a second close of the same open file)
        small = node.etag is None and state.size < self.small_file
        if not (small and self.settler.schedule(node, 0)):
            self._finish(node)

    def _settle_job(self, node: Node) -> None:
        """The settler's job: upload a closed file, then retire it if no writer is left."""
        state = node.write
        if state is None or (state.reopened and state.handles):
            return  # written again meanwhile: its last close schedules it anew
        with contextlib.suppress(FuseError):  # logged and kept in upload_outcomes
            self._finish(node)
        self._retire_if_idle(node, state)

    def _retire_if_idle(self, node: Node, state: WriteState) -> None:
        """Retire the staging state once no writer holds it and nothing is left to upload (an
        upload in progress keeps the file dirty; a job still due finds it retired and stops)."""
        with self.lock:
            idle = node.write is state and state.handles == 0
            idle = idle and (not state.dirty or state.unlinked)
        if idle:
            self._retire(node)

    def _download(
        self, location: str, key: str, etag: str, size: int, fd: int, url: str, path: str
    ) -> None:
        """Copy an object version into a staging file (through the cache: it may hold it)."""
        obj = self.cache.open(location, key, etag, size)
        stream = ReadStream()
        try:
            with store_errors("copy for writing", url, path):
                for offset in range(0, size, self.cache.chunk_size):
                    view, release = self.cache.read(obj, stream, offset, self.cache.chunk_size)
                    try:
                        os.pwrite(fd, view, offset)
                    finally:
                        view.release()
                        if release is not None:
                            release()
        finally:
            self.cache.release(obj)

    def _truncate(self, node: Node, size: int, *, through_handle: bool) -> None:
        with self.lock:
            state = self._write_state(node, fresh=size == 0)
        with self._errors("truncate", node):
            state.truncate(size)
        if not through_handle and state.handles == 0:  # truncate(2): durable before it returns
            self._finish(node)
            self._retire(node)

    def _finish(self, node: Node) -> None:
        state = node.write
        if state is None:
            return
        url = self._url(node)
        try:
            info = state.finish(self._uploader(node), self._target(node))
        except Exception as exc:
            with self.lock:
                self.upload_outcomes[url] = str(exc)
            extra = {"operation": "Write", "path": self._path(node), "error": str(exc)}
            log.error("%s was not saved: %s", url, exc, extra=extra)
            raise FuseError(errno.EIO) from None
        if info is None:
            return
        with self.lock:
            self.upload_outcomes[url] = None
            node.etag, node.size = info.etag, state.size
            node.mtime_ns = state.mtime_ns
            node.checked_at = time.monotonic()
            parent = node.parent
            if parent is not None and self.table.child(parent, node.name) is node:
                self._note(parent, node.name, _listing_of(node))

    def _retire(self, node: Node) -> None:
        """The last writer is gone and the content is durable: the staging file becomes the
        cached copy of the uploaded version (reading back costs no GET)."""
        with self.lock:
            state = node.write
            if state is None:
                return
            node.write = None
            self.writing.discard(node)
            info = state.uploaded
            state.close()
            if not state.unlinked and info is not None and state.local and node.etag == info.etag:
                self.cache.adopt(self._location(node), node.key, info.etag, state.path, state.size)
            else:
                os.unlink(state.path)
            self.table.forget(node, 0)

    def _rename_file(self, node: Node, target_dir: Node, name: str) -> None:
        self.settler.settle(node)
        if node.write is not None and (node.write.dirty or node.etag is None):
            self._finish(node)
        bucket, key = self._target(node)
        new_bucket, new_key = target_dir.bucket or "", target_dir.prefix + name
        if len(new_key.encode()) > MAX_KEY_BYTES:
            raise FuseError(errno.ENAMETOOLONG)
        store = self._store(node)
        with self._errors("rename", node, key):
            etag = store.copy_object(bucket, key, new_bucket, new_key)
            store.delete_object(bucket, key)
        with self.lock:
            node.etag = etag
            node.checked_at = time.monotonic()

    def _rename_dir(self, node: Node, target_dir: Node, name: str, replaced: Node | None) -> None:
        """Copy every object under the prefix, then delete the originals: not atomic."""
        with self.lock:
            pending = [n for n in self.writing if _is_within(n, node) and n.write and n.write.dirty]
        for written in pending:
            self.settler.settle(written)
            self._finish(written)
        bucket, old_prefix = node.bucket or "", node.prefix
        new_bucket, new_prefix = target_dir.bucket or "", f"{target_dir.prefix}{name}/"
        store = self._store(node)
        with self._errors("rename", node, old_prefix):
            keys = self._all_keys(store, bucket, old_prefix)
            if replaced is not None:
                store.delete_object(new_bucket, new_prefix)
            if not keys:  # an implicit directory with nothing in it: keep it as a marker
                store.put_object(new_bucket, new_prefix, b"")
            list(
                self._pool.map(
                    lambda key: store.copy_object(
                        bucket, key, new_bucket, new_prefix + key[len(old_prefix) :]
                    ),
                    keys,
                )
            )
            for start in range(0, len(keys), 1000):
                store.delete_objects(bucket, keys[start : start + 1000])

    def _all_keys(self, store: ObjectStore, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        token = None
        while True:
            page = store.list_page(bucket, prefix, delimiter=None, token=token)
            keys.extend(info.key for info in page.objects)
            token = page.next_token
            if not token:
                return keys

    def _must_be_empty(self, node: Node) -> None:
        with self.lock:
            if any(_is_within(n, node) and n is not node for n in self.writing):
                raise FuseError(errno.ENOTEMPTY)
        with self._errors("listDirectory", node, node.prefix):
            page = self._store(node).list_page(
                node.bucket or "", node.prefix, delimiter=None, max_keys=2
            )
        if any(info.key != node.prefix for info in page.objects):
            raise FuseError(errno.ENOTEMPTY)

    # -- internals: small helpers ----------------------------------------------------------

    def _open_handle(self, node: Node, writable: bool) -> int:
        """Register a handle (callers hold self.lock)."""
        fh = next(self._fh)
        handle = Handle(node, writable, etag=node.etag, size=node.size)
        self.handles[fh] = handle
        node.opens += 1
        if writable and node.write is not None:
            node.write.handles += 1
        return fh

    def _created(self, ctx: Context, directory: Node, name: str, listed: Listed) -> Entry:
        with self.lock:
            node = self.table.upsert(directory, name, listed, time.monotonic())
            node.uid, node.gid = ctx.uid, ctx.gid
            node.lookups += 1
            self._note(directory, name, listed)
            return self.table.entry(node, self.ttl)

    def _must_not_exist(self, directory: Node, name: str) -> None:
        if self._optional(directory, name) is not None:
            raise FuseError(errno.EEXIST)

    def _optional(self, directory: Node, name: str) -> Node | None:
        try:
            return self._existing(directory, name.encode())
        except FuseError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    def _existing(self, directory: Node, name: bytes) -> Node:
        """The node for an existing name, resolved against the store if not known and fresh."""
        entry = self.lookup(Context(0, 0, 0, 0), directory.ino, name)
        with self.lock:
            node = self.table.get(entry.attr.ino) if entry.attr.ino else None
            if node is None:
                raise FuseError(errno.ENOENT)
            node.lookups -= 1  # internal resolution: the kernel was not told
            return node

    def _new_name(self, parent: int, name: bytes) -> tuple[Node, str]:
        """Validate a name to create inside a bucket directory."""
        directory = self._dir(parent)
        if directory.bucket is None:
            raise FuseError(errno.EPERM)  # /fusion and /fusion/<scheme> are not writable
        text = _decode(name)
        if text is None:
            raise FuseError(errno.EINVAL)
        if len(name) > MAX_NAME_BYTES:
            raise FuseError(errno.ENAMETOOLONG)
        if len((directory.prefix + text).encode()) + 1 > MAX_KEY_BYTES:
            raise FuseError(errno.ENAMETOOLONG)
        return directory, text

    def _node(self, ino: int) -> Node:
        with self.lock:
            node = self.table.get(ino)
        if node is None:
            raise FuseError(errno.ENOENT)
        return node

    def _dir(self, ino: int) -> Node:
        node = self._node(ino)
        if node.kind != DIR:
            raise FuseError(errno.ENOTDIR)
        return node

    def _handle(self, fh: int) -> Handle:
        with self.lock:
            handle = self.handles.get(fh)
        if handle is None:
            raise FuseError(errno.EBADF)
        return handle

    def _target(self, node: Node) -> tuple[str, str]:
        return node.bucket or "", node.key

    def _store(self, node: Node) -> ObjectStore:
        return self.stores[node.scheme or ""]

    def _uploader(self, node: Node) -> Uploader:
        return self.uploaders[node.scheme or ""]

    def _location(self, node: Node) -> str:
        """The cache's name for the node's bucket: scheme and bucket, like `gs://b`."""
        return f"{node.scheme}://{node.bucket}"

    def _url(self, node: Node, key: str | None = None) -> str:
        return f"{self._location(node)}/{node.key if key is None else key}"

    def _path(self, node: Node, key: str | None = None) -> str:
        """Where the object is under the mount (the `path` field of log lines)."""
        return f"{self.mount}/{node.scheme}/{node.bucket}/{node.key if key is None else key}"

    def _errors(
        self, operation: str, node: Node, key: str | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """store_errors for an operation on `node` (or on `key` in the node's bucket)."""
        return store_errors(operation, self._url(node, key), self._path(node, key))

    def _trusted(self, node: Node) -> bool:
        """Whether a known node still exists without asking (callers hold self.lock): a
        directory whose own listing is trusted does (no HEAD and LIST of a directory being
        written into every time its entry times out)."""
        return (
            node.bucket is None
            or node.write is not None
            or node.is_bucket
            or self._fresh(node.checked_at)
            or (node.kind == DIR and self._known_listing(node) is not None)
        )

    def _fresh(self, checked_at: float) -> bool:
        return time.monotonic() - checked_at < self.ttl


def cache_fetch(stores: Mapping[str, ObjectStore]) -> Fetch:
    """The chunk cache's fetch from these stores (it names buckets as FusionFileSystem._location
    does: `scheme://bucket`), pinned to the version the file was opened at."""

    def fetch(location: str, key: str, offset: int, buf: memoryview, etag: str) -> int:
        scheme, bucket = location.split("://", 1)
        return stores[scheme].get_range_into(bucket, key, offset, buf, if_match=etag or None)

    return fetch


def _decode(name: bytes) -> str | None:
    """A name the kernel gave us as a key component, or None if a store cannot hold it."""
    try:
        text = name.decode()
    except UnicodeDecodeError:
        return None
    return text if _visible(text) else None


def _visible(name: str) -> bool:
    """Key components that cannot be a POSIX name are left out of the tree."""
    return (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\0" not in name
        and len(name.encode()) <= MAX_NAME_BYTES
    )


def _listed(info: ObjectInfo) -> Listed:
    mode = info.metadata.get("mode", "")
    kind = LINK if mode.isdigit() and stat.S_ISLNK(int(mode)) else FILE
    return Listed(kind, info.size, info.etag, info.last_modified_ns)


def _listing_of(node: Node) -> Listed:
    """How a listing of its directory shows a node we just changed."""
    if node.kind == DIR:
        return Listed(DIR)
    return Listed(node.kind, node.size, node.etag, node.mtime_ns)


def _is_within(node: Node, ancestor: Node) -> bool:
    current: Node | None = node
    while current is not None:
        if current is ancestor:
            return True
        current = current.parent
    return False
