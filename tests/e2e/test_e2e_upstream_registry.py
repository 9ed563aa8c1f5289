"""The upstream harness itself: each auth mode admits exactly the clients it should."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from tests.support import need_binary
from tests.support.images import SHAPE_NAMES, PushedImage, Shapes
from tests.support.registry import TOKEN_SERVICE, Registry


def test_open_registry_answers_version_check(upstream: Registry) -> None:
    response = requests.get(f"{upstream.url}/v2/", timeout=5)
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_htpasswd_registry_challenges_basic_and_accepts_credentials(
    htpasswd_upstream: Registry,
) -> None:
    anonymous = requests.get(f"{htpasswd_upstream.url}/v2/", timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
    authorised = requests.get(
        f"{htpasswd_upstream.url}/v2/", headers=htpasswd_upstream.auth_headers("any"), timeout=5
    )
    assert authorised.status_code == 200


def test_token_registry_accepts_tokens_its_issuer_grants_for_basic_credentials(
    token_upstream: Registry,
) -> None:
    challenge = requests.get(f"{token_upstream.url}/v2/", timeout=5)
    assert challenge.status_code == 401
    assert challenge.headers["WWW-Authenticate"].startswith("Bearer realm=")
    assert token_upstream.issuer and token_upstream.credentials
    creds = token_upstream.credentials
    scope = "repository:private/absent:pull"
    grant = requests.get(
        token_upstream.issuer.realm,
        params={"service": TOKEN_SERVICE, "scope": scope},
        auth=(creds.username, creds.password),
        timeout=5,
    )
    assert grant.status_code == 200
    tags = requests.get(
        f"{token_upstream.url}/v2/private/absent/tags/list",
        headers={"Authorization": f"Bearer {grant.json()['token']}"},
        timeout=5,
    )
    assert tags.status_code == 404  # authorised; the repository just does not exist
    assert tags.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_token_issuer_refuses_wrong_password(token_upstream: Registry) -> None:
    assert token_upstream.issuer
    grant = requests.get(
        token_upstream.issuer.realm,
        params={"service": TOKEN_SERVICE, "scope": "repository:private/tool:pull"},
        auth=("wave", "wrong"),
        timeout=5,
    )
    assert grant.status_code == 401


def test_anonymous_token_grants_no_access(token_upstream: Registry) -> None:
    assert token_upstream.issuer
    token = requests.get(
        token_upstream.issuer.realm,
        params={"service": TOKEN_SERVICE, "scope": "repository:private/tool:pull"},
        timeout=5,
    ).json()["token"]
    denied = requests.get(
        f"{token_upstream.url}/v2/private/tool/tags/list",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert denied.status_code == 401


@pytest.mark.parametrize("shape", SHAPE_NAMES)
def test_seeded_shape_is_a_valid_image_for_skopeo(
    shape: str, shapes: Shapes, upstream: Registry, tmp_path: Path
) -> None:
    image = shapes.named(shape)
    copy = subprocess.run(
        [
            need_binary("skopeo"),
            "copy",
            "--all",
            "--src-tls-verify=false",
            f"docker://{upstream.host}/{image.reference}",
            f"oci:{tmp_path}/out",
        ],
        capture_output=True,
        text=True,
    )
    assert copy.returncode == 0, copy.stderr


def test_private_images_are_pullable_with_credentials_only(
    htpasswd_upstream: Registry,
    htpasswd_image: PushedImage,
    token_upstream: Registry,
    token_image: PushedImage,
) -> None:
    for registry, image in ((htpasswd_upstream, htpasswd_image), (token_upstream, token_image)):
        assert registry.credentials
        creds = f"{registry.credentials.username}:{registry.credentials.password}"
        url = f"docker://{registry.host}/{image.reference}"
        inspect = [need_binary("skopeo"), "inspect", "--raw", "--tls-verify=false"]
        anonymous = subprocess.run([*inspect, url], capture_output=True, text=True)
        assert anonymous.returncode != 0
        assert "authentication required" in anonymous.stderr, anonymous.stderr
        authorised = subprocess.run([*inspect, "--creds", creds, url], capture_output=True)
        assert authorised.returncode == 0, authorised.stderr
        assert authorised.stdout == image.manifest
