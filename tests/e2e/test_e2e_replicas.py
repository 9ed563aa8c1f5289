"""Two `wavectl serve` replicas on one redis-server: a token made on one is pulled from the other.

skopeo verifies every digest and diff_id it copies, so a copy that succeeds proves the replica
served the augmented manifest, the rewritten config and the appended layers correctly.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support import Service, free_port, running
from tests.support.images import Shapes
from tests.support.layers import WaveLayer, wave_layer
from tests.support.proxy import Proxy, proxy_running, upstream_args
from tests.support.redis import Redis
from tests.support.registry import Registry
from tests.wave_proxy.api.helpers import skopeo
from tests.wave_proxy.api.nfwave import nf_wave_request

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: Registry,
    shapes: Shapes,
    redis_server: Redis,
    fusion_dir: Path,
) -> Iterator[tuple[Proxy, Proxy]]:
    args = [*upstream_args({"docker.io": upstream}), "--store", redis_server.url(2)]
    args += ["--fusion-layers", str(fusion_dir), "--allow-private-layer-hosts"]
    with (
        proxy_running(tmp_path_factory.mktemp("replica-a"), args) as first,
        proxy_running(tmp_path_factory.mktemp("replica-b"), args) as second,
    ):
        yield first, second


def on(replica: Proxy, target: str) -> str:
    """The targetImage with the host of `replica` (as a load balancer would route it)."""
    return replica.host + "/" + target.split("/", 1)[1]


def request_token(replica: Proxy, body: dict) -> dict:
    response = requests.post(f"{replica.url}/v1alpha2/container", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def copy(image: str, destination: Path) -> dict:
    skopeo("copy", "--src-tls-verify=false", f"docker://{image}", f"oci:{destination}")
    return json.loads((destination / "index.json").read_text())


def test_token_from_one_replica_pulls_by_tag_and_digest_from_the_other(
    replicas: tuple[Proxy, Proxy], bundle_layer: WaveLayer, tmp_path: Path
) -> None:
    first, second = replicas
    answer = request_token(first, nf_wave_request("busybox:1", [bundle_layer.entry()]))
    by_tag = on(second, answer["targetImage"])
    raw = json.loads(skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{by_tag}"))
    assert bundle_layer.gzip_digest in [layer["digest"] for layer in raw["layers"]]
    copy(by_tag, tmp_path / "by-tag")
    inspected = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{by_tag}"))
    assert inspected["RepoTags"] == ["1"]
    by_digest = by_tag.rsplit(":", 1)[0] + "@" + inspected["Digest"]
    copy(by_digest, tmp_path / "by-digest")


def test_digest_pinned_target_image_copies_from_the_other_replica(
    replicas: tuple[Proxy, Proxy], shapes: Shapes, bundle_layer: WaveLayer, tmp_path: Path
) -> None:
    first, second = replicas
    body = {
        "containerImage": f"shapes/schema2@{shapes.schema2.digest}",
        "containerConfig": {"layers": [bundle_layer.entry()], "env": ["PINNED=yes"]},
    }
    target = on(second, request_token(first, body)["targetImage"])
    assert "@sha256:" in target
    copy(target, tmp_path / "pinned")
    config = json.loads(skopeo("inspect", "--tls-verify=false", "--config", f"docker://{target}"))
    assert "PINNED=yes" in config["config"]["Env"]


@pytest.mark.parametrize("shape", ["oci_index", "manifest_list"])
def test_multi_arch_target_image_copies_every_platform(
    replicas: tuple[Proxy, Proxy],
    shapes: Shapes,
    bundle_layer: WaveLayer,
    shape: str,
    tmp_path: Path,
) -> None:
    first, second = replicas
    image = shapes.named(shape)
    body = nf_wave_request(image.reference, [bundle_layer.entry()], "linux/amd64,linux/arm64")
    target = on(second, request_token(first, body)["targetImage"])
    skopeo(
        "copy", "--all", "--src-tls-verify=false", f"docker://{target}", f"oci:{tmp_path / 'all'}"
    )
    for arch in ("amd64", "arm64"):
        config = json.loads(
            skopeo(
                "inspect",
                "--tls-verify=false",
                "--override-arch",
                arch,
                "--config",
                f"docker://{target}",
            )
        )
        assert config["architecture"] == arch
        assert config["config"]["Entrypoint"] == ["/usr/bin/fusion"]


@pytest.fixture(scope="module")
def layer_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Service]]:
    """A plain HTTP server (python -m http.server) for http:// layers; its log lists GETs."""
    root = tmp_path_factory.mktemp("layer-site")
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    argv += ["--directory", str(root)]
    with running(Service("layer-site", argv, root)) as service:
        service.wait_port(port)
        yield f"http://127.0.0.1:{port}", service


def test_http_layer_is_fetched_again_only_by_a_replica_that_lacks_it(
    replicas: tuple[Proxy, Proxy], layer_site: tuple[str, Service], tmp_path: Path
) -> None:
    first, second = replicas
    base, site = layer_site
    layer = wave_layer({"opt/remote.txt": b"fetched over http\n"})
    (site.log_path.parent / "remote.tar.gz").write_bytes(layer.gzip)
    body = {
        "containerImage": "busybox:1",
        "containerConfig": {"layers": [layer.entry(f"{base}/remote.tar.gz")]},
    }
    target = on(second, request_token(first, body)["targetImage"])
    copy(target, tmp_path / "once")
    copy(target, tmp_path / "twice")
    assert site.log().count("GET /remote.tar.gz") == 2  # one per replica, not per pull
