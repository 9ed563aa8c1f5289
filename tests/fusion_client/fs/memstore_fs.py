"""A FusionFileSystem over in-memory stores, driven by path the way the kernel would drive it
(lookup per component, open/write/flush/release), for file-system unit tests without FUSE."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fusion_client.cache import ChunkCache
from fusion_client.fs.filesystem import FusionFileSystem, cache_fetch
from fusion_client.fuse import ROOT_INO, Context, FuseError
from fusion_client.fuse.ops import ReadReply
from fusion_client.settings import Settings
from fusion_client.store.memory import MemoryStore
from fusion_client.upload import Uploader

CTX = Context(0, 0, 0, 0)
MiB = 2**20


@dataclass
class MemFusion:
    fs: FusionFileSystem
    stores: dict[str, MemoryStore]

    def ino(self, path: str) -> int:
        """Resolve a path below the mount, e.g. "s3/bucket/dir/file"; FuseError if missing."""
        ino = ROOT_INO
        for part in filter(None, path.strip("/").split("/")):
            entry = self.fs.lookup(CTX, ino, part.encode())
            if not entry.attr.ino:
                raise FuseError(2)
            ino = entry.attr.ino
        return ino

    def parent(self, path: str) -> tuple[int, bytes]:
        head, _, name = path.strip("/").rpartition("/")
        return self.ino(head), name.encode()

    def write_file(self, path: str, data: bytes, *, fsync: bool = False) -> None:
        """Create (after the negative lookup the kernel makes first), write and close."""
        parent, name = self.parent(path)
        self.fs.lookup(CTX, parent, name)
        entry, opened = self.fs.create(CTX, parent, name, 0o100644, os.O_WRONLY, 0o022)
        try:
            if data:
                self.fs.write(CTX, entry.attr.ino, opened.fh, 0, memoryview(data), 0)
            if fsync:
                self.fs.fsync(CTX, entry.attr.ino, opened.fh, False)
            self.fs.flush(CTX, entry.attr.ino, opened.fh, 0)
        finally:
            self.fs.release(CTX, entry.attr.ino, opened.fh, 0)

    def open(self, path: str) -> tuple[int, int]:
        ino = self.ino(path)
        return ino, self.fs.open(CTX, ino, os.O_RDONLY).fh

    def pread(self, ino: int, fh: int, offset: int, size: int) -> bytes:
        reply = self.fs.read(CTX, ino, fh, offset, size)
        if isinstance(reply, ReadReply):
            data = b"".join(bytes(buffer) for buffer in reply.buffers)
            if reply.release is not None:
                reply.release()
            return data
        return bytes(reply)

    def read_file(self, path: str) -> bytes:
        ino, fh = self.open(path)
        try:
            return self.pread(ino, fh, 0, 1 << 30)
        finally:
            self.fs.release(CTX, ino, fh, 0)

    def names(self, path: str) -> list[str]:
        ino = self.ino(path)
        fh = self.fs.opendir(CTX, ino, 0).fh
        try:
            return [e.name.decode() for e in self.fs.readdir(CTX, ino, fh, 0)][2:]
        finally:
            self.fs.releasedir(CTX, ino, fh)


def memory_fusion(
    base: Path, *schemes: str, ttl: float = 0.0, write_settle: float = 1.0
) -> Iterator[MemFusion]:
    """The file system over one MemoryStore per scheme, each holding bucket `bkt`."""
    stores = {scheme: MemoryStore("bkt", scheme=scheme) for scheme in schemes or ("s3",)}
    settings = Settings(
        metadata_ttl=ttl, negative_ttl=ttl, chunk_size=MiB, write_settle=write_settle
    )
    cache = ChunkCache(
        str(base / "cache"),
        fetch=cache_fetch(stores),
        capacity=256 * MiB,
        chunk_size=settings.chunk_size,
        fetch_size=settings.fetch_size,
        prefetch_max_chunks=4,
        workers=2,
    )
    uploaders = {s: Uploader(store, part_size=5 * MiB, workers=2) for s, store in stores.items()}
    fs = FusionFileSystem(stores, cache, uploaders, settings, str(base / "staging"))
    try:
        yield MemFusion(fs, stores)
    finally:
        fs.destroy()
        for uploader in uploaders.values():
            uploader.shutdown()
        cache.shutdown()
