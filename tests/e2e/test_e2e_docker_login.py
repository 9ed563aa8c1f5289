"""A real dockerd, trusting the proxy's CA in certs.d, logs in to the proxy over TLS (--htpasswd,
--tls-cert) and pulls through it; without a login the pull is refused with a clear message."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import need_binary
from tests.support.dockerd import Dockerd, dockerd_running, trusted_ca
from tests.support.images import Shapes
from tests.support.proxy import Proxy, proxy_running, upstream_args
from tests.support.registry import Registry
from tests.support.tls import self_signed_cert

pytestmark = pytest.mark.timeout(300)
USER, PASSWORD = "carol", "docker-pw-7"
# The proxy serves on ::1 under this name, which only our dockerd resolves: dockerd checks the
# certificate of registries outside 127.0.0.0/8 only, and refuses `[::1]:PORT/...` references.
NAME = "wave-proxy-v6.test"


def registry(proxy: Proxy) -> str:
    """The proxy as our dockerd reaches it."""
    return f"{NAME}:{proxy.port}"


@pytest.fixture(scope="module")
def login_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("tls-login-cert"), [NAME])


@pytest.fixture(scope="module")
def tls_login_proxy(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: Registry,
    shapes: Shapes,
    login_cert: tuple[Path, Path],
) -> Iterator[Proxy]:
    workdir = tmp_path_factory.mktemp("tls-login")
    key, cert = login_cert
    users = workdir / "htpasswd"
    subprocess.run(["htpasswd", "-B", "-b", "-c", str(users), USER, PASSWORD], check=True)
    args = [*upstream_args({"docker.io": upstream}), "--htpasswd", str(users)]
    args += ["--tls-cert", str(cert), "--tls-key", str(key)]
    with proxy_running(workdir / "proxy", args, address="::1") as proxy:
        yield proxy


@pytest.fixture(scope="module")
def daemon(tls_login_proxy: Proxy, login_cert: tuple[Path, Path]) -> Iterator[Dockerd]:
    """dockerd trusts the proxy's certificate through certs.d, as an operator sets it up."""
    with (
        trusted_ca(registry(tls_login_proxy), login_cert[1]),
        dockerd_running(hosts={NAME: "::1"}) as running,
    ):
        yield running


def test_docker_login_over_tls_then_pull(daemon: Dockerd, tls_login_proxy: Proxy, tmp_path: Path):
    config = ["--config", str(tmp_path / "cli")]
    host = registry(tls_login_proxy)
    login = daemon.cli(*config, "login", host, "-u", USER, "-p", PASSWORD, check=False)
    assert login.returncode == 0, login.stderr
    pulled = daemon.cli(*config, "pull", f"{host}/library/busybox:1", check=False)
    assert pulled.returncode == 0, pulled.stderr
    assert "https://" in tls_login_proxy.url


def test_docker_refuses_a_proxy_whose_certificate_it_does_not_trust(
    daemon: Dockerd, tmp_path: Path
):
    key, cert = self_signed_cert(tmp_path, [NAME])  # the right names, but not the CA in certs.d
    args = ["--registry", "docker.io=http://127.0.0.1:9", "--tls-cert", str(cert)]
    with proxy_running(tmp_path / "other", [*args, "--tls-key", str(key)], address="::1") as other:
        config = ["--config", str(tmp_path / "cli")]
        host = registry(other)
        login = daemon.cli(*config, "login", host, "-u", USER, "-p", PASSWORD, check=False)
    assert login.returncode != 0
    assert "certificate signed by unknown authority" in login.stderr


def test_anonymous_pull_is_refused_with_a_clear_message(
    daemon: Dockerd, tls_login_proxy: Proxy, tmp_path: Path
):
    config = ["--config", str(tmp_path / "cli")]
    pulled = daemon.cli(
        *config, "pull", f"{registry(tls_login_proxy)}/library/busybox:1", check=False
    )
    assert pulled.returncode != 0
    assert "authentication required" in pulled.stderr or "unauthorized" in pulled.stderr.lower()


def test_docker_login_with_a_wrong_password_fails(
    daemon: Dockerd, tls_login_proxy: Proxy, tmp_path: Path
):
    config = ["--config", str(tmp_path / "cli")]
    host = registry(tls_login_proxy)
    login = daemon.cli(*config, "login", host, "-u", USER, "-p", "nope", check=False)
    assert login.returncode != 0
    assert "unauthorized" in login.stderr.lower() or "401" in login.stderr


def test_containerd_pulls_with_a_static_authorization_header_in_hosts_toml(
    daemon: Dockerd, tls_login_proxy: Proxy, login_cert: tuple[Path, Path], tmp_path: Path
):
    login = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    host = f"https://{registry(tls_login_proxy)}"
    hosts = tmp_path / "certs.d" / "docker.io" / "hosts.toml"
    hosts.parent.mkdir(parents=True)
    hosts.write_text(
        f'server = "https://registry-1.docker.io"\n\n[host."{host}"]\n'
        f'  capabilities = ["pull", "resolve"]\n  ca = "{login_cert[1]}"\n'
        f'  [host."{host}".header]\n    Authorization = ["Basic {login}"]\n'
    )
    ctr = [need_binary("ctr"), "-a", daemon.containerd_address, "-n", "harden-login"]
    reference = "docker.io/library/busybox:1"
    pull = [*ctr, "images", "pull", "--hosts-dir", str(tmp_path / "certs.d"), reference]
    pulled = subprocess.run(
        daemon.resolving(pull),
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    subprocess.run([*ctr, "images", "rm", reference], capture_output=True, check=False)
    assert pulled.returncode == 0, pulled.stderr + tls_login_proxy.log()[-2000:]
