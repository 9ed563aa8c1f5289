"""Peers for the Wave API tests: a Redis server and small layers; the seeded `upstream` and its
`shapes` are the suite-wide session fixtures of tests/conftest.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.api.helpers import FUSION_VERSION, WaveLayer, wave_layer
from tests.support.images import Shapes, tar_layer
from tests.support.redis import redis_server
from tests.support.registry import Registry
from wave_proxy.app.factory import create_app
from wave_proxy.config import Settings
from wave_proxy.upstream.client import RetryPolicy

__all__ = ["redis_server"]


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
