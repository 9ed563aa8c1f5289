"""The operator files in deploy/ work as shipped, with real clients (only the proxy address is
replaced by the test proxy's)."""

from __future__ import annotations

import email
import json
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support import REPO, free_port, need_binary
from tests.support.dockerd import Dockerd, dockerd_running
from tests.support.images import Layer, PushedImage, Shapes
from tests.support.proxy import Proxy, proxy_running, upstream_args
from tests.support.registry import Registry

DEPLOY = REPO / "deploy"
PLACEHOLDER = "wave-proxy.internal:9090"

pytestmark = pytest.mark.timeout(600)


def with_proxy(text: str, proxy: Proxy) -> str:
    assert PLACEHOLDER in text
    return text.replace(PLACEHOLDER, proxy.host)


@pytest.fixture(scope="module")
def ghcr_proxy(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: Registry,
    htpasswd_upstream: Registry,
    marker_layer: tuple[Path, Layer],
) -> Iterator[Proxy]:
    """A proxy whose docker.io is the open upstream and whose ghcr.io is the htpasswd one, so a
    ghcr.io image only resolves if the proxy routes on containerd's `?ns=`."""
    args = [
        *upstream_args({"docker.io": upstream, "ghcr.io": htpasswd_upstream}),
        "--layer", str(marker_layer[0]),
    ]  # fmt: skip
    with proxy_running(tmp_path_factory.mktemp("proxy-ghcr"), args) as proxy:
        yield proxy


def test_daemon_json_makes_docker_pull_docker_io_images_through_the_proxy(
    proxy: Proxy, shapes: Shapes, marker_layer: tuple[Path, Layer], tmp_path: Path
) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(with_proxy((DEPLOY / "docker" / "daemon.json").read_text(), proxy))
    with dockerd_running(config_file=config) as daemon:
        image = daemon.client.images.pull("busybox", tag="1")
    assert image.attrs["RootFS"]["Layers"][-1] == marker_layer[1].diff_id


@pytest.mark.parametrize(
    ("registry", "reference"),
    [("docker.io", "docker.io/library/busybox:1"), ("ghcr.io", "ghcr.io/private/tool:1")],
)
def test_containerd_hosts_toml_resolves_and_pulls_through_the_proxy(
    registry: str,
    reference: str,
    ghcr_proxy: Proxy,
    dockerd: Dockerd,
    shapes: Shapes,
    htpasswd_image: PushedImage,
    tmp_path: Path,
) -> None:
    hosts = tmp_path / "certs.d" / registry / "hosts.toml"
    hosts.parent.mkdir(parents=True)
    source = DEPLOY / "containerd" / "certs.d" / registry / "hosts.toml"
    hosts.write_text(with_proxy(source.read_text(), ghcr_proxy))
    ctr = [need_binary("ctr"), "-a", dockerd.containerd_address, "-n", f"deploy-{registry}"]
    pulled = subprocess.run(
        [*ctr, "images", "pull", "--hosts-dir", str(tmp_path / "certs.d"), reference],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pulled.returncode == 0, pulled.stderr + ghcr_proxy.log()[-3000:]
    listed = subprocess.run([*ctr, "images", "ls"], capture_output=True, text=True, check=True)
    subprocess.run([*ctr, "images", "rm", reference], capture_output=True, check=False)
    upstream_digests = {shapes.busybox.digest, htpasswd_image.digest}
    [line] = [line for line in listed.stdout.splitlines() if line.startswith(reference)]
    digest = next(word for word in line.split() if word.startswith("sha256:"))
    assert digest not in upstream_digests


def test_batch_user_data_writes_the_shipped_daemon_json(tmp_path: Path) -> None:
    message = email.message_from_bytes((DEPLOY / "aws-batch" / "user-data.mime").read_bytes())
    assert message.is_multipart()
    [part] = message.get_payload()
    assert part.get_content_type() == "text/cloud-boothook"
    script = part.get_payload().replace("/etc/docker", str(tmp_path / "etc" / "docker"))
    subprocess.run(["sh", "-c", script], check=True)
    written = json.loads((tmp_path / "etc" / "docker" / "daemon.json").read_text())
    assert written == json.loads((DEPLOY / "docker" / "daemon.json").read_text())


def kubernetes_config_toml() -> str:
    documents = yaml.safe_load_all((DEPLOY / "kubernetes" / "wave-proxy.yaml").read_text())
    [config_map] = [d for d in documents if d["kind"] == "ConfigMap"]
    return config_map["data"]["wave-proxy.toml"]


@pytest.mark.parametrize("source", ["compose", "kubernetes"])
def test_shipped_config_file_starts_wavectl_serve(
    source: str, upstream: Registry, shapes: Shapes, tmp_path: Path
) -> None:
    text = (
        (DEPLOY / "compose" / "wave-proxy.toml").read_text()
        if source == "compose"
        else kubernetes_config_toml()
    )
    assert tomllib.loads(text)["registry"]["docker.io"] == "https://registry-1.docker.io"
    config = tmp_path / "wave-proxy.toml"
    config.write_text(text)
    # Flags override the file: loopback upstream and a temp data dir instead of the real ones.
    args = ["--config", str(config), *upstream_args({"docker.io": upstream})]
    args += ["--metrics-listen", f"127.0.0.1:{free_port()}"]
    with proxy_running(tmp_path / "proxy", args) as proxy:
        inspect = subprocess.run(
            [need_binary("skopeo"), "inspect", "--raw", "--tls-verify=false",
             f"docker://{proxy.host}/{shapes.oci.reference}"],
            capture_output=True,
        )  # fmt: skip
    assert inspect.returncode == 0, inspect.stderr
    assert inspect.stdout == shapes.oci.manifest  # no layers configured: served unchanged


def test_compose_file_builds_from_the_shipped_dockerfile() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    build = compose["services"]["wave-proxy"]["build"]
    assert (DEPLOY / "compose" / build["context"] / build["dockerfile"]).resolve() == (
        DEPLOY / "Dockerfile"
    )
