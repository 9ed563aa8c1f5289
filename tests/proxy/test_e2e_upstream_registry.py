"""The upstream harness itself: each auth mode admits exactly the clients it should."""

from __future__ import annotations

import requests

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
    scope = "repository:private/tool:pull"
    grant = requests.get(
        token_upstream.issuer.realm,
        params={"service": TOKEN_SERVICE, "scope": scope},
        auth=(creds.username, creds.password),
        timeout=5,
    )
    assert grant.status_code == 200
    tags = requests.get(
        f"{token_upstream.url}/v2/private/tool/tags/list",
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
