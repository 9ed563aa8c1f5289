"""One running mount: the object stores, chunk cache, uploaders, file system and FUSE session
wired up, and torn down in the order that never loses a written byte (uploads before unmount)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from fusion_client.cache import ChunkCache
from fusion_client.fs.filesystem import FusionFileSystem, cache_fetch
from fusion_client.fuse import FuseSession, MountError, MountOptions, mount
from fusion_client.log import get_logger, setup_logging
from fusion_client.settings import Settings
from fusion_client.store import ObjectStore
from fusion_client.store.configure import StoreNotConfigured, stores_from_env
from fusion_client.upload import Uploader

log = get_logger()

CACHE_SHARE_OF_FREE_SPACE = 0.8


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
            workdir = tempfile.mkdtemp(prefix="fusion-", dir=settings.cache_location)
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
        self.fs.drain()
        failures = [f for uploader in self.uploaders.values() for f in uploader.wait_all()]
        final = self.fs.upload_outcomes
        lost = {
            failure.url: failure.cause
            for failure in failures
            if final.get(failure.url, failure.cause) is not None
        }
        lost.update(self.fs.lost_files())
        log.info("%s", self.summary(len(lost)))
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

    def summary(self, lost: int) -> str:
        cache, fs = self.cache.stats, self.fs.stats
        uploads = [uploader.stats for uploader in self.uploaders.values()]
        requests = sum(store.stats.requests for store in self.stores.values())
        retries = sum(store.stats.retries for store in self.stores.values())
        chunks = cache.chunk_hits + cache.chunk_misses
        hit_rate = f"{100 * cache.chunk_hits / chunks:.0f}%" if chunks else "n/a"
        return (
            f"summary: fetched {_size(cache.bytes_fetched)}, served {_size(fs.bytes_served)}, "
            f"cache hits {hit_rate} of {chunks} chunks; "
            f"uploads {sum(u.objects for u in uploads)} objects "
            f"{_size(sum(u.bytes_uploaded for u in uploads))}, "
            f"{lost} failed; {requests} requests to {', '.join(self.stores)}, {retries} retried"
        )


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"
