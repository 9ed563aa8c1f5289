"""Client admission by address (--allow-cidr, --trusted-proxy) and the refusal to start a proxy
that would serve private images to everyone."""

from __future__ import annotations

import base64
import ipaddress
import subprocess
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.support.registry import Registry
from wave_proxy.app.access import client_address
from wave_proxy.app.factory import create_app
from wave_proxy.cli import main
from wave_proxy.config import Settings
from wave_proxy.upstream.auth import Credentials

NET = ipaddress.ip_network


async def make_client(aiohttp_client, upstream: Registry, tmp_path: Path, **options) -> TestClient:
    settings = Settings(
        registries={"docker.io": upstream.url}, data_dir=tmp_path / "data", **options
    )
    return await aiohttp_client(create_app(settings))


async def test_clients_outside_allow_cidr_get_403_denied_before_anything_else(
    aiohttp_client, upstream: Registry, tmp_path: Path
) -> None:
    client = await make_client(
        aiohttp_client,
        upstream,
        tmp_path,
        allow_cidr=(NET("10.0.0.0/8"),),
        trusted_proxies=(NET("127.0.0.1/32"),),
    )
    outside = {"X-Forwarded-For": "192.0.2.7"}
    for path in ("/v2/", "/v2/library/busybox/manifests/1", "/container-token/abc", "/nowhere"):
        response = await client.get(path, headers=outside)
        assert response.status == 403
        error = (await response.json())["errors"][0]
        assert error["code"] == "DENIED" and "192.0.2.7" in error["message"]
    inside = await client.get("/v2/", headers={"X-Forwarded-For": "192.0.2.7, 10.1.2.3"})
    assert inside.status == 200
    assert (await client.get("/v2/")).status == 403  # the balancer itself is no client
    assert (await client.get("/healthz", headers=outside)).status == 200


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    aiohttp_client, upstream: Registry, tmp_path: Path
) -> None:
    client = await make_client(aiohttp_client, upstream, tmp_path, allow_cidr=(NET("10.0.0.0/8"),))
    assert (await client.get("/v2/", headers={"X-Forwarded-For": "10.1.2.3"})).status == 403


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("10.0.0.5", ["1.2.3.4"], "10.0.0.5"),  # untrusted peer: the header is ignored
        ("127.0.0.1", ["1.2.3.4"], "1.2.3.4"),
        ("127.0.0.1", ["6.6.6.6, 1.2.3.4, 127.0.0.2"], "1.2.3.4"),  # right-most untrusted
        ("127.0.0.1", ["6.6.6.6", "1.2.3.4"], "1.2.3.4"),
        ("127.0.0.1", ["garbage"], None),
        ("::ffff:127.0.0.1", ["1.2.3.4"], "1.2.3.4"),
    ],
)
def test_the_client_is_the_right_most_hop_not_a_trusted_proxy(peer, forwarded, client):
    found = client_address(peer, forwarded, (NET("127.0.0.0/8"),))
    assert found == (ipaddress.ip_address(client) if client else None)


def test_serve_refuses_to_start_with_upstream_credentials_and_no_access_control(
    capsys, tmp_path: Path
) -> None:
    args = ["serve", "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:0", "--no-fusion"]
    args += [
        "--registry",
        "private.test=http://127.0.0.1:1",
        "--registry-auth",
        "private.test=u:pw",
    ]
    status = main(args)
    err = capsys.readouterr().err
    assert status == 2
    assert "--allow-cidr" in err and "--allow-anonymous-private" in err
    assert "pw" not in err.replace("--allow", "") and len(err.strip().splitlines()) == 1


async def test_anonymous_private_serving_starts_when_asked_for_on_purpose(
    aiohttp_client, upstream: Registry, tmp_path: Path
) -> None:
    client = await make_client(
        aiohttp_client,
        upstream,
        tmp_path,
        registry_auth={"docker.io": Credentials("u", "pw")},
        allow_anonymous_private=True,
    )
    assert (await client.get("/v2/")).status == 200


async def test_with_htpasswd_too_addresses_inside_need_no_login_and_others_must_log_in(
    aiohttp_client, upstream: Registry, tmp_path: Path
) -> None:
    users = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-B", "-b", "-c", str(users), "u", "pw"], check=True)
    client = await make_client(
        aiohttp_client,
        upstream,
        tmp_path,
        htpasswd=users,
        allow_cidr=(NET("10.0.0.0/8"),),
        trusted_proxies=(NET("127.0.0.1/32"),),
    )
    assert (await client.get("/v2/", headers={"X-Forwarded-For": "10.1.2.3"})).status == 200
    outside = await client.get("/v2/", headers={"X-Forwarded-For": "192.0.2.7"})
    assert outside.status == 401
    assert outside.headers["WWW-Authenticate"].startswith("Bearer realm=")
    login = base64.b64encode(b"u:pw").decode()
    logged_in = {"X-Forwarded-For": "192.0.2.7", "Authorization": f"Basic {login}"}
    assert (await client.get("/v2/", headers=logged_in)).status == 200
