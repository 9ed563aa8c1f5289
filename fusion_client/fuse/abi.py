"""The FUSE kernel ABI (include/uapi/linux/fuse.h): opcodes, flags and precompiled struct layouts.

Little-endian layouts ("<"), as on x86-64 and arm64, checked against the kernel header sizes.
We speak protocol 7.36 and negotiate down to what the kernel offers (7.23 at the least, which has
every layout used here at its full size).
"""

from __future__ import annotations

import struct
from enum import IntEnum

KERNEL_VERSION = 7
KERNEL_MINOR_VERSION = 36
MIN_KERNEL_MINOR_VERSION = 23

DEVICE = "/dev/fuse"
PAGE_SIZE = 4096
MAX_MAX_PAGES = 256  # the kernel's default max_pages_limit: 1 MiB requests with 4 KiB pages
MIN_READ_BUFFER = 8192


class Opcode(IntEnum):
    LOOKUP = 1
    FORGET = 2
    GETATTR = 3
    SETATTR = 4
    READLINK = 5
    SYMLINK = 6
    MKNOD = 8
    MKDIR = 9
    UNLINK = 10
    RMDIR = 11
    RENAME = 12
    LINK = 13
    OPEN = 14
    READ = 15
    WRITE = 16
    STATFS = 17
    RELEASE = 18
    FSYNC = 20
    SETXATTR = 21
    GETXATTR = 22
    LISTXATTR = 23
    REMOVEXATTR = 24
    FLUSH = 25
    INIT = 26
    OPENDIR = 27
    READDIR = 28
    RELEASEDIR = 29
    FSYNCDIR = 30
    GETLK = 31
    SETLK = 32
    SETLKW = 33
    ACCESS = 34
    CREATE = 35
    INTERRUPT = 36
    BMAP = 37
    DESTROY = 38
    IOCTL = 39
    POLL = 40
    NOTIFY_REPLY = 41
    BATCH_FORGET = 42
    FALLOCATE = 43
    READDIRPLUS = 44
    RENAME2 = 45
    LSEEK = 46
    COPY_FILE_RANGE = 47
    SETUPMAPPING = 48
    REMOVEMAPPING = 49
    SYNCFS = 50
    TMPFILE = 51
    STATX = 52


# Requests the kernel sends without waiting for (or accepting) a reply.
NO_REPLY_OPCODES = frozenset({Opcode.FORGET, Opcode.BATCH_FORGET, Opcode.NOTIFY_REPLY})

# INIT capability flags (fuse_init_in/out.flags; bits >= 32 travel in flags2).
ASYNC_READ = 1 << 0
POSIX_LOCKS = 1 << 1
FILE_OPS = 1 << 2
ATOMIC_O_TRUNC = 1 << 3
EXPORT_SUPPORT = 1 << 4
BIG_WRITES = 1 << 5
DONT_MASK = 1 << 6
SPLICE_WRITE = 1 << 7
SPLICE_MOVE = 1 << 8
SPLICE_READ = 1 << 9
FLOCK_LOCKS = 1 << 10
HAS_IOCTL_DIR = 1 << 11
AUTO_INVAL_DATA = 1 << 12
DO_READDIRPLUS = 1 << 13
READDIRPLUS_AUTO = 1 << 14
ASYNC_DIO = 1 << 15
WRITEBACK_CACHE = 1 << 16
NO_OPEN_SUPPORT = 1 << 17
PARALLEL_DIROPS = 1 << 18
HANDLE_KILLPRIV = 1 << 19
POSIX_ACL = 1 << 20
ABORT_ERROR = 1 << 21
MAX_PAGES = 1 << 22
CACHE_SYMLINKS = 1 << 23
NO_OPENDIR_SUPPORT = 1 << 24
EXPLICIT_INVAL_DATA = 1 << 25
MAP_ALIGNMENT = 1 << 26
SUBMOUNTS = 1 << 27
HANDLE_KILLPRIV_V2 = 1 << 28
SETXATTR_EXT = 1 << 29
INIT_EXT = 1 << 30
INIT_RESERVED = 1 << 31

# fuse_open_out.open_flags
FOPEN_DIRECT_IO = 1 << 0
FOPEN_KEEP_CACHE = 1 << 1
FOPEN_NONSEEKABLE = 1 << 2
FOPEN_CACHE_DIR = 1 << 3
FOPEN_STREAM = 1 << 4
FOPEN_NOFLUSH = 1 << 5

# fuse_setattr_in.valid
FATTR_MODE = 1 << 0
FATTR_UID = 1 << 1
FATTR_GID = 1 << 2
FATTR_SIZE = 1 << 3
FATTR_ATIME = 1 << 4
FATTR_MTIME = 1 << 5
FATTR_FH = 1 << 6
FATTR_ATIME_NOW = 1 << 7
FATTR_MTIME_NOW = 1 << 8
FATTR_LOCKOWNER = 1 << 9
FATTR_CTIME = 1 << 10

GETATTR_FH = 1 << 0  # fuse_getattr_in.getattr_flags: fh is valid
FSYNC_FDATASYNC = 1 << 0  # fuse_fsync_in.fsync_flags

# Notification codes (fuse_out_header.error when unique == 0).
NOTIFY_INVAL_INODE = 2
NOTIFY_INVAL_ENTRY = 3

# The unique of an INTERRUPT request is the interrupted request's unique with this bit set.
INT_REQ_BIT = 1 << 0

# ioctl(clone_fd, FUSE_DEV_IOC_CLONE, &master_fd): _IOR(229, 0, uint32_t).
DEV_IOC_CLONE = (2 << 30) | (4 << 16) | (229 << 8) | 0

# --- struct layouts -------------------------------------------------------------------------------
IN_HEADER = struct.Struct("<IIQQIIIHH")  # len, opcode, unique, nodeid, uid, gid, pid, extlen, pad
OUT_HEADER = struct.Struct("<IiQ")  # len, error (-errno), unique

INIT_IN = struct.Struct("<IIII")  # major, minor, max_readahead, flags (16 bytes before 7.36)
INIT_IN_FLAGS2 = struct.Struct("<I")  # at offset 16 when the kernel set INIT_EXT
# major, minor, max_readahead, flags, max_background, congestion_threshold, max_write, time_gran,
# max_pages, map_alignment, flags2, max_stack_depth, request_timeout, unused[11]
INIT_OUT = struct.Struct("<IIIIHHIIHHIIH22x")

# ino, size, blocks, atime, mtime, ctime, atimensec, mtimensec, ctimensec, mode, nlink, uid, gid,
# rdev, blksize, flags
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")
# nodeid, generation, entry_valid, attr_valid, entry_valid_nsec, attr_valid_nsec + fuse_attr
ENTRY_OUT = struct.Struct("<QQQQII" + ATTR.format[1:])
ATTR_OUT = struct.Struct("<QII" + ATTR.format[1:])  # attr_valid, attr_valid_nsec, dummy + attr
OPEN_OUT = struct.Struct("<QIi")  # fh, open_flags, backing_id
ENTRY_OPEN_OUT = struct.Struct(ENTRY_OUT.format + OPEN_OUT.format[1:])  # CREATE's reply
WRITE_OUT = struct.Struct("<II")  # size, padding
STATFS_OUT = struct.Struct("<QQQQQIIII24x")  # blocks bfree bavail files ffree bsize namelen frsize
GETXATTR_OUT = struct.Struct("<II")  # size, padding
LSEEK_OUT = struct.Struct("<Q")

FORGET_IN = struct.Struct("<Q")  # nlookup
BATCH_FORGET_IN = struct.Struct("<II")  # count, dummy
FORGET_ONE = struct.Struct("<QQ")  # nodeid, nlookup
GETATTR_IN = struct.Struct("<IIQ")  # getattr_flags, dummy, fh
# valid, padding, fh, size, lock_owner, atime, mtime, ctime, atimensec, mtimensec, ctimensec, mode,
# unused4, uid, gid, unused5
SETATTR_IN = struct.Struct("<IIQQQQQQIIIIIIII")
OPEN_IN = struct.Struct("<II")  # flags, open_flags
CREATE_IN = struct.Struct("<IIII")  # flags, mode, umask, open_flags
MKNOD_IN = struct.Struct("<IIII")  # mode, rdev, umask, padding
MKDIR_IN = struct.Struct("<II")  # mode, umask
RENAME_IN = struct.Struct("<Q")  # newdir
RENAME2_IN = struct.Struct("<QII")  # newdir, flags, padding
LINK_IN = struct.Struct("<Q")  # oldnodeid
RELEASE_IN = struct.Struct("<QIIQ")  # fh, flags, release_flags, lock_owner
FLUSH_IN = struct.Struct("<QIIQ")  # fh, unused, padding, lock_owner
READ_IN = struct.Struct("<QQIIQII")  # fh, offset, size, read_flags, lock_owner, flags, padding
WRITE_IN = struct.Struct("<QQIIQII")  # fh, offset, size, write_flags, lock_owner, flags, padding
FSYNC_IN = struct.Struct("<QII")  # fh, fsync_flags, padding
ACCESS_IN = struct.Struct("<II")  # mask, padding
GETXATTR_IN = struct.Struct("<II")  # size, padding
SETXATTR_IN = struct.Struct("<II")  # size, flags (8 bytes: SETXATTR_EXT is not negotiated)
INTERRUPT_IN = struct.Struct("<Q")  # unique
FALLOCATE_IN = struct.Struct("<QQQII")  # fh, offset, length, mode, padding
LSEEK_IN = struct.Struct("<QQII")  # fh, offset, whence, padding
COPY_FILE_RANGE_IN = struct.Struct("<QQQQQQQ")  # fh_in off_in nodeid_out fh_out off_out len flags

DIRENT = struct.Struct("<QQII")  # ino, off, namelen, type; then the name, padded to 8 bytes
NOTIFY_INVAL_INODE_OUT = struct.Struct("<Qqq")  # ino, offset, length
NOTIFY_INVAL_ENTRY_OUT = struct.Struct("<QII")  # parent, namelen, flags; then name + NUL


def dirent_size(namelen: int) -> int:
    """Bytes one fuse_dirent takes: header + name, rounded up to 8 (FUSE_DIRENT_ALIGN)."""
    return (DIRENT.size + namelen + 7) & ~7


def direntplus_size(namelen: int) -> int:
    """Bytes one fuse_direntplus takes: entry_out + dirent + name, rounded up to 8."""
    return (ENTRY_OUT.size + DIRENT.size + namelen + 7) & ~7
