"""Descriptors of appended layers: gzip digest and size plus the uncompressed tar's diff_id.

The digester is fed chunks, so callers stream a layer file of any size through it without
holding it in memory; it never touches a file itself.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable
from dataclasses import dataclass


class LayerError(ValueError):
    """A layer file that is not a single complete gzip stream."""


@dataclass(frozen=True)
class Platform:
    """os/architecture[/variant], normalised so `x86_64` and `amd64` compare equal."""

    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {text!r}: expected OS/ARCH[/VARIANT]")
        return cls.of(*parts)

    @classmethod
    def of(cls, os: str, architecture: str, variant: str = "") -> Platform:
        architecture = _ARCH_ALIASES.get(architecture, architecture)
        if architecture == "arm64" and variant == "v8":
            variant = ""
        return cls(os, architecture, variant)

    def accepts(self, other: Platform) -> bool:
        """Whether an image for `other` should get a layer restricted to this platform."""
        return (
            self.os == other.os
            and self.architecture == other.architecture
            and (not self.variant or self.variant == other.variant)
        )

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}


@dataclass(frozen=True)
class LayerDescriptor:
    """What a manifest and a config need to reference one appended gzip layer."""

    digest: str
    size: int
    diff_id: str
    platform: Platform | None = None

    def applies_to(self, platform: Platform) -> bool:
        return self.platform is None or self.platform.accepts(platform)


class LayerDigester:
    """Incrementally hash a .tar.gz: sha256 of the gzip bytes and of the decompressed tar."""

    def __init__(self) -> None:
        self._compressed = hashlib.sha256()
        self._uncompressed = hashlib.sha256()
        self._inflate = zlib.decompressobj(wbits=31)  # gzip wrapper only
        self._size = 0

    def update(self, chunk: bytes) -> None:
        self._compressed.update(chunk)
        self._size += len(chunk)
        if self._inflate.eof:
            if chunk:
                raise LayerError("trailing data after the gzip stream")
            return
        try:
            self._uncompressed.update(self._inflate.decompress(chunk))
        except zlib.error as exc:
            raise LayerError(f"not a gzip layer: {exc}") from None
        if self._inflate.eof and self._inflate.unused_data:
            raise LayerError("trailing data after the gzip stream (concatenated gzip members?)")

    def finish(self, platform: Platform | None = None) -> LayerDescriptor:
        if not self._inflate.eof:
            raise LayerError("truncated gzip layer (stream does not end)")
        return LayerDescriptor(
            digest="sha256:" + self._compressed.hexdigest(),
            size=self._size,
            diff_id="sha256:" + self._uncompressed.hexdigest(),
            platform=platform,
        )


def describe_layer(chunks: Iterable[bytes], platform: Platform | None = None) -> LayerDescriptor:
    """Digest an iterable of byte chunks as one gzip layer."""
    digester = LayerDigester()
    for chunk in chunks:
        digester.update(chunk)
    return digester.finish(platform)
