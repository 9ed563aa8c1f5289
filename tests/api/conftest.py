"""Peers for the Wave API tests: the proxy tests' seeded upstream, a Redis server, small layers.

`upstream` and `shapes` are the proxy suite's own session fixtures (tests/proxy/conftest.py),
imported so both suites seed the same image shapes the same way.
"""

from __future__ import annotations

import base64
import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.proxy.conftest import shapes, upstream
from tests.support.images import Shapes, tar_layer
from tests.support.redis import Redis, redis_running
from tests.support.registry import Registry
from wave_proxy.config import Settings
from wave_proxy.server.app import create_app
from wave_proxy.upstream.client import RetryPolicy

__all__ = ["shapes", "upstream"]

FUSION_VERSION = "9.9.9"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    with redis_running(tmp_path_factory.mktemp("redis")) as server:
        yield server


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


@pytest.fixture
def make_api(aiohttp_client, upstream: Registry, shapes: Shapes, fusion_dir: Path, tmp_path):
    async def make(**overrides: Any) -> TestClient:
        options = {"fusion_layers": fusion_dir, **overrides}
        settings = Settings(
            registries={"docker.io": upstream.url}, data_dir=tmp_path / "data", **options
        )
        return await aiohttp_client(create_app(settings, retry=RetryPolicy(attempts=1)))

    return make


@pytest.fixture
async def api(make_api) -> TestClient:
    return await make_api()


async def submit(client: TestClient, body: dict, path: str = "/v1alpha2/container", **kw: Any):
    response = await client.post(path, json=body, **kw)
    return response.status, await response.json()


def tar_names(gzip_bytes: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(gzip_bytes), mode="r:gz") as tar:
        return tar.getnames()
