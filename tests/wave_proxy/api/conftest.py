"""Peers for the Wave API tests: a Redis server and small layers; the seeded `upstream` and its
`shapes` are the suite-wide session fixtures of tests/conftest.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.support.images import Shapes
from tests.support.registry import Registry
from wave_proxy.app.factory import create_app
from wave_proxy.config import Settings
from wave_proxy.upstream.client import RetryPolicy


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
