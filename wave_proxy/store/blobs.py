"""Content-addressed blob directory for appended layers.

A blob is written to a temporary file, fsynced, checked against its digest and only then renamed
into place, so a reader never sees a partial or corrupt blob, even after a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from wave_proxy.image.digest import parse_digest

CHUNK = 1 << 20


class BlobWriteError(ValueError):
    """Content whose digest is not the one it was stored under."""


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        algorithm, encoded = parse_digest(digest)
        return self.root / algorithm / encoded

    def size(self, digest: str) -> int | None:
        """Size of a stored blob, None when absent."""
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def put_stream(self, digest: str, chunks: Iterator[bytes]) -> Path:
        """Store content that must hash to `digest`; a blob already present is kept."""
        target = self.path(digest)
        if target.exists():
            return target
        algorithm, encoded = parse_digest(digest)
        hasher = hashlib.new(algorithm)
        fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as tmp:
                for chunk in chunks:
                    hasher.update(chunk)
                    tmp.write(chunk)
                tmp.flush()
                os.fsync(tmp.fileno())
            if hasher.hexdigest() != encoded:
                raise BlobWriteError(f"content does not match {digest}")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
        return target

    def put_file(self, digest: str, source: Path) -> Path:
        with source.open("rb") as f:
            return self.put_stream(digest, read_chunks(f))

    def digests(self) -> list[str]:
        """Every blob held, as `algorithm:hex`."""
        return [f"{p.parent.name}:{p.name}" for p in self.root.glob("sha*/*") if p.is_file()]

    def remove(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)


def read_chunks(f: BinaryIO, size: int = CHUNK) -> Iterator[bytes]:
    while chunk := f.read(size):
        yield chunk
