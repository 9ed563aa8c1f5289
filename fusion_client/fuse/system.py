"""The Linux calls around a FUSE mount that Python's os module lacks: mount(2), umount2(2),
the mount table, and the fusectl connection controls."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
from functools import cache

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
FUSECTL = "/sys/fs/fuse/connections"


class MountError(Exception):
    """Mounting, serving or unmounting failed; str() is a one-line cause saying what to do."""


@cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return libc


def mount(source: str, target: str, fstype: str, flags: int, data: str | None) -> None:
    """mount(2); raises OSError with the errno."""
    raw = data.encode() if data is not None else None
    if _libc().mount(source.encode(), target.encode(), fstype.encode(), flags, raw) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), target)


def set_parent_death_signal(signum: int) -> None:
    """prctl(PR_SET_PDEATHSIG): the kernel sends `signum` to this process when its parent dies."""
    if _libc().prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def umount2(target: str, flags: int) -> None:
    """umount2(2); raises OSError with the errno."""
    if _libc().umount2(target.encode(), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), target)


def mount_device(mountpoint: str) -> str | None:
    """The "major:minor" device of the file system mounted at `mountpoint` (the newest one),
    from /proc/self/mountinfo, so no request goes to the file system itself."""
    device = None
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split(" ", 5)
            if _unescape(fields[4]) == mountpoint:
                device = fields[2]
    return device


def _unescape(path: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    if "\\" not in path:
        return path
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def abort_connection(device: str) -> None:
    """Sever the FUSE connection of `device` ("0:N"): every waiting and future request fails
    with ENOTCONN and the server's reads end. Mounts fusectl first if needed (root only)."""
    control = f"{FUSECTL}/{device.split(':')[1]}/abort"
    if not os.path.ismount(FUSECTL):
        mount("fusectl", FUSECTL, "fusectl", 0, None)
    with open(control, "w") as knob:
        knob.write("1")
