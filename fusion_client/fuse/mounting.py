"""Mounting and unmounting: mount(2) through ctypes when privileged, else fusermount3.

fusermount3 (setuid root, from the fuse3 package) mounts for unprivileged users and hands the
/dev/fuse descriptor back over a unix socket named by _FUSE_COMMFD (SCM_RIGHTS), as libfuse does.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import stat
import subprocess
from dataclasses import dataclass

from fusion_client.fuse import abi, system
from fusion_client.fuse.ops import Operations
from fusion_client.fuse.protocol import Protocol
from fusion_client.fuse.session import FuseSession
from fusion_client.fuse.system import MountError

FUSERMOUNT = "fusermount3"


@dataclass(slots=True)
class MountOptions:
    fsname: str = "fusion"  # the "device" column of /proc/mounts
    subtype: str = "fusion"  # file system type shows as fuse.<subtype>
    allow_other: bool = True  # other users (the container's user) may access the mount
    default_permissions: bool = False  # let the kernel check modes instead of the file system
    read_only: bool = False
    nosuid: bool = True
    nodev: bool = True
    noexec: bool = False
    use_fusermount: bool = False  # skip mount(2) and go through fusermount3 even as root
    max_write: int = 1 << 20  # largest READ/WRITE request (1 MiB with MAX_PAGES)
    max_background: int = 64  # async requests (readahead, ...) the kernel keeps in flight
    readdirplus: str = "auto"  # "auto" | "always" | "off"
    read_ahead_kb: int = 1024  # kernel readahead per file (0: the kernel's 128 KiB default)


def mount(ops: Operations, mountpoint: str, options: MountOptions | None = None) -> FuseSession:
    """Mount `ops` at `mountpoint`; the returned session must then be served (serve/start)."""
    options = options or MountOptions()
    mountpoint = os.path.abspath(mountpoint)
    rootmode = _check_mountpoint(mountpoint)
    if not os.path.exists(abi.DEVICE):
        raise MountError(
            f"cannot mount {mountpoint}: {abi.DEVICE} does not exist "
            "(load the fuse module; in a container add --device /dev/fuse)"
        )
    protocol = Protocol(
        ops,
        max_write=options.max_write,
        max_background=options.max_background,
        readdirplus=options.readdirplus,
    )
    denied = f"{FUSERMOUNT} was asked for"
    if not options.use_fusermount:
        # Not privileged: fusermount3 (setuid root) is the way, as in libfuse.
        try:
            fd = _open_device(mountpoint)
        except PermissionError as e:
            denied = f"{abi.DEVICE}: {e.strerror} (in a container add --device /dev/fuse)"
        else:
            try:
                _mount_syscall(fd, mountpoint, rootmode, protocol.max_write, options)
            except PermissionError:
                denied = "not permitted to mount (needs CAP_SYS_ADMIN: docker --cap-add SYS_ADMIN)"
            else:
                return FuseSession(
                    fd, mountpoint, protocol, _umount2, read_ahead_kb=options.read_ahead_kb
                )
    fd = _mount_fusermount(mountpoint, protocol.max_write, options, denied)
    return FuseSession(
        fd, mountpoint, protocol, _fusermount_unmount, read_ahead_kb=options.read_ahead_kb
    )


def clear_dead_mount(mountpoint: str) -> bool:
    """Detach a dead FUSE mount left at `mountpoint` by a killed client ("Transport endpoint is
    not connected"), so a new one can take its place; True if there was one."""
    try:
        os.stat(mountpoint)
    except OSError as e:
        if e.errno != errno.ENOTCONN:
            return False
        try:
            system.umount2(mountpoint, system.MNT_DETACH)
        except OSError:
            return False  # _check_mountpoint explains what to do
        return True
    return False


def _check_mountpoint(mountpoint: str) -> int:
    try:
        st = os.stat(mountpoint)
    except FileNotFoundError:
        raise MountError(f"cannot mount {mountpoint}: the mountpoint does not exist") from None
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            raise MountError(
                f"cannot mount {mountpoint}: a dead FUSE mount is still there "
                f"(remove it with: umount -l {mountpoint})"
            ) from None
        raise MountError(f"cannot mount {mountpoint}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise MountError(f"cannot mount {mountpoint}: the mountpoint is not a directory")
    return stat.S_IFMT(st.st_mode)


def _open_device(mountpoint: str) -> int:
    """/dev/fuse opened for mount(2); PermissionError when only fusermount3 could use it."""
    try:
        return os.open(abi.DEVICE, os.O_RDWR | os.O_CLOEXEC)
    except PermissionError:
        raise
    except OSError as e:
        hint = "the fuse module is not loaded" if e.errno == errno.ENODEV else e.strerror
        raise MountError(f"cannot mount {mountpoint}: {abi.DEVICE}: {hint}") from None


def _flags(options: MountOptions) -> int:
    return (
        (system.MS_RDONLY if options.read_only else 0)
        | (system.MS_NOSUID if options.nosuid else 0)
        | (system.MS_NODEV if options.nodev else 0)
        | (system.MS_NOEXEC if options.noexec else 0)
    )


def _permission_options(options: MountOptions, max_read: int) -> list[str]:
    return [
        *(["allow_other"] if options.allow_other else []),
        *(["default_permissions"] if options.default_permissions else []),
        f"max_read={max_read}",
    ]


def _mount_syscall(
    fd: int, mountpoint: str, rootmode: int, max_read: int, options: MountOptions
) -> None:
    """mount(2) the connection of `fd`; on failure `fd` is closed (PermissionError: EPERM)."""
    data = ",".join(
        [
            f"fd={fd}",
            f"rootmode={rootmode:o}",
            f"user_id={os.geteuid()}",
            f"group_id={os.getegid()}",
            *_permission_options(options, max_read),
        ]
    )
    fstype = f"fuse.{options.subtype}" if options.subtype else "fuse"
    try:
        system.mount(options.fsname, mountpoint, fstype, _flags(options), data)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EPERM, errno.EACCES):
            raise PermissionError(e.errno, e.strerror) from None
        raise MountError(f"cannot mount {mountpoint}: mount(2) failed: {e.strerror}") from None


def _mount_fusermount(mountpoint: str, max_read: int, options: MountOptions, why: str) -> int:
    """Mount through fusermount3; `why` says why mount(2) was not used, for the error."""
    fusermount = shutil.which(FUSERMOUNT)
    if fusermount is None:
        raise MountError(f"cannot mount {mountpoint}: {why}, and {FUSERMOUNT} is not installed")
    opts = [
        f"fsname={options.fsname}",
        *([f"subtype={options.subtype}"] if options.subtype else []),
        "ro" if options.read_only else "rw",
        *(["noexec"] if options.noexec else []),
        *_permission_options(options, max_read),
    ]
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        try:
            done = subprocess.run(
                [fusermount, "-o", ",".join(opts), "--", mountpoint],
                env={**os.environ, "_FUSE_COMMFD": str(theirs.fileno())},
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=60,
            )
        except subprocess.TimeoutExpired:
            raise MountError(f"cannot mount {mountpoint}: {FUSERMOUNT} timed out") from None
        theirs.close()
        if done.returncode != 0:
            lines = done.stderr.decode(errors="replace").strip().splitlines()
            cause = lines[-1] if lines else f"exit status {done.returncode}"
            raise MountError(f"cannot mount {mountpoint}: {cause}")
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    if not fds:
        raise MountError(f"cannot mount {mountpoint}: {FUSERMOUNT} passed back no descriptor")
    for extra in fds[1:]:
        os.close(extra)
    os.set_inheritable(fds[0], False)
    return fds[0]


def _umount2(mountpoint: str, lazy: bool) -> None:
    try:
        system.umount2(mountpoint, system.MNT_DETACH if lazy else 0)
    except OSError as e:
        if e.errno == errno.EINVAL:  # not mounted (any more): someone unmounted it already
            return
        if e.errno == errno.EBUSY:
            raise MountError(
                f"cannot unmount {mountpoint}: busy (files open); use a lazy unmount"
            ) from None
        raise MountError(f"cannot unmount {mountpoint}: {e.strerror}") from None


def _fusermount_unmount(mountpoint: str, lazy: bool) -> None:
    argv = [shutil.which(FUSERMOUNT) or FUSERMOUNT, "-u", *(["-z"] if lazy else []), mountpoint]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        if "not mounted" in message or "not found in" in message:
            return
        raise MountError(f"cannot unmount {mountpoint}: {message.splitlines()[-1]}")
