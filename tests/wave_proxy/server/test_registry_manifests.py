"""The proxy app over HTTP (in-process) against the real docker-registry upstream: manifests.

Each test builds a fresh app on its own data directory; the upstream and its seeded images are
the session's (tests/e2e/conftest.py).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.support.images import OCI_INDEX, UNKNOWN_CONFIG_FIELD, Layer, Pusher, Shapes
from tests.support.registry import Registry
from wave_proxy.app.factory import create_app
from wave_proxy.config import LayerSpec, Settings
from wave_proxy.image import mediatypes as mt
from wave_proxy.image.layer import Platform
from wave_proxy.image.mutate import BASE_DIGEST, BASE_NAME
from wave_proxy.upstream.auth import Credentials
from wave_proxy.upstream.client import RetryPolicy

ALL_TYPES = ", ".join(mt.DEFAULT_ACCEPT)
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")  # a proxy holding credentials admits only these
SHAPES = ["schema2", "oci", "oci_index", "manifest_list", "no_entrypoint", "busybox"]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def make_proxy(aiohttp_client, upstream: Registry, marker_layer: tuple[Path, Layer], tmp_path):
    async def make(
        data_dir: Path | None = None, layers: bool = True, platform: str = ""
    ) -> TestClient:
        spec = LayerSpec(marker_layer[0], Platform.parse(platform) if platform else None)
        settings = Settings(
            registries={"docker.io": upstream.url, "mirror.test": upstream.url},
            layers=(spec,) if layers else (),
            data_dir=data_dir or tmp_path / "data",
        )
        app = create_app(settings, retry=RetryPolicy(attempts=2, first_delay=0.01))
        return await aiohttp_client(app)

    return make


async def get_manifest(client: TestClient, path: str, accept: str = ALL_TYPES):
    response = await client.get(f"/v2/{path}", headers={"Accept": accept})
    return response, await response.read()


async def test_version_check_answers_200_with_api_version_header(make_proxy):
    client = await make_proxy()
    response = await client.get("/v2/")
    assert response.status == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.parametrize("shape", SHAPES)
async def test_head_and_get_agree_on_digest_length_type_and_etag(make_proxy, shapes: Shapes, shape):
    client = await make_proxy()
    image = shapes.named(shape)
    path = f"{image.repository}/manifests/{image.tag}"
    got, body = await get_manifest(client, path)
    head = await client.head(f"/v2/{path}", headers={"Accept": ALL_TYPES})
    assert got.status == head.status == 200
    for header in ("Content-Type", "Content-Length", "Docker-Content-Digest", "ETag"):
        assert got.headers[header] == head.headers[header], header
    assert got.headers["Docker-Content-Digest"] == sha256(body)
    assert int(got.headers["Content-Length"]) == len(body)
    assert got.headers["Content-Type"] == image.media_type
    assert await head.read() == b""


async def test_augmented_image_appends_the_layer_and_keeps_the_config(
    make_proxy, shapes: Shapes, marker_layer
):
    client = await make_proxy()
    image = shapes.schema2
    response, body = await get_manifest(client, f"{image.repository}/manifests/1")
    assert response.headers["X-Wave-Proxy-Augmented"] == "true"
    manifest = json.loads(body)
    layer = marker_layer[1]
    assert manifest["layers"][-1] == {
        "mediaType": mt.DOCKER_LAYER_GZIP,
        "size": layer.size,
        "digest": layer.digest,
    }
    assert manifest["annotations"] == {
        BASE_DIGEST: image.digest,
        BASE_NAME: f"docker.io/{image.repository}",
    }
    config_response = await client.get(
        f"/v2/{image.repository}/blobs/{manifest['config']['digest']}"
    )
    config_body = await config_response.read()
    assert sha256(config_body) == manifest["config"]["digest"]
    config = json.loads(config_body)
    original = image.config_json()
    assert config["rootfs"]["diff_ids"] == [*original["rootfs"]["diff_ids"], layer.diff_id]
    assert config[UNKNOWN_CONFIG_FIELD] == original[UNKNOWN_CONFIG_FIELD]
    assert config["config"] == original["config"]


async def test_index_entries_point_at_augmented_children_and_attestations_are_dropped(
    make_proxy, shapes: Shapes, marker_layer
):
    client = await make_proxy()
    image = shapes.oci_index
    _, body = await get_manifest(client, f"{image.repository}/manifests/1")
    entries = json.loads(body)["manifests"]
    platforms = [e["platform"]["architecture"] for e in entries]
    assert platforms == ["amd64", "arm64"]
    for entry in entries:
        child, child_body = await get_manifest(
            client, f"{image.repository}/manifests/{entry['digest']}", entry["mediaType"]
        )
        assert child.status == 200 and sha256(child_body) == entry["digest"]
        assert len(child_body) == entry["size"]
        assert json.loads(child_body)["layers"][-1]["digest"] == marker_layer[1].digest


@pytest.mark.parametrize("shape", ["oci_index", "manifest_list"])
async def test_a_platform_layer_is_appended_to_that_platform_only(
    make_proxy, shapes: Shapes, marker_layer, shape
):
    client = await make_proxy(platform="linux/arm64")
    image = shapes.named(shape)
    _, body = await get_manifest(client, f"{image.repository}/manifests/1")
    served = {e["platform"]["architecture"]: e["digest"] for e in json.loads(body)["manifests"]}
    original = {
        e["platform"]["architecture"]: e["digest"] for e in image.manifest_json()["manifests"]
    }
    assert served["amd64"] == original["amd64"]
    assert served["arm64"] != original["arm64"]
    _, arm = await get_manifest(client, f"{image.repository}/manifests/{served['arm64']}")
    assert json.loads(arm)["layers"][-1]["digest"] == marker_layer[1].digest


async def test_augmented_digest_is_still_served_after_a_restart(make_proxy, shapes, tmp_path):
    first = await make_proxy(tmp_path / "state")
    image = shapes.oci
    response, body = await get_manifest(first, f"{image.repository}/manifests/1")
    digest = response.headers["Docker-Content-Digest"]
    manifest = json.loads(body)
    await first.close()
    second = await make_proxy(tmp_path / "state")
    again, again_body = await get_manifest(second, f"{image.repository}/manifests/{digest}")
    assert again.status == 200 and again_body == body
    config = await second.get(f"/v2/{image.repository}/blobs/{manifest['config']['digest']}")
    assert config.status == 200


async def test_same_upstream_and_layers_give_the_same_digest_on_fresh_stores(
    make_proxy, shapes, tmp_path
):
    digests = set()
    for name in ("a", "b"):
        client = await make_proxy(tmp_path / name)
        response, _ = await get_manifest(client, "shapes/multiarch/manifests/1")
        digests.add(response.headers["Docker-Content-Digest"])
    assert len(digests) == 1


async def test_upstream_digest_is_served_unchanged(make_proxy, shapes: Shapes):
    client = await make_proxy()
    image = shapes.schema2
    response, body = await get_manifest(client, f"{image.repository}/manifests/{image.digest}")
    assert response.status == 200
    assert body == image.manifest
    assert response.headers["X-Wave-Proxy-Augmented"] == "false"


async def test_without_layers_images_pass_through_byte_for_byte(make_proxy, shapes: Shapes):
    client = await make_proxy(layers=False)
    for image in (shapes.oci, shapes.manifest_list):
        response, body = await get_manifest(client, f"{image.repository}/manifests/1")
        assert body == image.manifest
        assert response.headers["Docker-Content-Digest"] == image.digest


async def test_accept_values_are_read_from_repeated_headers(make_proxy, shapes: Shapes):
    client = await make_proxy()
    response = await client.get(
        "/v2/shapes/multiarch/manifests/1",
        headers=[("Accept", mt.OCI_MANIFEST), ("Accept", OCI_INDEX)],
    )
    assert response.status == 200
    assert response.headers["Content-Type"] == OCI_INDEX


async def test_a_type_the_client_does_not_accept_is_manifest_unknown(make_proxy):
    client = await make_proxy()
    response, body = await get_manifest(client, "shapes/multiarch/manifests/1", mt.DOCKER_MANIFEST)
    assert response.status == 404
    assert json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"


async def test_if_none_match_with_the_digest_gives_304(make_proxy):
    client = await make_proxy()
    response, _ = await get_manifest(client, "shapes/oci/manifests/1")
    again = await client.get(
        "/v2/shapes/oci/manifests/1",
        headers={"Accept": ALL_TYPES, "If-None-Match": response.headers["ETag"]},
    )
    assert again.status == 304


async def test_containerd_ns_parameter_and_host_prefix_select_a_registry(make_proxy, shapes):
    client = await make_proxy()
    by_ns, _ = await get_manifest(client, "shapes/oci/manifests/1?ns=mirror.test")
    by_host, _ = await get_manifest(client, "mirror.test/shapes/oci/manifests/1")
    assert by_ns.status == by_host.status == 200
    assert by_ns.headers["Docker-Content-Digest"] == by_host.headers["Docker-Content-Digest"]


async def test_one_component_names_resolve_to_library(make_proxy, shapes):
    client = await make_proxy()
    short, _ = await get_manifest(client, "busybox/manifests/1")
    full, _ = await get_manifest(client, "library/busybox/manifests/1")
    assert short.status == 200
    assert short.headers["Docker-Content-Digest"] == full.headers["Docker-Content-Digest"]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("shapes/oci/manifests/nope", 404, "MANIFEST_UNKNOWN"),
        ("unknown.example/a/manifests/1", 404, "NAME_UNKNOWN"),
        ("Shapes/OCI/manifests/1", 400, "NAME_INVALID"),
        ("shapes/a..b/manifests/1", 400, "NAME_INVALID"),
        (("a" * 200 + "/") * 2 + "manifests/1", 400, "NAME_INVALID"),
        ("shapes/oci/manifests/sha256:totallywrong", 400, "DIGEST_INVALID"),
        ("shapes/oci/manifests/-bad-tag", 400, "NAME_INVALID"),
        ("shapes/oci/referrers/sha256:" + "a" * 64, 404, "UNSUPPORTED"),
    ],
)
async def test_bad_requests_get_oci_errors(make_proxy, path, status, code):
    client = await make_proxy()
    response, body = await get_manifest(client, path)
    assert response.status == status
    error = json.loads(body)["errors"][0]
    assert error["code"] == code and error["message"]


async def test_tag_list_comes_from_upstream(make_proxy, upstream: Registry, shapes):
    Pusher(upstream).manifest("shapes/oci", "2", shapes.oci.manifest, shapes.oci.media_type)
    client = await make_proxy()
    response = await client.get("/v2/mirror.test/shapes/oci/tags/list")
    assert response.status == 200
    assert sorted((await response.json())["tags"]) == ["1", "2"]


async def test_writes_are_refused_as_unsupported(make_proxy):
    client = await make_proxy()
    response = await client.put("/v2/shapes/oci/manifests/1", data=b"{}")
    assert response.status == 405
    assert (await response.json())["errors"][0]["code"] == "UNSUPPORTED"


async def test_private_token_registry_is_pulled_with_configured_credentials(
    aiohttp_client, token_upstream: Registry, token_image, tmp_path
):
    assert token_upstream.credentials
    creds = token_upstream.credentials
    settings = Settings(
        registries={"token.test": token_upstream.url},
        registry_auth={"token.test": Credentials(creds.username, creds.password)},
        allow_cidr=(LOOPBACK,),
        data_dir=tmp_path / "data",
    )
    client = await aiohttp_client(create_app(settings))
    response, body = await get_manifest(client, f"token.test/{token_image.repository}/manifests/1")
    assert response.status == 200 and body == token_image.manifest


async def test_docker_credential_helper_supplies_upstream_credentials(
    aiohttp_client, htpasswd_upstream: Registry, htpasswd_image, tmp_path, monkeypatch
):
    creds = htpasswd_upstream.credentials
    assert creds is not None
    helper = tmp_path / "bin" / "docker-credential-test"
    helper.parent.mkdir()
    answer = json.dumps({"Username": creds.username, "Secret": creds.password})
    helper.write_text(f"#!/bin/sh\ncat >/dev/null\necho '{answer}'\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}:{os.environ['PATH']}")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credHelpers": {htpasswd_upstream.host: "test"}}))
    settings = Settings(
        registries={"basic.test": htpasswd_upstream.url},
        docker_config=config,
        allow_cidr=(LOOPBACK,),
        data_dir=tmp_path / "data",
    )
    client = await aiohttp_client(create_app(settings))
    path = f"basic.test/{htpasswd_image.repository}/manifests/1"
    response, body = await get_manifest(client, path)
    assert response.status == 200 and body == htpasswd_image.manifest
