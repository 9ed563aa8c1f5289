"""--htpasswd: clients authenticate with bcrypt users through the registry token flow."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.support.images import Shapes
from tests.support.registry import Registry
from wave_proxy.app.clientauth import Grant, Htpasswd, TokenSigner
from wave_proxy.app.factory import create_app
from wave_proxy.config import ConfigError, Settings

USER, PASSWORD = "alice", "s3cret-pw"
MANIFEST = "/v2/library/busybox/manifests/1"
ACCEPT = "application/vnd.docker.distribution.manifest.v2+json"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def htpasswd_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("htpasswd") / "htpasswd"
    subprocess.run(["htpasswd", "-B", "-b", "-c", str(path), USER, PASSWORD], check=True)
    return path


@pytest.fixture
async def client(aiohttp_client, upstream: Registry, shapes: Shapes, htpasswd_file, tmp_path):
    settings = Settings(
        registries={"docker.io": upstream.url}, data_dir=tmp_path / "data", htpasswd=htpasswd_file
    )
    return await aiohttp_client(create_app(settings))


async def token_for(client: TestClient, scope: str, **headers: str) -> str:
    response = await client.get(
        "/v2/token", params={"service": "proxy", "scope": scope}, headers=headers
    )
    assert response.status == 200, await response.text()
    return (await response.json())["token"]


async def test_anonymous_requests_get_the_bearer_challenge_and_nothing_of_the_image(client):
    response = await client.get(MANIFEST, headers={"Accept": ACCEPT})
    assert response.status == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer realm="http://{client.host}:{client.port}/v2/token"')
    assert 'scope="repository:library/busybox:pull"' in challenge
    body = await response.json()
    assert body["errors"][0]["code"] == "UNAUTHORIZED"
    assert "schemaVersion" not in await response.text()
    assert (await client.get("/v2/")).status == 401


async def test_a_token_from_basic_credentials_pulls_its_repository(client):
    token = await token_for(client, "repository:library/busybox:pull", **basic(USER, PASSWORD))
    bearer = {"Authorization": f"Bearer {token}", "Accept": ACCEPT}
    assert (await client.get(MANIFEST, headers=bearer)).status == 200
    assert (await client.get("/v2/", headers=bearer)).status == 200


async def test_basic_credentials_on_every_request_are_admitted(client):
    response = await client.get(MANIFEST, headers={**basic(USER, PASSWORD), "Accept": ACCEPT})
    assert response.status == 200


@pytest.mark.parametrize(
    "authorization",
    [
        basic(USER, "wrong")["Authorization"],
        basic("mallory", PASSWORD)["Authorization"],
        "Basic not-base64!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "Bearer forged.token",
        "Digest whatever",
    ],
    ids=["wrong-password", "unknown-user", "bad-base64", "no-colon", "not-utf8", "forged", "other"],
)
async def test_wrong_or_malformed_credentials_are_a_401_and_the_proxy_keeps_serving(
    client, authorization: str
):
    response = await client.get(MANIFEST, headers={"Authorization": authorization})
    assert response.status == 401
    assert (await response.json())["errors"][0]["code"] == "UNAUTHORIZED"
    token = await client.get("/v2/token", headers={"Authorization": authorization})
    assert token.status == 401
    assert (await client.get(MANIFEST, headers={**basic(USER, PASSWORD), "Accept": ACCEPT})).ok


async def test_a_token_for_another_repository_is_refused(client):
    token = await token_for(client, "repository:library/other:pull", **basic(USER, PASSWORD))
    response = await client.get(MANIFEST, headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401


async def test_push_scopes_are_not_granted(client):
    token = await token_for(client, "repository:library/busybox:push", **basic(USER, PASSWORD))
    response = await client.get(MANIFEST, headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401


def test_expired_and_other_process_tokens_are_refused():
    now = [1000.0]
    signer = TokenSigner(clock=lambda: now[0])
    token = signer.issue(Grant("alice", ("library/busybox",)), "proxy")
    assert signer.check(token) == Grant("alice", ("library/busybox",))
    assert TokenSigner().check(token) is None  # signed with another key
    now[0] += 3600
    assert signer.check(token) is None


async def test_a_huge_authorization_header_is_a_clear_400(client):
    response = await client.get(MANIFEST, headers={"Authorization": "Basic " + "A" * (1 << 20)})
    assert response.status == 400
    assert (await client.get(MANIFEST, headers={**basic(USER, PASSWORD), "Accept": ACCEPT})).ok


async def test_wave_token_urls_stay_capability_urls(client):
    response = await client.get("/v2/wt/0123456789abcdef0123456789abcdef/library/busybox/tags/list")
    assert response.status == 404  # unknown token, but no credentials asked for


@pytest.mark.parametrize(
    "line", ["alice:$apr1$abc$def", "alice:{SHA}abc=", "alice:plain", "no-colon"]
)
def test_htpasswd_files_with_entries_other_than_bcrypt_are_refused(tmp_path: Path, line: str):
    path = tmp_path / "htpasswd"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match=r"line 1: .* only bcrypt"):
        Htpasswd.load(path)


def test_an_unknown_user_is_checked_at_the_files_bcrypt_cost(tmp_path: Path):
    path = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-B", "-C", "11", "-b", "-c", str(path), "ann", "pw"], check=True)
    users = Htpasswd.load(path)
    assert users.unknown_user_hash.startswith(b"$2b$11$")
    assert not users.verify("nobody", "pw")


async def test_a_repository_named_like_the_token_endpoint_still_needs_a_login(client):
    assert (await client.get("/v2/tokens/tool/manifests/1")).status == 401


async def test_a_token_does_not_cover_a_repository_that_merely_begins_with_its_name(client):
    token = await token_for(client, "repository:library/busybox:pull", **basic(USER, PASSWORD))
    path = "/v2/library/busybox/manifests/x/manifests/1"
    response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401
