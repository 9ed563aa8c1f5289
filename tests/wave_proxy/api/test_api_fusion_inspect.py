"""Our Fusion layer's container config, inspect, and service info."""

from __future__ import annotations

import hashlib
from pathlib import Path

from aiohttp.test_utils import TestClient

from tests.support.images import Shapes
from tests.support.layers import FUSION_VERSION
from tests.wave_proxy.api.helpers import pull_manifest, submit
from tests.wave_proxy.api.nfwave import nf_wave_request


async def test_fusion_container_config_points_back_at_this_proxy(
    api: TestClient, fusion_dir: Path
) -> None:
    assert (await api.get("/fusion/latest-arm64.json")).status == 200
    response = await api.get(f"/fusion/v{FUSION_VERSION}-arm64.json")
    assert response.status == 200
    config = await response.json()
    layer = config["layers"][0]
    assert config["entrypoint"] == ["/usr/bin/fusion"]
    assert layer["location"].startswith(f"http://{api.server.host}:{api.server.port}/fusion/")
    path = layer["location"].split(str(api.server.port), 1)[1]
    body = await (await api.get(path)).read()
    assert body == (fusion_dir / f"fusion-{FUSION_VERSION}-arm64.tar.gz").read_bytes()
    assert "sha256:" + hashlib.sha256(body).hexdigest() == layer["gzipDigest"]
    assert len(body) == layer["gzipSize"]


async def test_our_fusion_config_can_be_sent_back_as_a_request(api: TestClient) -> None:
    """fusion.containerConfigUrl pointing at us: its location is ours, so nothing is fetched."""
    config = await (await api.get(f"/fusion/{FUSION_VERSION}-amd64.json")).json()
    status, body = await submit(api, {"containerImage": "busybox:1", "containerConfig": config})
    assert status == 200, body
    manifest, _ = await pull_manifest(api, body["targetImage"])
    assert manifest["layers"][-1]["digest"] == config["layers"][0]["gzipDigest"]


async def test_fusion_request_without_a_built_layer_says_how_to_build_one(
    make_api, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    client = await make_api(fusion_layers=tmp_path / "empty")
    status, body = await submit(client, nf_wave_request("busybox:1", []))
    assert status == 400
    assert "wavectl layer build" in body["message"]


async def test_inspect_shows_original_and_augmented_images(api: TestClient, shapes: Shapes) -> None:
    _, body = await submit(
        api, {"containerImage": "shapes/schema2:1", "containerConfig": {"cmd": ["x"]}}
    )
    original = await (
        await api.post("/v1alpha1/inspect", json={"containerImage": "shapes/schema2:1"})
    ).json()
    assert original["container"]["digest"] == shapes.schema2.digest
    assert original["container"]["config"]["config"]["Cmd"] == ["sh"]
    augmented = await (
        await api.post("/v1alpha1/inspect", json={"containerImage": body["targetImage"]})
    ).json()
    assert augmented["container"]["config"]["config"]["Cmd"] == ["x"]


async def test_inspect_of_an_index_lists_it_or_picks_a_platform(
    api: TestClient, shapes: Shapes
) -> None:
    whole = await (
        await api.post("/v1alpha1/inspect", json={"containerImage": "shapes/multiarch:1"})
    ).json()
    assert whole["index"]["digest"] == shapes.oci_index.digest
    arm = await (
        await api.post(
            "/v1alpha1/inspect?platform=aarch64", json={"containerImage": "shapes/multiarch:1"}
        )
    ).json()
    assert arm["container"]["config"]["architecture"] == "arm64"


async def test_service_info(api: TestClient) -> None:
    info = await (await api.get("/service-info")).json()
    assert info["serviceInfo"]["version"]
