"""Client-side layer packing: a directory or tarball becomes a Wave `data:` layer entry.

Directories are packed with the Fusion layer builder's reproducible tar writer (sorted entries,
fixed mtime and owners, gzip without a timestamp), so the same files always give the same
digests, and with them the same augmented image.
"""

from __future__ import annotations

import base64
import gzip
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

from wave_proxy.image.layer import LayerError, describe_layer
from wave_proxy.layerbuild.tarball import LayerTree, write_layer


class BundleError(ValueError):
    """A --layer path that cannot be turned into a layer."""


def pack_directory(root: Path) -> bytes:
    tree = LayerTree()
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files) + [d for d in dirs if (Path(directory) / d).is_symlink()]:
            path = Path(directory) / name
            info = path.lstat()
            relative = path.relative_to(root).as_posix()
            if not stat.S_ISREG(info.st_mode):
                raise BundleError(f"--layer {root}: {relative} is not a regular file (unsupported)")
            mode = 0o755 if info.st_mode & 0o111 else 0o644
            tree.add_file(relative, path.read_bytes(), mode)
    if not tree.nodes:
        raise BundleError(f"--layer {root}: the directory is empty")
    return write_layer(tree, 0).gzip_bytes


def load_layer(path: Path) -> bytes:
    """The .tar.gz bytes for a directory, a .tar.gz/.tgz file or a plain .tar file."""
    if path.is_dir():
        return pack_directory(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"--layer {path}: {exc.strerror}") from None
    if data[:2] != b"\x1f\x8b":
        if not tarfile.is_tarfile(path):
            raise BundleError(f"--layer {path}: not a directory, tar or .tar.gz file")
        data = gzip.compress(data, compresslevel=9, mtime=0)
    return data


def data_layer(gzip_bytes: bytes, source: Path) -> dict[str, Any]:
    try:
        descriptor = describe_layer([gzip_bytes])
    except LayerError as exc:
        raise BundleError(f"--layer {source}: not a tar or .tar.gz: {exc}") from None
    return {
        "location": "data:" + base64.b64encode(gzip_bytes).decode(),
        "gzipDigest": descriptor.digest,
        "gzipSize": descriptor.size,
        "tarDigest": descriptor.diff_id,
    }
