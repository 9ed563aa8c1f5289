"""Layers the tests hand to the proxy (a pytest plugin: tests/conftest.py loads it). Nothing
here starts a process.

- `marker_layer`: the .tar.gz given to `--layer`; it adds /etc/wave-proxy-test.
- `bundle_layer`: like nf-wave's project bin/ bundle, as a Wave request describes it.
- `fusion_dir`: a stand-in for `wavectl layer build` output, one small layer per architecture
  (the real build is tests/support/fusion_layers.py).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.images import Layer, tar_layer, write_marker_layer

FUSION_VERSION = "9.9.9"


@dataclass(frozen=True)
class WaveLayer:
    """A .tar.gz with the descriptor fields a Wave request carries for it."""

    gzip: bytes
    tar_digest: str
    gzip_digest: str

    def entry(self, location: str | None = None) -> dict:
        return {
            "location": location or "data:" + base64.b64encode(self.gzip).decode(),
            "gzipDigest": self.gzip_digest,
            "gzipSize": len(self.gzip),
            "tarDigest": self.tar_digest,
        }


def wave_layer(files: dict[str, bytes]) -> WaveLayer:
    layer = tar_layer(files)
    return WaveLayer(layer.compressed, layer.diff_id, layer.digest)


@pytest.fixture(scope="session")
def marker_layer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Layer]:
    """The .tar.gz tests pass to `--layer`: it adds /etc/wave-proxy-test (see support.images)."""
    path = tmp_path_factory.mktemp("layers") / "marker.tar.gz"
    return path, write_marker_layer(path)


@pytest.fixture(scope="session")
def bundle_layer() -> WaveLayer:
    """Like nf-wave's project bin/ bundle: a small script under /usr/local/bin."""
    return wave_layer({"usr/local/bin/hello.sh": b"#!/bin/sh\necho hello from the bundle\n"})


@pytest.fixture(scope="session")
def fusion_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for `wavectl layer build` output: one small layer per architecture."""
    directory = tmp_path_factory.mktemp("fusion-layers")
    for arch in ("amd64", "arm64"):
        layer = tar_layer({"usr/bin/fusion": f'#!/bin/sh\n# fusion {arch}\nexec "$@"\n'.encode()})
        (directory / f"fusion-{FUSION_VERSION}-{arch}.tar.gz").write_bytes(layer.compressed)
    return directory
