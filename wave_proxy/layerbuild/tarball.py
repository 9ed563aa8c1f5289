"""Reproducible gzip tar layers and their descriptor in Wave's container-config format.

The same files always give the same bytes: entries sorted, parents before children, one fixed
mtime, uid/gid 0 without names, fixed modes, plain ustar headers (no pax records), and a gzip
stream with no file name, mtime 0 and a fixed level.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

GZIP_LEVEL = 9


@dataclass(frozen=True, slots=True)
class Node:
    """One entry of a layer: a regular file (data) or a directory (data is None)."""

    mode: int
    data: bytes | None = None


@dataclass(slots=True)
class LayerTree:
    """The files of a layer by path relative to the image root ("usr/bin/fusion")."""

    nodes: dict[str, Node] = field(default_factory=dict)

    def add_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        path = _normalise(path)
        for parent in PurePosixPath(path).parents:
            if str(parent) != ".":
                self.nodes.setdefault(str(parent), Node(0o755))
        self.nodes[path] = Node(mode, data)

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        self.nodes[_normalise(path)] = Node(mode)

    def files(self) -> dict[str, bytes]:
        return {p: n.data for p, n in self.nodes.items() if n.data is not None}


@dataclass(frozen=True, slots=True)
class LayerBlob:
    gzip_bytes: bytes
    tar_digest: str  # "sha256:..." of the uncompressed tar: the image's diff_id

    @property
    def gzip_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.gzip_bytes).hexdigest()


def write_layer(tree: LayerTree, mtime: int) -> LayerBlob:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(tree.nodes):
            node = tree.nodes[path]
            info = tarfile.TarInfo(path)
            info.mtime = mtime
            info.mode = node.mode
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if node.data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(node.data)
                tar.addfile(info, io.BytesIO(node.data))
    tar_bytes = raw.getvalue()
    packed = io.BytesIO()
    with gzip.GzipFile(
        filename="", mode="wb", fileobj=packed, compresslevel=GZIP_LEVEL, mtime=0
    ) as gz:
        gz.write(tar_bytes)
    return LayerBlob(packed.getvalue(), "sha256:" + hashlib.sha256(tar_bytes).hexdigest())


def descriptor(blob: LayerBlob, location: str, entrypoint: list[str]) -> dict:
    """Wave's ContainerConfig JSON for a config that appends this one layer."""
    return {
        "entrypoint": entrypoint,
        "env": [],
        "layers": [
            {
                "location": location,
                "gzipDigest": blob.gzip_digest,
                "gzipSize": len(blob.gzip_bytes),
                "tarDigest": blob.tar_digest,
            }
        ],
    }


def save(blob: LayerBlob, doc: dict, tarball: Path, descriptor_path: Path) -> None:
    """Write both files via unique temporary names: readers, and a concurrent builder writing
    the same bytes, never see half a layer. The tarball lands first, as the descriptor names it.
    """
    for path, data in (
        (tarball, blob.gzip_bytes),
        (descriptor_path, (json.dumps(doc, indent=2) + "\n").encode()),
    ):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _normalise(path: str) -> str:
    clean = PurePosixPath(path.lstrip("/"))
    if ".." in clean.parts or not clean.parts:
        raise ValueError(f"bad layer path {path!r}")
    return str(clean)
