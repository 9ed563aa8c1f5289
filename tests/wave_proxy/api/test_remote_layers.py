"""http(s) layers: fetched once, verified, and never from private addresses unless allowed."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.images import raw_layer
from tests.support.layers import WaveLayer, wave_layer
from tests.wave_proxy.api.helpers import submit
from wave_proxy.remote_layers import RemoteLayerError, RemoteLayerFetcher, refused_address

ESCAPING = raw_layer((tarfile.TarInfo("../outside"), b""))


@pytest.fixture
async def layer_server(aiohttp_server, bundle_layer: WaveLayer):
    """Serves the bundle layer at /layer.tar.gz (counting GETs), a redirect, and junk."""
    hits: list[str] = []

    async def layer(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=bundle_layer.gzip)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def big(_request: web.Request) -> web.Response:
        return web.Response(body=b"\x1f\x8b" + b"0" * 100_000)

    async def escape(_request: web.Request) -> web.Response:
        return web.Response(body=ESCAPING.compressed)

    app = web.Application()
    app.router.add_get("/layer.tar.gz", layer)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/big.tar.gz", big)
    app.router.add_get("/escape.tar.gz", escape)
    server: TestServer = await aiohttp_server(app)
    server.hits = hits  # type: ignore[attr-defined]
    return server


def _url(server: TestServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b:1::a00:1",  # local-use NAT64
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "::127.0.0.1",  # IPv4-compatible
        "::a9fe:a9fe",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refused_address(address)


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "2606:4700::1111", "64:ff9b::808:808", "2002:808:808::1"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert not refused_address(address)


async def test_loopback_layer_url_is_refused_by_default(
    make_api, layer_server, bundle_layer
) -> None:
    api = await make_api()
    entry = bundle_layer.entry(_url(layer_server, "/layer.tar.gz"))
    status, body = await submit(
        api, {"containerImage": "busybox:1", "containerConfig": {"layers": [entry]}}
    )
    assert status == 400
    assert "containerConfig.layers[0].location" in body["message"]
    assert "--allow-private-layer-hosts" in body["message"]
    assert layer_server.hits == []


async def test_host_name_resolving_to_loopback_is_refused(layer_server, tmp_path: Path) -> None:
    fetcher = RemoteLayerFetcher()
    try:
        with pytest.raises(RemoteLayerError, match=r"resolves to .*refused"):
            async with fetcher.download(
                f"http://localhost:{layer_server.port}/layer.tar.gz", 10**6, tmp_path
            ):
                pass
    finally:
        await fetcher.close()
    assert layer_server.hits == []


async def test_redirect_to_a_refused_address_is_not_followed(layer_server, tmp_path: Path) -> None:
    # Only 127.0.0.1 counts as public here, so the first hop is allowed and the second is not.
    fetcher = RemoteLayerFetcher(refused=lambda address: address != "127.0.0.1")
    target = f"http://127.0.0.2:{layer_server.port}/layer.tar.gz"
    try:
        with pytest.raises(
            RemoteLayerError, match=r"127\.0\.0\.2 is loopback, link-local or private"
        ):
            async with fetcher.download(
                _url(layer_server, f"/redirect?to={target}"), 10**6, tmp_path
            ):
                pass
    finally:
        await fetcher.close()
    assert layer_server.hits == []


async def test_allowed_private_layer_is_fetched_once_verified_and_served(
    make_api, layer_server, bundle_layer: WaveLayer
) -> None:
    api = await make_api(allow_private_layer_hosts=True)
    entry = bundle_layer.entry(_url(layer_server, "/redirect?to=/layer.tar.gz"))
    request = {"containerImage": "busybox:1", "containerConfig": {"layers": [entry]}}
    for _ in range(2):
        status, body = await submit(api, request)
        assert status == 200, body
    assert layer_server.hits == ["/layer.tar.gz"]
    token = body["containerToken"]
    response = await api.get(f"/v2/wt/{token}/library/busybox/blobs/{bundle_layer.gzip_digest}")
    assert await response.read() == bundle_layer.gzip


async def test_remote_layer_with_other_content_is_refused_and_not_kept(
    make_api, layer_server, tmp_path: Path, bundle_layer: WaveLayer
) -> None:
    api = await make_api(allow_private_layer_hosts=True)
    claimed = wave_layer({"other": b"claims to be something else\n"})
    entry = claimed.entry(_url(layer_server, "/layer.tar.gz"))
    entry["gzipSize"] = 10**6  # so the size limit is not what trips
    status, body = await submit(
        api, {"containerImage": "busybox:1", "containerConfig": {"layers": [entry]}}
    )
    assert status == 400
    assert "gzipSize: the request says" in body["message"]
    stored = {p.name for p in (tmp_path / "data" / "blobs" / "sha256").glob("*")}
    assert claimed.gzip_digest.removeprefix("sha256:") not in stored
    assert bundle_layer.gzip_digest.removeprefix("sha256:") not in stored


async def test_remote_layer_larger_than_its_gzip_size_is_refused(make_api, layer_server) -> None:
    api = await make_api(allow_private_layer_hosts=True)
    entry = wave_layer({"x": b"x"}).entry(_url(layer_server, "/big.tar.gz"))
    status, body = await submit(
        api, {"containerImage": "busybox:1", "containerConfig": {"layers": [entry]}}
    )
    assert status == 400
    assert "more than its gzipSize" in body["message"]


async def test_remote_layer_with_an_entry_outside_the_root_is_refused_naming_it(
    make_api, layer_server
) -> None:
    api = await make_api(allow_private_layer_hosts=True)
    layer = WaveLayer(ESCAPING.compressed, ESCAPING.diff_id, ESCAPING.digest)
    entry = layer.entry(_url(layer_server, "/escape.tar.gz"))
    status, body = await submit(
        api, {"containerImage": "busybox:1", "containerConfig": {"layers": [entry]}}
    )
    assert status == 400
    assert body["message"] == (
        "containerConfig.layers[0]: tar entry '../outside' points outside the image root"
    )
