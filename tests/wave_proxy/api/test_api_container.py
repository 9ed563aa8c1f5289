"""What POST /v1alpha2/container (and the v1 /container-token) answer, and what the
targetImage then serves: in process, against the real seeded docker-registry upstream."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from aiohttp.test_utils import TestClient

from tests.support.images import Pusher, Shapes
from tests.support.layers import FUSION_VERSION, WaveLayer, wave_layer
from tests.support.registry import Registry
from tests.wave_proxy.api.helpers import blob, pull_manifest, submit, tar_names
from tests.wave_proxy.api.nfwave import FUSION_ENV, nf_wave_request


async def test_nf_wave_fusion_request_gets_every_field_the_plugin_reads(
    api: TestClient, bundle_layer: WaveLayer
) -> None:
    status, body = await submit(api, nf_wave_request("busybox:1", [bundle_layer.entry()]))
    assert status == 200, body
    token = body["containerToken"]
    assert len(token) >= 24 and body["requestId"] == token
    assert (
        body["targetImage"] == f"{api.server.host}:{api.server.port}/wt/{token}/library/busybox:1"
    )
    assert body["containerImage"] == "busybox:1"
    assert (body["succeeded"], body["freeze"], body["mirror"]) == (True, False, False)
    assert body["expiration"].endswith("Z")


async def test_target_image_serves_bundle_then_our_fusion_layer_and_config_changes(
    api: TestClient, bundle_layer: WaveLayer, fusion_dir: Path
) -> None:
    _, body = await submit(api, nf_wave_request("busybox:1", [bundle_layer.entry()]))
    manifest, _ = await pull_manifest(api, body["targetImage"])
    fusion = (fusion_dir / f"fusion-{FUSION_VERSION}-amd64.tar.gz").read_bytes()
    added = [layer["digest"] for layer in manifest["layers"][-2:]]
    assert added == [bundle_layer.gzip_digest, "sha256:" + hashlib.sha256(fusion).hexdigest()]
    config = json.loads(await blob(api, body["targetImage"], manifest["config"]["digest"]))
    assert config["config"]["Entrypoint"] == ["/usr/bin/fusion"]
    assert config["config"]["Cmd"] == ["sh"]  # kept: the request does not set cmd
    assert set(FUSION_ENV) <= set(config["config"]["Env"])
    assert config["rootfs"]["diff_ids"][-2] == bundle_layer.tar_digest
    assert await blob(api, body["targetImage"], added[0]) == bundle_layer.gzip
    assert tar_names(await blob(api, body["targetImage"], added[1])) == [
        "usr",
        "usr/bin",
        "usr/bin/fusion",
    ]


async def test_env_merges_by_name_and_working_dir_replaces(api: TestClient, shapes: Shapes) -> None:
    config = {"env": ["PATH=/custom/bin", "NEW=1"], "workingDir": "/data", "cmd": ["true"]}
    _, body = await submit(
        api, {"containerImage": "shapes/entrypointcmd:1", "containerConfig": config}
    )
    manifest, _ = await pull_manifest(api, body["targetImage"])
    runtime = json.loads(await blob(api, body["targetImage"], manifest["config"]["digest"]))[
        "config"
    ]
    assert runtime["Env"] == ["PATH=/custom/bin", "NEW=1"]
    assert (runtime["WorkingDir"], runtime["Cmd"]) == ("/data", ["true"])
    assert runtime["Entrypoint"] == ["/bin/sh", "-c"]


async def test_v1_endpoint_answers_the_v1_fields(api: TestClient) -> None:
    status, body = await submit(api, {"containerImage": "busybox:1"}, path="/container-token")
    assert status == 200
    assert set(body) == {
        "requestId",
        "containerToken",
        "targetImage",
        "expiration",
        "containerImage",
    }


async def test_multi_arch_base_gets_the_fusion_layer_of_each_architecture(
    api: TestClient, shapes: Shapes, fusion_dir: Path
) -> None:
    request = nf_wave_request("shapes/multiarch:1", [], platform="linux/amd64,linux/arm64")
    status, body = await submit(api, request)
    assert status == 200, body
    index, _ = await pull_manifest(api, body["targetImage"])
    seen = {}
    for entry in index["manifests"]:
        child, _ = await pull_manifest(
            api, body["targetImage"].rsplit(":", 1)[0] + "@" + entry["digest"]
        )
        seen[entry["platform"]["architecture"]] = child["layers"][-1]["digest"]
    expected = {
        arch: "sha256:"
        + hashlib.sha256(
            (fusion_dir / f"fusion-{FUSION_VERSION}-{arch}.tar.gz").read_bytes()
        ).hexdigest()
        for arch in ("amd64", "arm64")
    }
    assert seen == expected


async def test_digest_pinned_request_is_augmented_and_names_the_augmented_digest(
    api: TestClient, shapes: Shapes, bundle_layer: WaveLayer
) -> None:
    pinned = f"shapes/oci@{shapes.oci.digest}"
    request = {"containerImage": pinned, "containerConfig": {"layers": [bundle_layer.entry()]}}
    status, body = await submit(api, request)
    assert status == 200, body
    digest = body["targetImage"].split("@")[1]
    assert digest != shapes.oci.digest
    manifest, served = await pull_manifest(api, body["targetImage"])
    assert served == digest
    assert manifest["layers"][-1]["digest"] == bundle_layer.gzip_digest
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == shapes.oci.digest


async def test_platform_the_image_lacks_is_refused(api: TestClient, shapes: Shapes) -> None:
    request = {
        "containerImage": "shapes/oci:1",
        "containerPlatform": "linux/arm64",
        "containerConfig": {"env": ["A=1"]},
    }
    status, body = await submit(api, request)
    assert status == 400
    assert body["message"].startswith("containerPlatform: docker.io/shapes/oci has no linux/arm64")


async def test_platform_the_image_lacks_is_refused_without_container_config(
    api: TestClient, shapes: Shapes
) -> None:
    request = {"containerImage": "shapes/oci:1", "containerPlatform": "linux/arm64"}
    status, body = await submit(api, request)
    assert status == 400
    assert body["message"].startswith("containerPlatform: docker.io/shapes/oci has no linux/arm64")


async def test_image_that_cannot_be_augmented_is_refused_not_served_unchanged(
    api: TestClient, upstream: Registry
) -> None:
    pusher = Pusher(upstream)
    config = b'{"artifact": true}'
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.example.config+json",
            "digest": pusher.blob("shapes/artifact", config),
            "size": len(config),
        },
        "layers": [],
    }
    body = json.dumps(manifest).encode()
    pusher.manifest("shapes/artifact", "1", body, manifest["mediaType"])
    request = {"containerImage": "shapes/artifact:1", "containerConfig": {"env": ["A=1"]}}
    status, answer = await submit(api, request)
    assert status == 400
    assert "not a runnable image" in answer["message"]


async def test_data_layer_of_nine_mib_is_accepted(api: TestClient) -> None:
    """Near the incumbent's ~10 MiB data: limit, far above the registry side's body limit."""
    layer = wave_layer({"opt/blob.bin": random.Random(7).randbytes(9 << 20)})
    assert len(layer.entry()["location"]) < 14_000_000
    request = {"containerImage": "busybox:1", "containerConfig": {"layers": [layer.entry()]}}
    status, body = await submit(api, request)
    assert status == 200, body
    manifest, _ = await pull_manifest(api, body["targetImage"])
    assert manifest["layers"][-1]["size"] == len(layer.gzip)


async def test_advertised_host_names_the_target_image(make_api) -> None:
    client = await make_api(advertise_host="wave.example.com:9090")
    _, body = await submit(client, {"containerImage": "busybox:1"})
    token = body["containerToken"]
    assert body["targetImage"] == f"wave.example.com:9090/wt/{token}/library/busybox:1"
