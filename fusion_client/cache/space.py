"""Disk-space primitives for sparse cache files: reserve blocks before writing, punch them out.

Blocks are reserved with posix_fallocate before a chunk is fetched into the mapping, because a
store into an mmap'd hole on a full file system is a SIGBUS, not an error we could handle.
"""

from __future__ import annotations

import ctypes
import errno
import os

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02

_libc = ctypes.CDLL(None, use_errno=True)
_fallocate = _libc.fallocate
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_fallocate.restype = ctypes.c_int


def reserve(fd: int, offset: int, length: int) -> None:
    """Allocate the blocks of [offset, offset+length); raises OSError(ENOSPC) when full."""
    os.posix_fallocate(fd, offset, length)


def punch_hole(fd: int, offset: int, length: int) -> bool:
    """Give the blocks of a byte range back to the file system; False if it cannot punch holes."""
    if _fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EOPNOTSUPP, errno.ENOSYS):
        return False
    raise OSError(err, os.strerror(err))
