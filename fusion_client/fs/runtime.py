"""One running mount: the object stores, chunk cache, uploaders, file system and FUSE session
wired up, and torn down in the order that never loses a written byte (uploads before unmount)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from fusion_client.cache import ChunkCache
from fusion_client.fs.filesystem import FusionFileSystem, cache_fetch
from fusion_client.fuse import FuseSession, MountError, MountOptions, clear_dead_mount, mount
from fusion_client.log import get_logger, setup_logging
from fusion_client.settings import Settings
from fusion_client.store import ObjectStore
from fusion_client.store.configure import StoreNotConfigured, stores_from_env
from fusion_client.upload import Uploader

log = get_logger()

CACHE_SHARE_OF_FREE_SPACE = 0.8
WORKDIR_PREFIX = "fusion-"
LOCK_NAME = ".owner.lock"  # flock-ed by the live process that owns the work directory
_claims: list[int] = []  # lock fds held for the life of the process


def claim_workdir(workdir: str) -> None:
    """Hold an exclusive lock inside our work directory until this process ends (the kernel
    drops it even on kill -9), so a later start knows the directory is not abandoned."""
    fd = os.open(os.path.join(workdir, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _claims.append(fd)


def remove_abandoned_workdirs(cache_location: str) -> None:
    """Delete the work directories (cache, staging files) of clients that died without cleaning
    up: no live process holds their lock. Locks work across containers sharing the disk."""
    for name in os.listdir(cache_location):
        path = os.path.join(cache_location, name)
        lock = os.path.join(path, LOCK_NAME)
        if not name.startswith(WORKDIR_PREFIX) or not os.path.exists(lock):
            continue
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # alive
        finally:
            os.close(fd)
        log.info("removing %s, left by a client that is gone", path)
        shutil.rmtree(path, ignore_errors=True)


class MountUnavailable(Exception):
    """This container cannot mount (no /dev/fuse, no privilege, bad configuration)."""


@dataclass
class MountedFileSystem:
    settings: Settings
    workdir: str  # our own directory under FUSION_CACHE_LOCATION
    stores: dict[str, ObjectStore]  # by scheme: s3, gs, az
    cache: ChunkCache
    uploaders: dict[str, Uploader]
    fs: FusionFileSystem
    session: FuseSession
    log_target: str | None = None  # a log file inside the mount, written there at exit

    @classmethod
    def start(
        cls, settings: Settings, environ: Mapping[str, str] = os.environ
    ) -> MountedFileSystem:
        try:
            os.makedirs(settings.cache_location, exist_ok=True)
            remove_abandoned_workdirs(settings.cache_location)
            workdir = tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=settings.cache_location)
            claim_workdir(workdir)
        except OSError as exc:
            setup_logging(settings.log_level, "stderr")
            raise MountUnavailable(f"cache location {settings.cache_location}: {exc}") from None
        # A log file on the mount itself (e.g. in a task's work directory) is kept locally and
        # copied there at exit: logging through our own FUSE threads could deadlock them.
        log_target = None
        log_output = settings.log_output
        if os.path.abspath(log_output).startswith(settings.mount.rstrip("/") + "/"):
            log_target, log_output = log_output, os.path.join(workdir, "fusion.log")
        setup_logging(settings.log_level, log_output)
        try:
            mounted = cls._assemble(settings, workdir, environ)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        mounted.log_target = log_target
        return mounted

    @classmethod
    def _assemble(
        cls, settings: Settings, workdir: str, environ: Mapping[str, str]
    ) -> MountedFileSystem:
        try:
            stores = stores_from_env(environ)
        except StoreNotConfigured as exc:
            raise MountUnavailable(str(exc)) from None
        capacity = settings.cache_size or int(
            shutil.disk_usage(workdir).free * CACHE_SHARE_OF_FREE_SPACE
        )
        cache = ChunkCache(
            os.path.join(workdir, "objects"),
            fetch=cache_fetch(stores),
            capacity=capacity,
            chunk_size=settings.chunk_size,
            fetch_size=settings.fetch_size,
            prefetch_max_chunks=settings.prefetch_max_chunks,
            workers=settings.fetch_threads,
        )
        uploaders = {
            scheme: Uploader(
                store, part_size=settings.upload_part_size, workers=settings.upload_threads
            )
            for scheme, store in stores.items()
        }
        fs = FusionFileSystem(stores, cache, uploaders, settings, os.path.join(workdir, "staging"))
        try:
            if clear_dead_mount(settings.mount):
                log.warning("cleared a dead mount left at %s by a killed client", settings.mount)
            os.makedirs(settings.mount, exist_ok=True)
            session = mount(fs, settings.mount, MountOptions())
            session.start(threads=settings.fuse_threads)
        except (MountError, OSError) as exc:
            cache.shutdown()
            for uploader in uploaders.values():
                uploader.shutdown()
            for store in stores.values():
                store.close()
            # MountError already names the mountpoint; an OSError (makedirs) does not.
            if isinstance(exc, MountError):
                raise MountUnavailable(str(exc)) from None
            raise MountUnavailable(f"cannot mount {settings.mount}: {exc}") from None
        log.debug(
            "mounted %s at %s (cache %d MiB in %s)",
            ", ".join(stores),
            settings.mount,
            capacity >> 20,
            workdir,
        )
        return cls(settings, workdir, stores, cache, uploaders, fs, session)

    def wait_for_signal_or_unmount(self, signals: set[int]) -> None:
        """Block until one of `signals` (blocked by the caller) arrives or someone unmounts."""
        unmounted = threading.Event()

        def watch() -> None:
            self.session.wait()
            unmounted.set()
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)

        threading.Thread(target=watch, name="fusion-unmount-watch", daemon=True).start()
        signal.sigwait(signals)

    def close(self) -> list[str]:
        """Make every written file durable, unmount, clean up; return the files not saved."""
        uploaded_at_exit = sum(u.stats.bytes_uploaded for u in self.uploaders.values())
        started = time.monotonic()
        self.fs.drain()
        failures = [f for uploader in self.uploaders.values() for f in uploader.wait_all()]
        upload_wait = time.monotonic() - started
        final = self.fs.upload_outcomes
        lost = {
            failure.url: failure.cause
            for failure in failures
            if final.get(failure.url, failure.cause) is not None
        }
        lost.update(self.fs.lost_files())
        summary = self.summary(len(lost), uploaded_at_exit, upload_wait)
        log.info("%s", describe(summary), extra={"summary": summary})
        self._publish_trace(summary)
        self._publish_log()
        self._unmount()
        self.fs.destroy()
        for uploader in self.uploaders.values():
            uploader.shutdown()
        self.cache.shutdown()
        for store in self.stores.values():
            store.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
        return [f"{url}: {cause}" for url, cause in sorted(lost.items())]

    def _publish_log(self) -> None:
        if self.log_target is None:
            return
        for handler in log.handlers:
            handler.flush()
        try:
            shutil.copyfile(os.path.join(self.workdir, "fusion.log"), self.log_target)
        except OSError as exc:
            print(f"[fusion] cannot write the log to {self.log_target}: {exc}", file=sys.stderr)

    def _unmount(self) -> None:
        try:
            self.session.stop_and_unmount(timeout=10)
        except MountError as exc:  # still busy (a background process holds a file): detach
            log.debug("unmount: %s; detaching lazily", exc)
            try:
                self.session.stop_and_unmount(lazy=True, timeout=5)
            except MountError as again:
                log.warning("could not unmount %s: %s", self.settings.mount, again)

    def summary(self, lost: int, uploaded_at_exit: int, upload_wait: float) -> dict:
        """What Fusion did for the task: the exit summary, also .fusion/trace.json."""
        cache, fs = self.cache.stats, self.fs.stats
        uploads = [uploader.stats for uploader in self.uploaders.values()]
        uploaded = sum(u.bytes_uploaded for u in uploads)
        return {
            "bytes_fetched": cache.bytes_fetched,
            "bytes_served": fs.bytes_served,
            "chunk_hits": cache.chunk_hits,
            "chunk_misses": cache.chunk_misses,
            "uncached_reads": cache.uncached_reads,
            "read_wait_seconds": round(cache.read_wait_seconds, 3),
            "bytes_written": fs.bytes_written,
            "objects_uploaded": sum(u.objects for u in uploads),
            "bytes_uploaded": uploaded,
            # Appends in close/reopen cycles once cost a whole upload per close: about 1 now.
            "uploaded_per_written": round(uploaded / fs.bytes_written, 3)
            if fs.bytes_written
            else 0,
            "bytes_uploaded_at_exit": uploaded_at_exit,
            "upload_wait_seconds": round(upload_wait, 3),
            "uploads_failed": lost,
            "stores": {
                scheme: {
                    "requests": store.stats.requests,
                    "retries": store.stats.retries,
                    "bytes_sent": store.stats.bytes_sent,
                    "bytes_received": store.stats.bytes_received,
                }
                for scheme, store in self.stores.items()
                if store.stats.requests
            },
        }

    def _publish_trace(self, summary: dict) -> None:
        """FUSION_WORK/.fusion/trace.json: where a run's operator looks for what Fusion saved."""
        if not self.settings.work:
            return
        folder = os.path.join(self.settings.work, ".fusion")
        try:
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "trace.json"), "w", encoding="utf-8") as out:
                json.dump({"fusion": summary}, out, indent=1)
        except OSError as exc:
            log.warning("cannot write %s/trace.json: %s", folder, exc)


def describe(summary: dict) -> str:
    """The summary as one line for people (the log record carries it whole)."""
    chunks = summary["chunk_hits"] + summary["chunk_misses"]
    hit_rate = f"{100 * summary['chunk_hits'] / chunks:.0f}%" if chunks else "n/a"
    stores = summary["stores"].values()
    requests = sum(store["requests"] for store in stores)
    retries = sum(store["retries"] for store in stores)
    return (
        f"summary: fetched {_size(summary['bytes_fetched'])}, "
        f"served {_size(summary['bytes_served'])}, cache hits {hit_rate} of {chunks} chunks, "
        f"{summary['uncached_reads']} reads past the cache, "
        f"reads waited {summary['read_wait_seconds']:.1f}s; "
        f"written {_size(summary['bytes_written'])}, uploads {summary['objects_uploaded']} "
        f"objects {_size(summary['bytes_uploaded'])} "
        f"({summary['uploaded_per_written']:.2f} bytes uploaded per byte written, "
        f"{_size(summary['bytes_uploaded_at_exit'])} before the command exited, "
        f"{summary['upload_wait_seconds']:.1f}s waited at exit), "
        f"{summary['uploads_failed']} failed; {requests} requests to "
        f"{', '.join(summary['stores']) or 'no store'}, {retries} retried"
    )


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"
