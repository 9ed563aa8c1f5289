"""A real dockerd logs in to the proxy over TLS (--htpasswd, --tls-cert) and pulls through it;
without a login the pull is refused with a clear message."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import need_binary
from tests.support.dockerd import Dockerd, dockerd_running
from tests.support.images import Shapes
from tests.support.proxy import Proxy, proxy_running, upstream_args
from tests.support.registry import Registry
from tests.support.tls import self_signed_cert

pytestmark = pytest.mark.timeout(300)
USER, PASSWORD = "carol", "docker-pw-7"


@pytest.fixture(scope="module")
def tls_login_proxy(
    tmp_path_factory: pytest.TempPathFactory, upstream: Registry, shapes: Shapes
) -> Iterator[Proxy]:
    workdir = tmp_path_factory.mktemp("tls-login")
    key, cert = self_signed_cert(workdir)
    users = workdir / "htpasswd"
    subprocess.run(["htpasswd", "-B", "-b", "-c", str(users), USER, PASSWORD], check=True)
    args = [*upstream_args({"docker.io": upstream}), "--htpasswd", str(users)]
    args += ["--tls-cert", str(cert), "--tls-key", str(key)]
    with proxy_running(workdir / "proxy", args) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def daemon(tls_login_proxy: Proxy) -> Iterator[Dockerd]:
    """dockerd speaks TLS to the proxy (an insecure registry: TLS without checking the CA)."""
    with dockerd_running(insecure=[tls_login_proxy.host]) as running:
        yield running


def test_docker_login_over_tls_then_pull(daemon: Dockerd, tls_login_proxy: Proxy, tmp_path: Path):
    config = ["--config", str(tmp_path / "cli")]
    host = tls_login_proxy.host
    login = daemon.cli(*config, "login", host, "-u", USER, "-p", PASSWORD, check=False)
    assert login.returncode == 0, login.stderr
    pulled = daemon.cli(*config, "pull", f"{host}/library/busybox:1", check=False)
    assert pulled.returncode == 0, pulled.stderr
    assert "https://" in tls_login_proxy.url


def test_anonymous_pull_is_refused_with_a_clear_message(
    daemon: Dockerd, tls_login_proxy: Proxy, tmp_path: Path
):
    config = ["--config", str(tmp_path / "cli")]
    pulled = daemon.cli(*config, "pull", f"{tls_login_proxy.host}/library/busybox:1", check=False)
    assert pulled.returncode != 0
    assert "authentication required" in pulled.stderr or "unauthorized" in pulled.stderr.lower()


def test_docker_login_with_a_wrong_password_fails(
    daemon: Dockerd, tls_login_proxy: Proxy, tmp_path: Path
):
    config = ["--config", str(tmp_path / "cli")]
    host = tls_login_proxy.host
    login = daemon.cli(*config, "login", host, "-u", USER, "-p", "nope", check=False)
    assert login.returncode != 0
    assert "unauthorized" in login.stderr.lower() or "401" in login.stderr


def test_containerd_pulls_with_a_static_authorization_header_in_hosts_toml(
    daemon: Dockerd, tls_login_proxy: Proxy, tmp_path: Path
):
    login = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    host = f"https://{tls_login_proxy.host}"
    hosts = tmp_path / "certs.d" / "docker.io" / "hosts.toml"
    hosts.parent.mkdir(parents=True)
    hosts.write_text(
        f'server = "https://registry-1.docker.io"\n\n[host."{host}"]\n'
        f'  capabilities = ["pull", "resolve"]\n  skip_verify = true\n'
        f'  [host."{host}".header]\n    Authorization = ["Basic {login}"]\n'
    )
    ctr = [need_binary("ctr"), "-a", daemon.containerd_address, "-n", "harden-login"]
    reference = "docker.io/library/busybox:1"
    pulled = subprocess.run(
        [*ctr, "images", "pull", "--hosts-dir", str(tmp_path / "certs.d"), reference],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    subprocess.run([*ctr, "images", "rm", reference], capture_output=True, check=False)
    assert pulled.returncode == 0, pulled.stderr + tls_login_proxy.log()[-2000:]
