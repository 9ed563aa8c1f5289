"""A full data dir: writes that only spare work later must not fail a pull.

The data dir is a small tmpfs of the test's own, filled to the last byte after the proxy started.
"""

from __future__ import annotations

import errno
import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.support.images import Shapes, write_marker_layer
from tests.support.registry import Registry
from wave_proxy.app.factory import create_app
from wave_proxy.config import LayerSpec, Settings
from wave_proxy.image import mediatypes as mt
from wave_proxy.upstream.client import RetryPolicy

ACCEPT = {"Accept": ", ".join(mt.DEFAULT_ACCEPT)}


@pytest.fixture
def small_data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data dir on a 16 MiB tmpfs mounted (and unmounted) by this fixture."""
    mount = tmp_path / "data"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> None:
    """Write until the file system says there is no space left."""
    with (directory / "filler").open("wb", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    f.write(bytes(size))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC


@pytest.fixture
async def full_proxy(
    aiohttp_client, upstream: Registry, shapes: Shapes, small_data_dir: Path, tmp_path: Path
) -> TestClient:
    marker = tmp_path / "marker.tar.gz"
    write_marker_layer(marker)
    settings = Settings(
        registries={"docker.io": upstream.url},
        layers=(LayerSpec(marker),),
        data_dir=small_data_dir,
    )
    client = await aiohttp_client(create_app(settings, retry=RetryPolicy(attempts=1)))
    fill(small_data_dir)
    return client


async def get_verified(client: TestClient, path: str) -> bytes:
    response = await client.get(path, headers=ACCEPT)
    assert response.status == 200, await response.text()
    body = await response.read()
    if "/blobs/" in path:
        assert path.endswith("sha256:" + hashlib.sha256(body).hexdigest())
    return body


async def test_an_image_is_pulled_by_tag_from_a_proxy_whose_data_dir_is_full(
    full_proxy: TestClient,
) -> None:
    manifest = json.loads(await get_verified(full_proxy, "/v2/library/busybox/manifests/1"))
    await get_verified(full_proxy, f"/v2/library/busybox/blobs/{manifest['config']['digest']}")
    for layer in manifest["layers"]:
        await get_verified(full_proxy, f"/v2/library/busybox/blobs/{layer['digest']}")
    again = await full_proxy.get("/v2/library/busybox/manifests/1", headers=ACCEPT)
    assert again.status == 200
