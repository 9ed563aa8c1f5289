"""Our own Fusion layers, one per architecture, from `wavectl layer build` output.

The directory holds `fusion-<version>-<arch>.tar.gz` (and the builder's `.json` descriptor).
Each tarball is digested and copied into the blob store at start, so every replica that has the
same build serves byte-identical layers. The newest version is the one that replaces the
incumbent's Fusion package in requests; every version found is served under /fusion/.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wave_proxy.fusion_default import LAUNCHER
from wave_proxy.image.layer import LayerDescriptor, Platform
from wave_proxy.store.blobs import BlobStore
from wave_proxy.store.layers import LayerFileError, ingest_layer

_TARBALL = re.compile(r"^fusion-(?P<version>.+)-(?P<arch>amd64|arm64)\.tar\.gz$")


@dataclass(frozen=True)
class FusionLayer:
    version: str
    arch: str
    blob: Path  # the verified copy in the blob store, served as is
    descriptor: LayerDescriptor  # platform linux/<arch>

    def container_config(self, location: str) -> dict[str, Any]:
        """Wave's ContainerConfig JSON (what fusion.containerConfigUrl points at)."""
        return {
            "entrypoint": [LAUNCHER],
            "env": [],
            "layers": [
                {
                    "location": location,
                    "gzipDigest": self.descriptor.digest,
                    "gzipSize": self.descriptor.size,
                    "tarDigest": self.descriptor.diff_id,
                }
            ],
        }


class FusionLayers:
    def __init__(self, layers: list[FusionLayer]) -> None:
        self._layers = {(layer.version, layer.arch): layer for layer in layers}
        versions = sorted({layer.version for layer in layers}, key=_version_key)
        self.current = versions[-1] if versions else None

    @classmethod
    def load(
        cls,
        directory: Path,
        blobs: BlobStore,
        required: bool = True,
        ingested: Mapping[Path, LayerDescriptor] | None = None,
    ) -> FusionLayers:
        """Layers found in `directory`; a missing directory is an error only when `required`.
        Tarballs in `ingested` (appended by the proxy too) are not read again."""
        ingested = ingested or {}
        if not directory.is_dir():
            if required:
                raise LayerFileError(f"Fusion layer directory {directory} does not exist")
            return cls([])
        layers = []
        for path in sorted(directory.iterdir()):
            match = _TARBALL.match(path.name)
            if match:
                platform = Platform("linux", match["arch"])
                descriptor = ingested.get(path) or ingest_layer(blobs, path, platform)
                blob = blobs.path(descriptor.digest)
                layers.append(FusionLayer(match["version"], match["arch"], blob, descriptor))
        return cls(layers)

    def get(self, version: str, arch: str) -> FusionLayer | None:
        """`latest` names the current version; a leading `v` is optional (v0.1.0 = 0.1.0)."""
        if version == "latest" and self.current:
            version = self.current
        return self._layers.get((version.removeprefix("v"), arch)) or self._layers.get(
            (version, arch)
        )

    def for_arch(self, arch: str) -> FusionLayer | None:
        """The current version's layer for `arch`."""
        return self._layers.get((self.current, arch)) if self.current else None

    def all_current(self) -> list[FusionLayer]:
        return [layer for (version, _), layer in self._layers.items() if version == self.current]

    def by_digest(self, digest: str) -> FusionLayer | None:
        return next((x for x in self._layers.values() if x.descriptor.digest == digest), None)


def _version_key(version: str) -> tuple[Any, ...]:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+-]", version))
