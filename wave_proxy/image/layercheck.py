"""Check a client-supplied .tar.gz layer in one streaming pass, in bounded memory.

A layer from a client (a `data:` payload, an http(s) URL) may be hostile: a gzip bomb (a few MB
expanding to gigabytes), or a tar whose entries write outside the root (`../x`, `/etc/x`, a link
out of the root). The pass hashes the gzip bytes and the tar bytes (digest, size, diff_id) while
tarfile walks the entries as a stream; decompression is bounded in output per step and in total,
so memory stays at a few MiB whatever the input. It blocks (CPU): run it in a worker thread.
"""

from __future__ import annotations

import hashlib
import posixpath
import tarfile
import zlib
from typing import BinaryIO

from wave_proxy.image.layer import LayerDescriptor, LayerError

MAX_EXPANDED = 4 << 30  # bytes of tar a layer may expand to
MAX_HEADER = 1 << 20  # bytes of one pax or GNU long-name header
_STEP = 1 << 20


class LayerTooLarge(LayerError):
    """The layer expands to more than the limit (a gzip bomb, or simply too big)."""


class UnsafeEntry(LayerError):
    """A tar entry that would be written, or link, outside the image root."""


class _Inflating:
    """A read()-able view of the tar inside a gzip file object, hashing both sides."""

    def __init__(self, source: BinaryIO, max_expanded: int) -> None:
        self._source = source
        self._max = max_expanded
        self._inflate = zlib.decompressobj(wbits=31)  # gzip wrapper only
        self._pending = b""  # compressed input not yet consumed
        self._out = b""  # decompressed, not yet read
        self._offset = 0
        self.compressed = hashlib.sha256()
        self.expanded = hashlib.sha256()
        self.compressed_size = 0
        self.expanded_size = 0

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes of tar (tarfile asks for 10 KiB at a time: served from a buffer
        decompressed a MiB at a time)."""
        if self._offset >= len(self._out):
            self._out, self._offset = self._inflate_step(), 0
        size = len(self._out) if size is None or size < 0 else size
        chunk = self._out[self._offset : self._offset + size]
        self._offset += len(chunk)
        return chunk

    def _inflate_step(self) -> bytes:
        while not self._inflate.eof:
            if not self._pending:
                self._pending = self._source.read(_STEP)
                if not self._pending:
                    raise LayerError("not a .tar.gz layer: truncated (the gzip does not end)")
                self.compressed.update(self._pending)
                self.compressed_size += len(self._pending)
            try:
                out = self._inflate.decompress(self._pending, _STEP)
            except zlib.error as exc:
                raise LayerError(f"not a .tar.gz layer: {exc}") from None
            self._pending = self._inflate.unconsumed_tail
            if out:
                self.expanded_size += len(out)
                if self.expanded_size > self._max:
                    raise LayerTooLarge(f"the layer expands to more than {self._max} bytes")
                self.expanded.update(out)
                return out
        return b""

    def finish(self) -> LayerDescriptor:
        """Drain what tarfile did not read (the end-of-archive padding), then check the end."""
        while self._inflate_step():
            pass
        trailing = self._inflate.unused_data + self._source.read(1)
        if trailing:
            raise LayerError(
                "not a .tar.gz layer: trailing data after the gzip stream (concatenated members?)"
            )
        return LayerDescriptor(
            digest="sha256:" + self.compressed.hexdigest(),
            size=self.compressed_size,
            diff_id="sha256:" + self.expanded.hexdigest(),
        )


def check_layer(source: BinaryIO, max_expanded: int = MAX_EXPANDED) -> LayerDescriptor:
    """The layer's descriptor, once every entry is known to stay inside the root.

    Raises LayerError (LayerTooLarge, UnsafeEntry) saying what is wrong."""
    stream = _Inflating(source, max_expanded)
    try:
        with tarfile.open(fileobj=stream, mode="r|", tarinfo=_BoundedInfo) as tar:  # type: ignore[call-overload]
            while (member := tar.next()) is not None:
                check_entry(member)
                tar.members.clear()  # a stream is read once: keep no list of millions of entries
    except tarfile.TarError as exc:
        raise LayerError(f"the .tar.gz does not hold a valid tar archive: {exc}") from None
    return stream.finish()


class _BoundedInfo(tarfile.TarInfo):
    """tarfile reads a pax or GNU long-name header's whole body into memory: bound it."""

    def _proc_pax(self, archive: tarfile.TarFile) -> tarfile.TarInfo:  # type: ignore[override]
        self._check_header_size()
        return super()._proc_pax(archive)  # type: ignore[misc]

    def _proc_gnulong(self, archive: tarfile.TarFile) -> tarfile.TarInfo:  # type: ignore[override]
        self._check_header_size()
        return super()._proc_gnulong(archive)  # type: ignore[misc]

    def _check_header_size(self) -> None:
        if self.size > MAX_HEADER:
            raise LayerError(f"a tar extended header of {self.size} bytes (at most {MAX_HEADER})")


def check_entry(member: tarfile.TarInfo) -> None:
    """Refuse absolute names, `..` components, and links that point out of the root."""
    name = member.name
    if name.startswith("/") or ".." in name.split("/"):
        raise UnsafeEntry(f"tar entry {name[:200]!r} points outside the image root")
    target = member.linkname
    if member.islnk() and (target.startswith("/") or ".." in target.split("/")):
        raise UnsafeEntry(
            f"tar entry {name[:200]!r} is a hard link to {target[:200]!r}, outside the image root"
        )
    # Absolute symlink targets resolve inside the container's root; relative ones may climb.
    if member.issym() and not target.startswith("/") and _climbs(name, target):
        raise UnsafeEntry(
            f"tar entry {name[:200]!r} is a symlink to {target[:200]!r}, out of the image root"
        )


def _climbs(name: str, target: str) -> bool:
    normal = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    return normal == ".." or normal.startswith("../")
