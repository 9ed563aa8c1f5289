"""Private upstream repositories pulled through the proxy, which holds the credentials: the
client itself sends none."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
import requests

from tests.support import need_binary
from tests.support.dockerd import Dockerd
from tests.support.images import Layer, PushedImage
from tests.support.proxy import HTPASSWD_NAME, TOKEN_NAME, Proxy, proxy_running, upstream_args
from tests.support.registry import Registry

pytestmark = pytest.mark.e2e


def skopeo_inspect(proxy: Proxy, reference: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [need_binary("skopeo"), "inspect", "--raw", "--tls-verify=false",
         f"docker://{proxy.host}/{reference}"],
        capture_output=True,
        timeout=120,
    )  # fmt: skip


def assert_augmented(
    result: subprocess.CompletedProcess[bytes], image: PushedImage, marker: Layer
) -> None:
    assert result.returncode == 0, result.stderr.decode()
    layers = json.loads(result.stdout)["layers"]
    assert [layer["digest"] for layer in layers] == [
        *(layer.digest for layer in image.layers),
        marker.digest,
    ]


def test_htpasswd_repository_is_pulled_with_registry_auth(
    proxy: Proxy, htpasswd_image: PushedImage, marker_layer: tuple[Path, Layer]
) -> None:
    result = skopeo_inspect(proxy, f"{HTPASSWD_NAME}/{htpasswd_image.reference}")
    assert_augmented(result, htpasswd_image, marker_layer[1])


def test_token_repository_is_pulled_with_registry_auth(
    proxy: Proxy,
    token_upstream: Registry,
    token_image: PushedImage,
    marker_layer: tuple[Path, Layer],
) -> None:
    result = skopeo_inspect(proxy, f"{TOKEN_NAME}/{token_image.reference}")
    assert_augmented(result, token_image, marker_layer[1])
    assert token_upstream.issuer and token_upstream.credentials
    asked = [scopes for _, scopes, user in token_upstream.issuer.requests_seen if user]
    assert [f"repository:{token_image.repository}:pull"] in asked


def test_token_repository_is_pulled_with_docker_config_credentials(
    tmp_path: Path,
    token_upstream: Registry,
    token_image: PushedImage,
    marker_layer: tuple[Path, Layer],
) -> None:
    assert token_upstream.credentials
    creds = token_upstream.credentials
    auth = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {TOKEN_NAME: {"auth": auth}}}))
    args = [
        *upstream_args({TOKEN_NAME: token_upstream}, with_credentials=False),
        "--docker-config", str(config),
        "--allow-cidr", "127.0.0.0/8",
        "--layer", str(marker_layer[0]),
    ]  # fmt: skip
    with proxy_running(tmp_path / "proxy", args) as proxy:
        result = skopeo_inspect(proxy, f"{TOKEN_NAME}/{token_image.reference}")
    assert_augmented(result, token_image, marker_layer[1])


@pytest.mark.parametrize("upstream_fixture", ["htpasswd_upstream", "token_upstream"])
def test_without_credentials_the_client_gets_an_auth_error_not_a_crash(
    upstream_fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    registry: Registry = request.getfixturevalue(upstream_fixture)
    args = upstream_args({"private.registry.test": registry}, with_credentials=False)
    with proxy_running(tmp_path / "proxy", args) as proxy:
        result = skopeo_inspect(proxy, "private.registry.test/private/tool:1")
        still_serving = requests.get(f"{proxy.url}/v2/", timeout=10).status_code
    assert result.returncode != 0
    stderr = result.stderr.decode().lower()
    assert "unauthorized" in stderr or "denied" in stderr or "authentication required" in stderr
    assert still_serving == 200


def test_docker_pulls_a_token_auth_repository_named_through_the_proxy(
    dockerd: Dockerd, proxy: Proxy, token_image: PushedImage, marker_layer: tuple[Path, Layer]
) -> None:
    """Docker mirrors only docker.io; other registries are reached as <proxy>/<registry>/..."""
    image = dockerd.client.images.pull(
        f"{proxy.host}/{TOKEN_NAME}/{token_image.repository}", tag=token_image.tag
    )
    assert image.attrs["RootFS"]["Layers"] == [
        *token_image.config_json()["rootfs"]["diff_ids"],
        marker_layer[1].diff_id,
    ]
