"""Bad requests get a clear 4xx naming the field, and leave nothing stored."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import sqlite3
import tarfile
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.support.images import raw_layer
from tests.support.layers import WaveLayer, wave_layer
from tests.wave_proxy.api.helpers import submit
from wave_proxy.api import handlers
from wave_proxy.api.handlers import SERVICE
from wave_proxy.api.layers import LayerLimits


def _stored_state(data_dir: Path) -> tuple[list[str], list[str]]:
    blobs = sorted(p.name for p in (data_dir / "blobs").rglob("*") if p.is_file())
    db = sqlite3.connect(data_dir / "metadata.sqlite3")
    keys = sorted(
        r[0] for r in db.execute("SELECT key FROM kv WHERE key LIKE 'token/%' OR key LIKE 'layer%'")
    )
    db.close()
    return blobs, keys


def _layer_with(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> dict:
    """A layer entry whose digests are right, holding one entry as named."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    layer = raw_layer((info, b"x"))
    return WaveLayer(layer.compressed, layer.diff_id, layer.digest).entry()


def _gzip_of_not_a_tar() -> dict:
    """A layer entry whose digests are right, but whose gzip holds no tar archive."""
    body = gzip.compress(b"just some text, not a tar archive\n" * 20, mtime=0)
    return {
        "location": "data:" + base64.b64encode(body).decode(),
        "gzipDigest": "sha256:" + hashlib.sha256(body).hexdigest(),
        "gzipSize": len(body),
        "tarDigest": "sha256:" + hashlib.sha256(gzip.decompress(body)).hexdigest(),
    }


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.update(gzipDigest="sha256:" + "0" * 64), "gzipDigest: the request says"),
        (lambda e: e.update(tarDigest="sha256:" + "1" * 64), "tarDigest: the request says"),
        (lambda e: e.update(gzipSize=e["gzipSize"] + 1), "gzipSize: the request says"),
        (lambda e: e.update(location="data:not base64!"), "not valid base64"),
        (lambda e: e.update(location="data:aGVsbG8="), "not a .tar.gz layer"),
        (lambda e: e.update(**_gzip_of_not_a_tar()), "does not hold a valid tar archive"),
        (lambda e: e.update(location="data:" + "A" * 2000), "over the limit of 1000"),
        (lambda e: e.update(**_layer_with("../../etc/cron.d/x")), "'../../etc/cron.d/x' points"),
        (lambda e: e.update(**_layer_with("/etc/passwd")), "tar entry '/etc/passwd' points"),
        (lambda e: e.update(**_layer_with("up", tarfile.SYMTYPE, "../..")), "symlink to '../..'"),
    ],
)
async def test_bad_data_layer_is_refused_and_nothing_is_stored(
    make_api, tmp_path: Path, bundle_layer: WaveLayer, mutate, message: str
) -> None:
    client = await make_api()
    client.app[SERVICE].resolver.limits = LayerLimits(data_location_chars=1000)
    good = wave_layer({"ok.txt": b"fine\n"}).entry()
    bad = bundle_layer.entry()
    mutate(bad)
    before = _stored_state(tmp_path / "data")
    request = {"containerImage": "busybox:1", "containerConfig": {"layers": [good, bad]}}
    status, body = await submit(client, request)
    assert status == 400
    assert body["message"].startswith("containerConfig.layers[1]")
    assert message in body["message"]
    assert _stored_state(tmp_path / "data") == before


async def test_unsupported_feature_gets_400_naming_the_field(api: TestClient) -> None:
    status, body = await submit(api, {"containerImage": "busybox:1", "containerFile": "RlJPTQ=="})
    assert status == 400
    assert body["message"].startswith("containerFile:")


async def test_unknown_image_is_reported_and_its_layers_are_not_kept(
    api: TestClient, tmp_path: Path, bundle_layer: WaveLayer
) -> None:
    before = _stored_state(tmp_path / "data")
    request = {
        "containerImage": "shapes/missing:1",
        "containerConfig": {"layers": [bundle_layer.entry()]},
    }
    status, body = await submit(api, request)
    assert status == 404
    assert "shapes/missing" in body["message"]
    assert _stored_state(tmp_path / "data") == before


async def test_unconfigured_registry_is_a_400_saying_how_to_add_it(api: TestClient) -> None:
    status, body = await submit(api, {"containerImage": "quay.io/org/tool:1"})
    assert status == 400
    assert "--registry quay.io=" in body["message"]


async def test_malformed_json_body_is_a_400(api: TestClient) -> None:
    response = await api.post("/v1alpha2/container", data=b"{not json")
    assert response.status == 400
    assert "not valid JSON" in (await response.json())["message"]


async def test_oversized_request_body_is_a_413(api: TestClient, monkeypatch) -> None:
    monkeypatch.setattr(handlers, "MAX_BODY", 1024)
    request = {"containerImage": "busybox:1", "padding": "x" * 4096}
    status, body = await submit(api, request)
    assert status == 413
    assert "request body is over" in body["message"]


async def test_deeply_nested_request_body_is_a_400(api: TestClient) -> None:
    nested = b'{"containerImage":"busybox:1","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await api.post("/v1alpha2/container", data=nested)
    assert response.status == 400
    assert "nested" in (await response.json())["message"]


@pytest.mark.parametrize("image", ["busybox\n:1", "busybox:1\n\n:2", "org/tool\n"])
async def test_image_name_with_a_newline_inside_is_a_400(api: TestClient, image: str) -> None:
    status, body = await submit(api, {"containerImage": image})
    assert status == 400
    assert body["message"].startswith("containerImage:")


async def test_data_layer_expanding_past_the_configured_limit_is_refused(make_api) -> None:
    client = await make_api(layer_expanded_limit=1 << 20)
    big = wave_layer({"zeros": bytes(2 << 20)})
    request = {"containerImage": "busybox:1", "containerConfig": {"layers": [big.entry()]}}
    status, body = await submit(client, request)
    assert status == 400
    assert body["message"] == (
        "containerConfig.layers[0]: the layer expands to more than 1048576 bytes"
    )


async def test_the_resolver_bounds_concurrent_ingests_as_configured(make_api) -> None:
    client = await make_api(layer_ingests=1)
    assert client.app[SERVICE].resolver.limits.ingests == 1


async def test_a_body_trickling_in_too_slowly_is_a_408(api: TestClient, monkeypatch) -> None:
    monkeypatch.setattr(handlers, "BODY_SECONDS", 0.5)

    async def trickle():
        yield b'{"containerImage": '
        await asyncio.sleep(2)
        yield b'"busybox:1"}'

    response = await api.post("/v1alpha2/container", data=trickle())
    assert response.status == 408
    assert "not received within" in (await response.json())["message"]
