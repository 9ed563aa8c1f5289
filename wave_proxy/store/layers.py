"""Appended layers are read once at start: described (digests, diff_id) and copied into the
blob store, so they are served from our own disk even if the source file later changes."""

from __future__ import annotations

from pathlib import Path

from wave_proxy.image.layer import LayerDescriptor, LayerDigester, LayerError, Platform
from wave_proxy.store.blobs import BlobStore, read_chunks


class LayerFileError(ValueError):
    """A --layer file that is missing, unreadable or not a gzip tar."""


def ingest_layer(blobs: BlobStore, path: Path, platform: Platform | None) -> LayerDescriptor:
    digester = LayerDigester()
    try:
        with path.open("rb") as f:
            for chunk in read_chunks(f):
                digester.update(chunk)
        descriptor = digester.finish(platform)
        blobs.put_file(descriptor.digest, path)
    except OSError as exc:
        raise LayerFileError(f"cannot read layer {path}: {exc.strerror}") from None
    except LayerError as exc:
        raise LayerFileError(f"layer {path} is not a .tar.gz: {exc}") from None
    return descriptor
