"""The read cache: one sparse, mmap'd file per object version, filled chunk by chunk on demand.

Why this shape:
- Reads are answered with memoryviews of the mapping, so no chunk is copied in Python and the
  cache's pages are file-backed: anonymous memory stays small at any file size.
- A small fetch (a random read's one or two chunks) lands in a reused anonymous buffer and is
  `pwrite`n to the cache file; a large one (read-ahead) is read from the socket straight into
  the mapping. Storing into the mapping of a new file faults page by page, and each fault reads
  the page first (zeroes it) and more around it: about 1 ms of system CPU per MiB, as much as
  the GET itself costs on loopback, where `pwrite` fills whole folios without reading them.
- A cache file belongs to one (bucket, key, ETag) and every fetch carries If-Match, so one file
  never mixes two versions of an object.
- A byte budget with LRU eviction (holes punched back into the sparse file) bounds the disk use;
  a full disk shrinks the budget, and when nothing can be reserved the read is served uncached.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import mmap
import os
import queue
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fusion_client.cache import space
from fusion_client.log import get_logger

log = get_logger("cache")

Fetch = Callable[[str, str, int, memoryview, str], int]
"""fetch(location, key, offset, buffer, etag): fill buffer from the object at offset, pinned to
version `etag`, and return the number of bytes read (short only at the end of the object).
`location` is the scheme and bucket (`gs://b`) the file system names the object's store by."""

EMPTY, FETCHING, READY = 0, 1, 2
MAX_IDLE_OBJECTS = 512
SEQUENTIAL_SLACK = 8 * 2**20
PREFETCH_AFTER = 4 * 2**20  # bytes of sequential streak before read-ahead starts
BOUNCE_BYTES = 2 * 2**20  # fetches up to this size go through a bounce buffer and pwrite
BOUNCE_KEPT = 4  # idle bounce buffers kept for reuse (anonymous memory: 4 x BOUNCE_BYTES)


class _NoSpace(Exception):
    """The cache file system stayed full after eviction: serve this read without the cache."""


@dataclass(slots=True)
class CacheStats:
    bytes_fetched: int = 0  # from the store into the cache or a bounce buffer
    chunk_hits: int = 0
    chunk_misses: int = 0
    uncached_reads: int = 0  # reads served past the cache (its file system was full)
    evicted_chunks: int = 0
    read_wait_seconds: float = 0.0  # readers' time waiting for chunks (fetched or in flight)


class CachedObject:
    """One object version: its sparse cache file, the mapping and a state byte per chunk."""

    __slots__ = (
        "bucket",
        "busy",
        "cached",
        "etag",
        "fd",
        "key",
        "mm",
        "nchunks",
        "opens",
        "path",
        "pins",
        "size",
        "states",
    )

    def __init__(
        self, path: str, bucket: str, key: str, etag: str, size: int, nchunks: int, *, ready: bool
    ) -> None:
        self.path, self.bucket, self.key, self.etag, self.size = path, bucket, key, etag, size
        flags = os.O_RDWR | os.O_CLOEXEC | (0 if ready else os.O_CREAT | os.O_EXCL)
        self.fd = os.open(path, flags, 0o600)
        try:
            os.ftruncate(self.fd, size)
            self.mm = mmap.mmap(self.fd, size) if size else None
            if self.mm is not None:  # no read-around when a store into the mapping faults
                self.mm.madvise(mmap.MADV_RANDOM)
        except BaseException:
            os.close(self.fd)
            raise
        self.nchunks = nchunks
        self.states = bytearray([READY if ready else EMPTY]) * nchunks
        self.cached = nchunks if ready else 0  # chunks READY
        self.busy = 0  # chunks FETCHING
        self.pins: dict[int, int] = {}  # chunk -> readers waiting on it
        self.opens = 0

    def close(self) -> None:
        if self.mm is not None:
            # A reply may still hold a view; the mapping then goes away with the last view.
            with contextlib.suppress(BufferError):
                self.mm.close()
        os.close(self.fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class ReadStream:
    """Per open file: recognises sequential reading and grows its read-ahead window."""

    __slots__ = ("high", "streak", "window")

    def __init__(self) -> None:
        self.high = 0  # end of the furthest read so far
        self.streak = 0  # bytes read sequentially since the last seek
        self.window = 0  # chunks to prefetch past the current read

    def observe(
        self, offset: int, end: int, chunk_size: int, max_window: int, prefetch_after: int
    ) -> int:
        # The kernel sends read-ahead requests concurrently and out of order, so "sequential"
        # means near the high-water mark, not exactly at it.
        near = max(4 * chunk_size, SEQUENTIAL_SLACK)
        if self.high - near <= offset <= self.high + near:
            self.streak += end - offset
            crossed = end // chunk_size > self.high // chunk_size
            self.high = max(self.high, end)
            # Prefetch only after a real streak: a random read plus the kernel's own read-ahead
            # around it must not look sequential.
            if crossed and self.streak >= max(2 * chunk_size, prefetch_after):
                self.window = min(max(2, self.window * 2), max_window)
        else:
            self.high, self.streak, self.window = end, end - offset, 0
        return self.window


class ChunkCache:
    """Chunk cache for all objects of a mount; thread-safe, called from every FUSE worker."""

    def __init__(
        self,
        directory: str,
        *,
        fetch: Fetch,
        capacity: int,
        chunk_size: int,
        fetch_size: int,
        prefetch_max_chunks: int,
        workers: int,
        prefetch_after: int = PREFETCH_AFTER,
    ) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.chunk_size = chunk_size
        self.capacity = capacity
        self.stats = CacheStats()
        self._fetch = fetch
        self._run_chunks = max(1, fetch_size // chunk_size)
        self._prefetch_max = prefetch_max_chunks
        self._prefetch_after = prefetch_after
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._objects: dict[tuple[str, str, str, int], CachedObject] = {}
        self._lru: OrderedDict[tuple[CachedObject, int], None] = OrderedDict()
        self._idle: OrderedDict[CachedObject, None] = OrderedDict()
        self._used = 0  # bytes of chunks READY or FETCHING
        self._names = itertools.count()
        self._disk_full_logged = False
        self._bounce: list[mmap.mmap] = []  # idle BOUNCE_BYTES buffers
        # (object, first chunk, last chunk, held: a warm() job that releases the object)
        self._jobs: queue.SimpleQueue[tuple[CachedObject, int, int, bool] | None] = (
            queue.SimpleQueue()
        )
        self._workers = [
            threading.Thread(target=self._prefetch_worker, name=f"fusion-fetch-{i}", daemon=True)
            for i in range(workers)
        ]
        for worker in self._workers:
            worker.start()

    # -- objects ---------------------------------------------------------------------------

    def open(self, bucket: str, key: str, etag: str, size: int) -> CachedObject:
        """The cache entry of one object version, held until release()."""
        with self._lock:
            return self._hold(bucket, key, etag, size)

    def warm(self, bucket: str, key: str, etag: str, size: int) -> None:
        """Fetch a small object (one chunk at most) in the background unless it is cached or
        on its way: files of a directory read one after another find the next ones cached.
        Fetched only if it fits in a quarter of the cache without evicting anything."""
        if not 0 < size <= self.chunk_size:
            return
        with self._lock:
            obj = self._objects.get((bucket, key, etag, size))
            if obj is not None and obj.states[0] != EMPTY:
                return
            if self._used + size > self.capacity // 4:
                return
            obj = self._hold(bucket, key, etag, size)  # the job lets go of it once fetched
            self._used += size
            self._mark_fetching(obj, [0])
            self._jobs.put((obj, 0, 1, True))

    def _hold(self, bucket: str, key: str, etag: str, size: int) -> CachedObject:
        """The entry of one object version, opened once more (callers hold the lock)."""
        obj = self._objects.get((bucket, key, etag, size))
        if obj is None:
            obj = CachedObject(
                self._new_path(), bucket, key, etag, size, self._nchunks(size), ready=False
            )
            self._objects[(bucket, key, etag, size)] = obj
        obj.opens += 1
        self._idle.pop(obj, None)
        return obj

    def release(self, obj: CachedObject) -> None:
        with self._lock:
            obj.opens -= 1
            if obj.opens == 0:
                self._idle[obj] = None
                self._trim_idle()

    def adopt(self, bucket: str, key: str, etag: str, path: str, size: int) -> None:
        """Take a fully written local file (a finished upload's staging file) as the cached
        copy of that object version, so reading back what was just written costs no GET."""
        with self._lock:
            current = self._objects.get((bucket, key, etag, size))
            if current is not None and (current.opens or current.busy):
                os.unlink(path)
                return
            if current is not None:
                self._drop(current)
            target = self._new_path()
            os.rename(path, target)
            obj = CachedObject(target, bucket, key, etag, size, self._nchunks(size), ready=True)
            self._objects[(bucket, key, etag, size)] = obj
            for chunk in range(obj.nchunks):
                self._lru[(obj, chunk)] = None
            self._used += size
            self._idle[obj] = None
            self._trim_idle()
            while self._used > self.capacity and self._evict_one():
                pass

    # -- reads -----------------------------------------------------------------------------

    def read(
        self, obj: CachedObject, stream: ReadStream, offset: int, size: int
    ) -> tuple[memoryview, Callable[[], None] | None]:
        """Bytes [offset, offset+size) of the object as a view of the cache mapping, and the
        callable that unpins them once the reply is written (None: nothing pinned)."""
        end = min(offset + size, obj.size)
        if offset >= end:
            return memoryview(b""), None
        first, last = offset // self.chunk_size, (end - 1) // self.chunk_size + 1
        with self._lock:
            # Read-ahead never takes more than a quarter of the cache: a window that does not
            # fit would evict its own chunks before they are read, and fetch them twice.
            max_window = min(self._prefetch_max, self.capacity // (4 * self.chunk_size))
            window = stream.observe(offset, end, self.chunk_size, max_window, self._prefetch_after)
            if window:
                self._schedule_prefetch(obj, last, min(last + window, obj.nchunks))
            for chunk in range(first, last):
                obj.pins[chunk] = obj.pins.get(chunk, 0) + 1
        started = time.monotonic()
        try:
            cached = self._ensure(obj, first, last)
        except BaseException:
            self._unpin(obj, first, last)
            raise
        if not cached:
            self._unpin(obj, first, last)
            data = self._read_uncached(obj, offset, end)
            self._waited(started)
            return data, None
        self._waited(started)
        assert obj.mm is not None
        return memoryview(obj.mm)[offset:end], lambda: self._unpin(obj, first, last)

    def _ensure(self, obj: CachedObject, first: int, last: int) -> bool:
        """Make chunks [first, last) READY: fetch the missing ones in this thread, wait for the
        ones another thread is fetching. False when the cache has no room for them."""
        counted = False
        while True:
            with self._lock:
                missing = [c for c in range(first, last) if obj.states[c] == EMPTY]
                waiting = any(obj.states[c] == FETCHING for c in range(first, last))
                if not counted:
                    counted = True
                    self.stats.chunk_misses += len(missing)
                    self.stats.chunk_hits += last - first - len(missing)
                if not missing and not waiting:
                    return True
                if missing:
                    nbytes = sum(self._chunk_len(obj, c) for c in missing)
                    if not self._reserve(nbytes):
                        return False
                    self._mark_fetching(obj, missing)
                else:
                    self._changed.wait()
                    continue
            runs = _runs(missing, len(missing))
            for index, (run_first, run_last) in enumerate(runs):
                try:
                    self._fetch_run(obj, run_first, run_last)
                except BaseException as exc:
                    for later_first, later_last in runs[index + 1 :]:
                        self._abandon(obj, later_first, later_last)
                    if isinstance(exc, _NoSpace):
                        return False
                    raise

    def _waited(self, started: float) -> None:
        elapsed = time.monotonic() - started
        with self._lock:
            self.stats.read_wait_seconds += elapsed

    def _read_uncached(self, obj: CachedObject, offset: int, end: int) -> memoryview:
        buffer = memoryview(bytearray(end - offset))
        got = self._fetch(obj.bucket, obj.key, offset, buffer, obj.etag)
        if got != end - offset:
            raise OSError(errno.EIO, f"{obj.bucket}/{obj.key} is shorter than listed")
        with self._lock:
            self.stats.bytes_fetched += got
            self.stats.uncached_reads += 1
        return buffer

    # -- fetching --------------------------------------------------------------------------

    def _schedule_prefetch(self, obj: CachedObject, first: int, last: int) -> None:
        empty = [c for c in range(first, last) if obj.states[c] == EMPTY]
        wide = last - first >= 2 * self._run_chunks
        for run_first, run_last in _runs(empty, self._run_chunks):
            if wide and run_last - run_first < self._run_chunks and run_last < obj.nchunks:
                return  # a sliding window frees a chunk per read: wait for a whole GET's worth
            chunks = list(range(run_first, run_last))
            if not self._reserve(sum(self._chunk_len(obj, c) for c in chunks)):
                return
            self._mark_fetching(obj, chunks)
            self._jobs.put((obj, run_first, run_last, False))

    def _prefetch_worker(self) -> None:
        while (job := self._jobs.get()) is not None:
            obj, first, last, held = job
            if not obj.opens:  # the reader is gone: do not fetch what nobody will read
                self._abandon(obj, first, last)
                continue
            try:
                self._fetch_run(obj, first, last)
            except _NoSpace:
                pass
            except Exception as exc:  # a reader that needs these chunks fetches them itself
                log.debug("prefetch of %s/%s failed: %s", obj.bucket, obj.key, exc)
            finally:
                if held:
                    self.release(obj)

    def _fetch_run(self, obj: CachedObject, first: int, last: int) -> None:
        """GET chunks [first, last) (already FETCHING and reserved) into the mapping."""
        offset = first * self.chunk_size
        end = min(last * self.chunk_size, obj.size)
        ok = False
        try:
            self._reserve_disk(obj, offset, end - offset)
            if end - offset <= BOUNCE_BYTES:
                got = self._fetch_through_buffer(obj, offset, end)
            else:
                assert obj.mm is not None
                with memoryview(obj.mm)[offset:end] as view:
                    got = self._fetch(obj.bucket, obj.key, offset, view, obj.etag)
            if got != end - offset:
                raise OSError(errno.EIO, f"{obj.bucket}/{obj.key} is shorter than listed")
            ok = True
        finally:
            with self._lock:
                for chunk in range(first, last):
                    obj.busy -= 1
                    if ok:
                        obj.states[chunk] = READY
                        obj.cached += 1
                        self._lru[(obj, chunk)] = None
                    else:
                        obj.states[chunk] = EMPTY
                if ok:
                    self.stats.bytes_fetched += end - offset
                else:
                    self._used -= end - offset
                    if not obj.opens and not obj.cached and not obj.busy:
                        self._drop(obj)
                self._changed.notify_all()

    def _fetch_through_buffer(self, obj: CachedObject, offset: int, end: int) -> int:
        """Fetch [offset, end) into a bounce buffer and write it to the cache file."""
        with self._lock:
            buffer = self._bounce.pop() if self._bounce else mmap.mmap(-1, BOUNCE_BYTES)
        try:
            with memoryview(buffer)[: end - offset] as view:
                got = self._fetch(obj.bucket, obj.key, offset, view, obj.etag)
                written = 0
                while written < got:
                    written += os.pwrite(obj.fd, view[written:got], offset + written)
            return got
        finally:
            with self._lock:
                kept = len(self._bounce) < BOUNCE_KEPT
                if kept:
                    self._bounce.append(buffer)
            if not kept:
                buffer.close()

    def _abandon(self, obj: CachedObject, first: int, last: int) -> None:
        """Give back chunks marked FETCHING that will not be fetched after all."""
        with self._lock:
            for chunk in range(first, last):
                obj.states[chunk] = EMPTY
                obj.busy -= 1
                self._used -= self._chunk_len(obj, chunk)
            if not obj.opens and not obj.cached and not obj.busy:
                self._drop(obj)
            self._changed.notify_all()

    def _reserve_disk(self, obj: CachedObject, offset: int, length: int) -> None:
        try:
            space.reserve(obj.fd, offset, length)
            return
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
        with self._lock:
            self._shrink_after_disk_full(length)
        try:
            space.reserve(obj.fd, offset, length)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise _NoSpace from None
            raise

    def free_disk(self, wanted: int) -> None:
        """Someone else (a file being written) hit ENOSPC on the cache's file system: shrink
        the cache so that `wanted` more bytes fit."""
        with self._lock:
            self._shrink_after_disk_full(wanted)

    def _shrink_after_disk_full(self, wanted: int) -> None:
        """The disk filled before our budget did: lower the budget to what fits, and evict."""
        target = max(self._used - wanted - self.capacity // 16, 0)
        if not self._disk_full_logged:
            self._disk_full_logged = True
            log.warning(
                "cache directory %s is full; shrinking the cache to %d MiB",
                self.directory,
                target // 2**20,
            )
        self.capacity = max(target, self.chunk_size * self._run_chunks)
        while self._used > target and self._evict_one():
            pass

    # -- budget and eviction (all under self._lock) ----------------------------------------

    def _reserve(self, nbytes: int) -> bool:
        while self._used + nbytes > self.capacity:
            if not self._evict_one():
                return False
        self._used += nbytes
        return True

    def _evict_one(self) -> bool:
        """Evict the least recently used chunk nobody is reading; False if there is none."""
        for _ in range(len(self._lru)):
            obj, chunk = next(iter(self._lru))
            if obj.pins.get(chunk):
                self._lru.move_to_end((obj, chunk))
                continue
            del self._lru[(obj, chunk)]
            length = self._chunk_len(obj, chunk)
            obj.states[chunk] = EMPTY
            obj.cached -= 1
            self._used -= length
            self.stats.evicted_chunks += 1
            if not obj.opens and not obj.cached and not obj.busy:
                self._drop(obj)
            else:
                self._punch(obj, chunk * self.chunk_size, length)
            return True
        return False

    def _punch(self, obj: CachedObject, offset: int, length: int) -> None:
        try:
            if not space.punch_hole(obj.fd, offset, length):
                log.warning("cache file system cannot punch holes; eviction frees no disk")
        except OSError as exc:
            log.warning("cannot free cache space of %s/%s: %s", obj.bucket, obj.key, exc)

    def _trim_idle(self) -> None:
        """Bound the number of mapped files of objects nobody has open."""
        while len(self._idle) > MAX_IDLE_OBJECTS:
            obj = next(iter(self._idle))
            if obj.busy:
                self._idle.move_to_end(obj)
                return
            self._drop(obj)

    def _drop(self, obj: CachedObject) -> None:
        for chunk in range(obj.nchunks):
            if self._lru.pop((obj, chunk), None) is not None:
                self._used -= self._chunk_len(obj, chunk)
        obj.cached = 0
        self._idle.pop(obj, None)
        self._objects.pop((obj.bucket, obj.key, obj.etag, obj.size), None)
        obj.close()

    def _mark_fetching(self, obj: CachedObject, chunks: list[int]) -> None:
        for chunk in chunks:
            obj.states[chunk] = FETCHING
        obj.busy += len(chunks)

    def _unpin(self, obj: CachedObject, first: int, last: int) -> None:
        """Release a reader's pins and mark the chunks most recently used."""
        with self._lock:
            for chunk in range(first, last):
                left = obj.pins[chunk] - 1
                if left:
                    obj.pins[chunk] = left
                else:
                    del obj.pins[chunk]
                if (obj, chunk) in self._lru:
                    self._lru.move_to_end((obj, chunk))

    def _chunk_len(self, obj: CachedObject, chunk: int) -> int:
        return min(self.chunk_size, obj.size - chunk * self.chunk_size)

    def _nchunks(self, size: int) -> int:
        return -(-size // self.chunk_size)

    def _new_path(self) -> str:
        return os.path.join(self.directory, f"object-{next(self._names)}")

    # -- lifecycle ---------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop the prefetch workers and delete every cache file."""
        for _ in self._workers:
            self._jobs.put(None)
        for worker in self._workers:
            worker.join(timeout=5)
        with self._lock:
            for obj in list(self._objects.values()):
                self._drop(obj)
        shutil.rmtree(self.directory, ignore_errors=True)


def _runs(chunks: list[int], longest: int) -> list[tuple[int, int]]:
    """Split sorted chunk numbers into contiguous [first, last) runs of at most `longest`."""
    runs: list[tuple[int, int]] = []
    for chunk in chunks:
        if runs and runs[-1][1] == chunk and chunk - runs[-1][0] < longest:
            runs[-1] = (runs[-1][0], chunk + 1)
        else:
            runs.append((chunk, chunk + 1))
    return runs
