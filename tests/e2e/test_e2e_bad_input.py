"""Bad input a real client can hit: each gets a clear OCI error, and the proxy keeps serving."""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support import free_port, need_binary, wait_until
from tests.support.images import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Layer,
    Pusher,
    Shapes,
    sha256,
)
from tests.support.proxy import Proxy, proxy_running, upstream_args
from tests.support.registry import Registry

DOWN = "down.registry.test"
SLOW = "slow.registry.test"
# containerd's Accept line: every manifest type, comma-joined.
ACCEPT_ANY_MANIFEST = ", ".join(
    [DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX, "*/*"]
)


class SilentUpstream:
    """Accepts connections and never answers: an upstream that hangs. `close()` drops them."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.accepted.append(self.listener.accept()[0])

    def close(self) -> None:
        # shutdown() wakes the blocked accept() and stops listening; close() alone does neither.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture(scope="module")
def proxy_with_dead_upstream(
    tmp_path_factory: pytest.TempPathFactory, upstream: Registry, marker_layer: tuple[Path, Layer]
) -> Iterator[Proxy]:
    """docker.io works; DOWN points at a loopback port nobody listens on."""
    args = [
        *upstream_args({"docker.io": upstream}),
        "--registry", f"{DOWN}=http://127.0.0.1:{free_port()}",
        "--layer", str(marker_layer[0]),
    ]  # fmt: skip
    with proxy_running(tmp_path_factory.mktemp("proxy-dead-upstream"), args) as proxy:
        yield proxy


def raw_get(proxy: Proxy, path: str) -> tuple[int, bytes]:
    """GET with the path exactly as given (requests would normalise `..` away)."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=120)
    try:
        connection.request("GET", path, headers={"Accept": ACCEPT_ANY_MANIFEST})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def error_code(body: bytes) -> str:
    return json.loads(body)["errors"][0]["code"]


def test_unreachable_upstream_gets_a_clear_error_and_other_images_still_serve(
    proxy_with_dead_upstream: Proxy, shapes: Shapes
) -> None:
    status, body = raw_get(proxy_with_dead_upstream, f"/v2/{DOWN}/some/image/manifests/1")
    assert 500 <= status < 600
    assert error_code(body)
    assert DOWN in json.loads(body)["errors"][0]["message"]
    working, _ = raw_get(proxy_with_dead_upstream, "/v2/shapes/oci/manifests/1")
    assert working == 200


def test_a_hanging_upstream_does_not_stall_other_requests_and_ends_in_an_error(
    tmp_path: Path, upstream: Registry, shapes: Shapes
) -> None:
    silent = SilentUpstream()
    args = [
        *upstream_args({"docker.io": upstream}),
        "--registry", f"{SLOW}=http://127.0.0.1:{silent.port}",
    ]  # fmt: skip
    try:
        with (
            proxy_running(tmp_path / "proxy", args) as proxy,
            concurrent.futures.ThreadPoolExecutor(1) as pool,
        ):
            hanging = pool.submit(raw_get, proxy, f"/v2/{SLOW}/some/image/manifests/1")
            wait_until(lambda: silent.accepted, timeout=30, what="the proxy to call upstream")
            other, _ = raw_get(proxy, "/v2/shapes/oci/manifests/1")
            assert not hanging.done()
            silent.close()  # the upstream goes away; retries then find nothing listening
            status, body = hanging.result(timeout=120)
    finally:
        silent.close()
    assert other == 200
    assert 500 <= status < 600
    assert SLOW in json.loads(body)["errors"][0]["message"]


def test_skopeo_reports_the_unreachable_upstream_as_an_error(
    proxy_with_dead_upstream: Proxy,
) -> None:
    result = subprocess.run(
        [need_binary("skopeo"), "inspect", "--raw", "--tls-verify=false", "--retry-times", "0",
         f"docker://{proxy_with_dead_upstream.host}/{DOWN}/some/image:1"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    assert "503 Service Unavailable" in result.stderr, result.stderr


def test_unknown_registry_name_gets_name_unknown(proxy: Proxy) -> None:
    status, body = raw_get(proxy, "/v2/not-configured.example.com/org/tool/manifests/1.0")
    assert status == 404
    assert error_code(body) == "NAME_UNKNOWN"


@pytest.mark.parametrize(
    "path",
    [
        "/v2/library/UPPER/manifests/1",
        "/v2/library/../etc/manifests/1",
        "/v2/" + "a" * 300 + "/manifests/1",
    ],
    ids=["uppercase", "dot-dot", "overlong"],
)
def test_invalid_names_get_name_invalid(proxy: Proxy, path: str) -> None:
    status, body = raw_get(proxy, path)
    assert status in (400, 404)
    assert error_code(body) == "NAME_INVALID"


def test_invalid_digest_gets_digest_invalid(proxy: Proxy) -> None:
    status, body = raw_get(proxy, "/v2/shapes/oci/blobs/sha256:not-hex")
    assert status in (400, 404)
    assert error_code(body) == "DIGEST_INVALID"


def test_image_with_a_malformed_config_is_refused_and_nothing_is_served_for_it(
    proxy: Proxy, upstream: Registry, shapes: Shapes
) -> None:
    pusher = Pusher(upstream)
    config = b"this is not JSON"
    layer = shapes.oci.layers[0]
    pusher.blob("broken/config", config)
    pusher.blob("broken/config", layer.compressed)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer.digest, "size": layer.size}],
        }
    ).encode()
    pusher.manifest("broken/config", "1", manifest, OCI_MANIFEST)
    for _ in range(2):  # a retry must not find anything half-stored
        status, body = raw_get(proxy, "/v2/broken/config/manifests/1")
        assert 400 <= status < 600
        assert error_code(body)
    still = requests.get(
        f"{proxy.url}/v2/shapes/oci/manifests/1", headers={"Accept": OCI_MANIFEST}, timeout=30
    )
    assert still.status_code == 200
