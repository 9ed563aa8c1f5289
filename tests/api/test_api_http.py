"""The Wave API over HTTP, in process, against the real seeded docker-registry upstream."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import json
import random
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.api.conftest import FUSION_VERSION, WaveLayer, submit, tar_names, wave_layer
from tests.api.nfwave import FUSION_ENV, nf_wave_request
from tests.support.images import Pusher, Shapes
from tests.support.registry import Registry
from wave_proxy.api import handlers
from wave_proxy.api.handlers import SERVICE
from wave_proxy.api.layers import LayerLimits
from wave_proxy.config import Settings

DOCKER_ACCEPT = (
    "application/vnd.docker.distribution.manifest.v2+json,"
    "application/vnd.docker.distribution.manifest.list.v2+json,"
    "application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json"
)


async def pull_manifest(client: TestClient, target: str) -> tuple[dict, str]:
    """GET the manifest a targetImage names, through /v2/wt/...; (manifest, digest)."""
    path, reference = _split_target(target)
    response = await client.get(
        f"/v2/{path}/manifests/{reference}", headers={"Accept": DOCKER_ACCEPT}
    )
    assert response.status == 200, await response.text()
    body = await response.read()
    assert response.headers["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(body).hexdigest()
    return json.loads(body), response.headers["Docker-Content-Digest"]


async def blob(client: TestClient, target: str, digest: str) -> bytes:
    path, _ = _split_target(target)
    response = await client.get(f"/v2/{path}/blobs/{digest}")
    assert response.status == 200, await response.text()
    body = await response.read()
    assert "sha256:" + hashlib.sha256(body).hexdigest() == digest
    return body


def _split_target(target: str) -> tuple[str, str]:
    _, _, path = target.partition("/")  # drop the host
    if "@" in path:
        return tuple(path.split("@"))  # type: ignore[return-value]
    name, _, tag = path.rpartition(":")
    return name, tag


# -- the request Nextflow sends -------------------------------------------------------------


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


# -- tokens ---------------------------------------------------------------------------------


async def test_describe_status_and_details_of_a_token(
    api: TestClient, bundle_layer: WaveLayer
) -> None:
    _, body = await submit(api, nf_wave_request("busybox:1", [bundle_layer.entry()]))
    token = body["containerToken"]
    described = await (await api.get(f"/container-token/{token}")).json()
    assert described["token"] == token
    assert described["source"]["image"] == "docker.io/library/busybox"
    assert described["wave"]["digest"] != described["source"]["digest"]
    status = await (await api.get(f"/v1alpha2/container/{token}/status")).json()
    assert (status["id"], status["status"], status["succeeded"]) == (token, "DONE", True)
    details = await (await api.get(f"/v1alpha2/container/{token}")).json()
    assert details["waveDigest"] == described["wave"]["digest"]


async def test_deleted_token_is_refused_with_a_message(api: TestClient) -> None:
    _, body = await submit(api, {"containerImage": "busybox:1"})
    token = body["containerToken"]
    assert (await api.delete(f"/container-token/{token}")).status == 200
    path, tag = _split_target(body["targetImage"])
    response = await api.get(f"/v2/{path}/manifests/{tag}")
    error = (await response.json())["errors"][0]
    assert (response.status, error["code"]) == (403, "DENIED")
    assert "was deleted" in error["message"]


async def test_expired_token_is_refused_saying_it_expired(api: TestClient) -> None:
    _, body = await submit(api, {"containerImage": "busybox:1"})
    service = api.app[SERVICE]
    service.tokens.clock = lambda: time.time() + 37 * 3600  # past the default 36 h
    path, tag = _split_target(body["targetImage"])
    response = await api.get(f"/v2/{path}/manifests/{tag}")
    error = (await response.json())["errors"][0]
    assert (response.status, error["code"]) == (403, "DENIED")
    assert "expired at" in error["message"]


async def test_token_ttl_is_configurable_and_reported(make_api) -> None:
    client = await make_api(token_ttl=600.0)
    before = time.time()
    _, body = await submit(client, {"containerImage": "busybox:1"})
    expiration = body["expiration"]
    moment = datetime.fromisoformat(expiration.replace("Z", "+00:00")).timestamp()
    assert before + 599 <= moment <= time.time() + 601


async def test_unknown_token_gets_name_unknown(api: TestClient) -> None:
    response = await api.get("/v2/wt/0123456789abcdef01234567/library/busybox/manifests/1")
    error = (await response.json())["errors"][0]
    assert (response.status, error["code"]) == (404, "NAME_UNKNOWN")
    assert "unknown container token" in error["message"]


async def test_repository_not_matching_the_token_is_refused(api: TestClient) -> None:
    _, body = await submit(api, {"containerImage": "busybox:1"})
    token = body["containerToken"]
    response = await api.get(f"/v2/wt/{token}/shapes/oci/manifests/1")
    error = (await response.json())["errors"][0]
    assert (response.status, error["code"]) == (404, "NAME_UNKNOWN")
    assert "was issued for library/busybox, not shapes/oci" in error["message"]


# -- bad input leaves nothing behind ----------------------------------------------------------


def _stored_state(data_dir: Path) -> tuple[list[str], list[str]]:
    blobs = sorted(p.name for p in (data_dir / "blobs").rglob("*") if p.is_file())
    db = sqlite3.connect(data_dir / "metadata.sqlite3")
    keys = sorted(
        r[0]
        for r in db.execute("SELECT key FROM kv WHERE key LIKE 'token/%' OR key LIKE 'layer/%'")
    )
    db.close()
    return blobs, keys


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


async def test_unknown_image_is_reported(api: TestClient) -> None:
    status, body = await submit(api, {"containerImage": "shapes/missing:1"})
    assert status == 404
    assert "shapes/missing" in body["message"]


async def test_unconfigured_registry_is_a_400_saying_how_to_add_it(api: TestClient) -> None:
    status, body = await submit(api, {"containerImage": "quay.io/org/tool:1"})
    assert status == 400
    assert "--registry quay.io=" in body["message"]


async def test_malformed_json_body_is_a_400(api: TestClient) -> None:
    response = await api.post("/v1alpha2/container", data=b"{not json")
    assert response.status == 400
    assert "not valid JSON" in (await response.json())["message"]


# -- API keys -------------------------------------------------------------------------------


async def test_api_key_is_required_when_configured(make_api) -> None:
    client = await make_api(api_keys=("k3y",))
    status, body = await submit(client, {"containerImage": "busybox:1"})
    assert status == 401 and "API key" in body["message"]
    status, _ = await submit(
        client, {"containerImage": "busybox:1"}, headers={"Authorization": "Bearer k3y"}
    )
    assert status == 200
    status, body = await submit(client, {"containerImage": "busybox:1", "towerAccessToken": "k3y"})
    assert status == 200
    # the /v2 side is authorised by the token in its path alone
    manifest, _ = await pull_manifest(client, body["targetImage"])
    assert manifest["schemaVersion"] == 2


# -- our Fusion layer -----------------------------------------------------------------------


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


# -- inspect and service info ---------------------------------------------------------------


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


def test_settings_default_token_ttl_is_36_hours() -> None:
    assert dataclasses.replace(Settings()).token_ttl == 36 * 3600


async def test_advertised_host_names_the_target_image(make_api) -> None:
    client = await make_api(advertise_host="wave.example.com:9090")
    _, body = await submit(client, {"containerImage": "busybox:1"})
    token = body["containerToken"]
    assert body["targetImage"] == f"wave.example.com:9090/wt/{token}/library/busybox:1"


async def test_tags_list_under_a_token_shows_the_token_tag(api: TestClient) -> None:
    _, body = await submit(api, {"containerImage": "busybox:1"})
    response = await api.get(f"/v2/wt/{body['containerToken']}/library/busybox/tags/list")
    assert await response.json() == {"name": "library/busybox", "tags": ["1"]}


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


async def test_oversized_request_body_is_a_413(api: TestClient, monkeypatch) -> None:
    monkeypatch.setattr(handlers, "MAX_BODY", 1024)
    request = {"containerImage": "busybox:1", "padding": "x" * 4096}
    status, body = await submit(api, request)
    assert status == 413
    assert "request body is over" in body["message"]
