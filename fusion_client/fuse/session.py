"""A mounted FUSE connection: worker threads reading requests from /dev/fuse and writing replies.

Each worker owns one descriptor (the first the mount's own, the others clones made with
FUSE_DEV_IOC_CLONE): the kernel spreads requests over them and expects each reply on the
descriptor that read its request. A worker reads into its own preallocated buffer (max_write plus
a page), so the hot READ/WRITE path allocates no request buffers, and replies with one writev of
the header and the file system's buffers, so data from an mmap'd cache is never copied in Python.
The GIL is released in readv/writev, so several workers overlap their I/O.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import mmap
import os
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from fusion_client.fuse import abi, system
from fusion_client.fuse.ops import ConnInfo, ReadReply
from fusion_client.fuse.protocol import NO_REPLY, EntryReply, Protocol
from fusion_client.fuse.system import MountError
from fusion_client.log import get_logger

log = get_logger("fuse")

DEFAULT_THREADS = 4
_RETRY_READ = frozenset({errno.EINTR, errno.EAGAIN, errno.ENOENT})  # ENOENT: request was aborted
_UNMOUNTED = frozenset({errno.ENODEV, errno.ECONNABORTED})

#: unmount(mountpoint, lazy) for the way the session was mounted (umount2 or fusermount3 -u).
Unmounter = Callable[[str, bool], None]


class SessionError(MountError):
    """The kernel and we could not agree on the protocol (INIT failed); the mount is undone."""


class FuseSession:
    """Serves one mount. Create with `fusion_client.fuse.mount()`, then `serve()` or `start()`."""

    def __init__(
        self,
        fd: int,
        mountpoint: str,
        protocol: Protocol,
        unmount: Unmounter,
        *,
        read_ahead_kb: int = 0,
    ) -> None:
        self.fd = fd
        self.mountpoint = mountpoint
        self.protocol = protocol
        self.read_ahead_kb = read_ahead_kb
        self._unmount = unmount
        self._fds: list[int] = [fd]
        self._threads: list[threading.Thread] = []
        self._unmounted = False
        self._closed = False
        self._lock = threading.Lock()
        self.device: str | None = None  # "0:N", known once served; names the fusectl entry

    @property
    def conn(self) -> ConnInfo | None:
        """The negotiated `ConnInfo` (None until INIT is answered, i.e. until start())."""
        return self.protocol.conn

    @property
    def serving(self) -> bool:
        """True while any worker thread is still answering the kernel."""
        return any(thread.is_alive() for thread in self._threads)

    # --- lifecycle ---------------------------------------------------------------------------
    def serve(self, threads: int = DEFAULT_THREADS) -> None:
        """Serve requests until the file system is unmounted (by anyone)."""
        self.start(threads)
        self.wait()

    def start(self, threads: int = DEFAULT_THREADS) -> None:
        """Answer INIT, then serve in `threads` background threads; returns at once."""
        if self._threads:
            raise RuntimeError("the session is already being served")
        try:
            self._negotiate()
        except SessionError:
            with contextlib.suppress(MountError):
                self.stop_and_unmount(lazy=True)
            raise
        self.device = system.mount_device(self.mountpoint)
        if self.read_ahead_kb:
            self._raise_readahead()
        atexit.register(self._abort_at_exit)
        for index in range(max(1, threads)):
            fd = self.fd if index == 0 else self._clone()
            thread = threading.Thread(
                target=self._serve_fd, args=(fd,), name=f"fuse-{index}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every worker to end (the mount is gone); True when they all have."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                return False
        self._close()
        return True

    def stop_and_unmount(self, lazy: bool = False, timeout: float | None = None) -> bool:
        """Unmount, then wait for the workers; see `wait` for the result.

        A lazy unmount detaches the mount at once but the kernel keeps the connection while
        files are still open, so the workers go on serving those until they are closed.
        """
        with self._lock:
            if not self._unmounted:
                self._unmount(self.mountpoint, lazy)
                self._unmounted = True
        if not self._threads:  # never served: nobody reads the ENODEV, close the device here
            self._close()
            return True
        return self.wait(timeout)

    def abort(self) -> bool:
        """Sever the connection now (fusectl): requests still waiting, e.g. of processes holding
        files open after a lazy unmount, fail with ENOTCONN, and the workers end. False when
        the kernel's control files are out of reach (not root, /sys read-only)."""
        if self.device is None or self._closed:
            return False
        try:
            system.abort_connection(self.device)
        except FileNotFoundError:
            return True  # the connection is already gone
        except OSError as e:
            log.warning("cannot abort the FUSE connection of %s: %s", self.mountpoint, e)
            return False
        return True

    def _abort_at_exit(self) -> None:
        """A process exiting while it serves must not keep its own files open on the mount:
        exit() would close them (FLUSH) before the device, and wait forever for itself."""
        if self.serving:
            self.abort()

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in self._fds:
                os.close(fd)
        atexit.unregister(self._abort_at_exit)
        self.protocol.finish()

    def _clone(self) -> int:
        """A new descriptor on the same connection, or the shared one where that fails."""
        try:
            fd = os.open(abi.DEVICE, os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:  # e.g. a user mounting through fusermount3 may not open it
            return self._shared(e)
        try:
            fcntl.ioctl(fd, abi.DEV_IOC_CLONE, struct.pack("I", self.fd))
        except OSError as e:  # kernels before 4.5
            os.close(fd)
            return self._shared(e)
        self._fds.append(fd)
        return fd

    def _shared(self, cause: OSError) -> int:
        """Several workers may block in read() on one descriptor; each replies on it."""
        log.debug("no clone of %s (%s): workers share one descriptor", abi.DEVICE, cause)
        return self.fd

    def _raise_readahead(self) -> None:
        """Let the kernel read ahead (and so send READs of) up to read_ahead_kb at a time.

        INIT can only lower the kernel's default (128 KiB); the mount's bdi in sysfs can raise
        it, and sequential readers then get few large READs instead of many small ones. Best
        effort: /sys is often read-only in containers.
        """
        if self.device is None:
            return
        try:
            with open(f"/sys/class/bdi/{self.device}/read_ahead_kb", "w") as knob:
                knob.write(str(self.read_ahead_kb))
        except OSError as e:
            log.debug("kernel readahead of %s stays at its default: %s", self.mountpoint, e)

    # --- request loop -----------------------------------------------------------------------
    def _negotiate(self) -> None:
        """Read and answer INIT (again, if the kernel first offers a newer major version)."""
        buf = bytearray(self.protocol.request_buffer_size)
        view = memoryview(buf)
        header = bytearray(abi.OUT_HEADER.size)
        while self.protocol.conn is None:
            try:
                length = os.readv(self.fd, (buf,))
            except OSError as e:
                if e.errno in _RETRY_READ:
                    continue
                raise SessionError(f"no INIT from the kernel: {e.strerror}") from None
            opcode = abi.IN_HEADER.unpack_from(buf)[1]
            unique, error, payload = self.protocol.handle(view, length)
            self._reply(self.fd, header, unique, error, payload)
            if opcode == abi.Opcode.INIT and error:
                raise SessionError(f"the kernel's FUSE protocol is unsupported ({error})")

    def _serve_fd(self, fd: int) -> None:
        # Anonymous mmap, not bytearray: pages are only committed when a request touches them,
        # so the 1 MiB+ buffer of a worker that never receives a big WRITE costs one page.
        buf = mmap.mmap(-1, self.protocol.request_buffer_size)
        view = memoryview(buf)
        header = bytearray(abi.OUT_HEADER.size)
        handle = self.protocol.handle
        reply = self._reply
        readv = os.readv
        while True:
            try:
                length = readv(fd, (buf,))
            except OSError as e:
                if e.errno in _RETRY_READ:
                    continue
                if e.errno not in _UNMOUNTED:
                    log.error("reading %s failed, stopping this worker: %s", abi.DEVICE, e)
                return
            unique, error, payload = handle(view, length)
            if payload is not NO_REPLY:
                reply(fd, header, unique, error, payload)

    def _reply(self, fd: int, header: bytearray, unique: int, error: int, payload: Any) -> None:
        """Write one reply with a single writev; a vanished request (ENOENT) is not an error.

        Never raises: a worker must survive whatever one request did.
        """
        pack_into = abi.OUT_HEADER.pack_into
        kind = payload.__class__
        release = None
        try:
            if error:
                pack_into(header, 0, abi.OUT_HEADER.size, -error, unique)
                os.write(fd, header)
            elif kind is bytes or kind is memoryview or kind is bytearray:
                pack_into(header, 0, abi.OUT_HEADER.size + len(payload), 0, unique)
                os.writev(fd, (header, payload))
            elif kind is EntryReply:
                pack_into(header, 0, abi.OUT_HEADER.size + len(payload.payload), 0, unique)
                os.writev(fd, (header, payload.payload))
            else:  # several buffers (1-D, byte-sized items, as memoryviews of an mmap are)
                if kind is ReadReply:
                    release = payload.release
                    payload = payload.buffers
                buffers = [header, *payload]
                pack_into(header, 0, sum(len(b) for b in buffers), 0, unique)
                os.writev(fd, buffers)
        except OSError as e:
            if e.errno == errno.ENOENT:  # interrupted or aborted meanwhile: nobody to answer
                self.protocol.undelivered(payload)
            elif e.errno not in _UNMOUNTED:
                log.error("FUSE reply to request %d failed: %s", unique, e)
        except Exception:
            log.exception("FUSE request %d: cannot send what the file system returned", unique)
            pack_into(header, 0, abi.OUT_HEADER.size, -errno.EIO, unique)
            with contextlib.suppress(OSError):
                os.write(fd, header)
        finally:
            if release is not None:
                try:
                    release()
                except Exception:
                    log.exception("FUSE request %d: releasing the read buffers failed", unique)

    # --- notifications ------------------------------------------------------------------------
    def notify_inval_inode(self, ino: int, offset: int = 0, length: int = -1) -> bool:
        """Drop the kernel's cached attributes and the data in [offset, offset+length) of ino
        (length -1: to the end; offset -1: attributes only). False if it was not cached."""
        body = abi.NOTIFY_INVAL_INODE_OUT.pack(ino, offset, length)
        return self._notify(abi.NOTIFY_INVAL_INODE, body)

    def notify_inval_entry(self, parent: int, name: bytes) -> bool:
        """Drop the kernel's cached lookup of `name` in `parent`. False if it was not cached."""
        body = abi.NOTIFY_INVAL_ENTRY_OUT.pack(parent, len(name), 0) + name + b"\0"
        return self._notify(abi.NOTIFY_INVAL_ENTRY, body)

    def _notify(self, code: int, body: bytes) -> bool:
        header = abi.OUT_HEADER.pack(abi.OUT_HEADER.size + len(body), code, 0)
        try:
            os.writev(self.fd, (header, body))
        except OSError as e:
            if e.errno == errno.ENOENT:
                return False
            raise
        return True
