"""Uploads that close() does not wait for: small new files (sent at once, in the background) and
files rewritten in close/reopen cycles (sent once they have been left alone for a while).

One scheduler thread hands due jobs to a bounded pool of workers. At most `limit` jobs are
scheduled or running at once (each holds a staging file open); schedule() says False when full
and the caller uploads in its own thread instead, so a writer faster than the store is slowed
to the store's pace rather than piling up staging files. fsync, rename and the launcher's exit
call settle() / settle_all(), which run a job at once and wait for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor


class Settler:
    def __init__(self, run: Callable[[Hashable], None], *, workers: int, limit: int) -> None:
        self._run = run
        self._limit = limit
        self._lock = threading.RLock()  # a done callback may run inside _submit
        self._changed = threading.Condition(self._lock)
        self._due: dict[Hashable, float] = {}  # scheduled, not started: monotonic due time
        self._running: dict[Hashable, Future[None]] = {}
        self._closed = False
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="fusion-settle")
        self._thread = threading.Thread(target=self._loop, name="fusion-settler", daemon=True)
        self._thread.start()

    def schedule(self, item: Hashable, delay: float) -> bool:
        """Run `item`'s job after `delay` seconds (an earlier due time already set is kept).
        False when `limit` jobs are pending: the caller must do the work itself."""
        due = time.monotonic() + delay
        with self._lock:
            if item in self._due:
                self._due[item] = min(self._due[item], due)
                return True
            if self._closed or len(self._due) + len(self._running) >= self._limit:
                return False
            self._due[item] = due
            self._changed.notify_all()
            return True

    def cancel(self, item: Hashable) -> None:
        """A writer came back: the job is not due any more (one already running goes on)."""
        with self._lock:
            self._due.pop(item, None)

    def pending(self, item: Hashable) -> bool:
        with self._lock:
            return item in self._due or item in self._running

    def settle(self, item: Hashable) -> None:
        """Run `item`'s job now if it is scheduled, and wait for a running one to end."""
        with self._lock:
            scheduled = self._due.pop(item, None) is not None
            running = self._running.get(item)
        if running is not None:
            running.exception()  # wait; the job records its own failures
        if scheduled:
            self._run(item)

    def settle_all(self) -> None:
        """Run every scheduled job now and wait for all of them (the launcher at exit)."""
        with self._lock:
            due = list(self._due)
            self._due.clear()
            running = list(self._running.values())
        for future in [*running, *(self._start(item) for item in due)]:
            future.exception()

    def shutdown(self) -> None:
        """Run what is still scheduled (files written at exit, like trace.json), then stop."""
        self.settle_all()
        with self._lock:
            self._closed = True
            self._changed.notify_all()
        self._thread.join()
        self._pool.shutdown(wait=True)

    def _loop(self) -> None:
        with self._lock:
            while not self._closed:
                now = time.monotonic()
                ready = [item for item, due in self._due.items() if due <= now]
                for item in ready:
                    del self._due[item]
                    self._submit(item)
                if not ready:
                    soonest = min(self._due.values(), default=None)
                    self._changed.wait(None if soonest is None else soonest - now)

    def _start(self, item: Hashable) -> Future[None]:
        with self._lock:
            return self._submit(item)

    def _submit(self, item: Hashable) -> Future[None]:
        """Hand a job to the pool (callers hold the lock)."""
        future = self._pool.submit(self._run, item)
        self._running[item] = future
        future.add_done_callback(lambda done: self._finished(item, done))
        return future

    def _finished(self, item: Hashable, future: Future[None]) -> None:
        with self._lock:
            if self._running.get(item) is future:
                del self._running[item]
            self._changed.notify_all()
