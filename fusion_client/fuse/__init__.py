"""The FUSE kernel protocol over /dev/fuse, in pure Python (no libfuse).

A file system implements `Operations` (ops.py); the protocol layer here decodes kernel requests,
dispatches them and writes replies. It knows nothing about S3.
"""

from fusion_client.fuse.mounting import MountOptions, clear_dead_mount, mount
from fusion_client.fuse.ops import (
    ROOT_INO,
    Attr,
    ConnInfo,
    Context,
    DirEntry,
    Entry,
    FuseError,
    Open,
    Operations,
    ReadReply,
    SetAttr,
    StatFs,
)
from fusion_client.fuse.session import FuseSession, SessionError
from fusion_client.fuse.system import MountError

__all__ = [
    "ROOT_INO",
    "Attr",
    "ConnInfo",
    "Context",
    "DirEntry",
    "Entry",
    "FuseError",
    "FuseSession",
    "MountError",
    "MountOptions",
    "Open",
    "Operations",
    "ReadReply",
    "SessionError",
    "SetAttr",
    "StatFs",
    "clear_dead_mount",
    "mount",
]
