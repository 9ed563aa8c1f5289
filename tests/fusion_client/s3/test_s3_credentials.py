"""Credentials from the environment, the ECS container endpoint and EC2 IMDSv2 (imitated by a
loopback server; nothing here ever contacts 169.254.x), refreshed before they expire."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from fusion_client.s3 import CredentialChain, CredentialsError, S3Client
from fusion_client.s3.credentials import (
    ContainerSource,
    EnvironmentSource,
    InstanceMetadataSource,
    SharedFileSource,
    WebIdentitySource,
)
from tests.support.s3servers import S3Server

NOW = 1_800_000_000.0


class MetadataServer:
    """Imitates the ECS credentials endpoint and IMDSv2 on loopback."""

    def __init__(self) -> None:
        self.issued = 0
        self.expires_in = 3600.0
        self.failing = False
        self.access_key = "S3RVER"
        self.secret_key = "S3RVER"
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                owner.requests.append(("POST", self.path, {k: v[0] for k, v in form.items()}))
                if form.get("Action") != ["AssumeRoleWithWebIdentity"] or form.get(
                    "WebIdentityToken"
                ) != ["projected-jwt"]:
                    return self._send(403, b"<ErrorResponse/>")
                owner.issued += 1
                expiry = datetime.fromtimestamp(NOW + owner.expires_in, UTC)
                body = f"""<AssumeRoleWithWebIdentityResponse
  xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>
  <Credentials><AccessKeyId>{owner.access_key}</AccessKeyId>
  <SecretAccessKey>{owner.secret_key}</SecretAccessKey>
  <SessionToken>irsa-{owner.issued}</SessionToken>
  <Expiration>{expiry.strftime("%Y-%m-%dT%H:%M:%SZ")}</Expiration></Credentials>
  </AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"""
                self._send(200, body.encode())

            def do_PUT(self) -> None:
                owner.requests.append(("PUT", self.path, dict(self.headers)))
                if self.path == "/latest/api/token" and self.headers.get(
                    "X-aws-ec2-metadata-token-ttl-seconds"
                ):
                    self._send(200, b"IMDS-SESSION-TOKEN")
                else:
                    self._send(400, b"")

            def do_GET(self) -> None:
                owner.requests.append(("GET", self.path, dict(self.headers)))
                if owner.failing:
                    return self._send(500, b"unavailable")
                if self.path.startswith("/latest/"):
                    if self.headers.get("X-aws-ec2-metadata-token") != "IMDS-SESSION-TOKEN":
                        return self._send(401, b"")  # IMDSv2 only
                    if self.path == "/latest/meta-data/iam/security-credentials/":
                        return self._send(200, b"fusion-role")
                    if self.path == "/latest/meta-data/iam/security-credentials/fusion-role":
                        return self._send(200, owner.document())
                if self.path == "/v2/credentials/task-uuid":
                    return self._send(200, owner.document())
                if self.path == "/full":
                    if self.headers.get("Authorization") != "secret-auth-token":
                        return self._send(401, b"")
                    return self._send(200, owner.document())
                self._send(404, b"")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def document(self) -> bytes:
        self.issued += 1
        expiry = datetime.fromtimestamp(NOW + self.expires_in, UTC)
        return json.dumps(
            {
                "Code": "Success",
                "AccessKeyId": self.access_key,
                "SecretAccessKey": self.secret_key,
                "Token": f"session-{self.issued}",
                "Expiration": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        ).encode()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def metadata() -> Iterator[MetadataServer]:
    server = MetadataServer()
    yield server
    server.close()


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_environment_credentials_with_session_token():
    chain = CredentialChain.from_env(
        {
            "AWS_ACCESS_KEY_ID": "AK",
            "AWS_SECRET_ACCESS_KEY": "SK",
            "AWS_SESSION_TOKEN": "TOK",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    creds = chain.get()
    assert (creds.access_key, creds.secret_key, creds.token, creds.expires_at) == (
        "AK",
        "SK",
        "TOK",
        None,
    )
    assert "SK" not in repr(creds)


def test_ecs_relative_uri_is_fetched_from_the_container_endpoint(metadata):
    env = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/task-uuid"}
    creds = ContainerSource(env, relative_base=metadata.url).load()
    assert creds is not None and creds.token == "session-1"
    assert creds.expires_at == NOW + 3600


def test_ecs_full_uri_sends_the_authorization_token(metadata, tmp_path):
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{metadata.url}/full",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "secret-auth-token",
    }
    assert ContainerSource(env).load() is not None
    token_file = tmp_path / "token"
    token_file.write_text("secret-auth-token\n")
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{metadata.url}/full",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
    }
    assert ContainerSource(env).load() is not None
    with pytest.raises(CredentialsError, match="HTTP 401"):
        ContainerSource({"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{metadata.url}/full"}).load()


def test_imds_v2_gets_a_session_token_then_the_role_credentials(metadata):
    creds = InstanceMetadataSource(metadata.url).load()
    assert creds is not None and creds.token == "session-1"
    methods = [(m, p) for m, p, _ in metadata.requests]
    assert methods == [
        ("PUT", "/latest/api/token"),
        ("GET", "/latest/meta-data/iam/security-credentials/"),
        ("GET", "/latest/meta-data/iam/security-credentials/fusion-role"),
    ]


def test_imds_unreachable_means_not_on_ec2():
    from tests.support import free_port

    assert InstanceMetadataSource(f"http://127.0.0.1:{free_port()}").load() is None


def test_environment_wins_over_container_and_instance(metadata):
    env = {
        "AWS_ACCESS_KEY_ID": "AK",
        "AWS_SECRET_ACCESS_KEY": "SK",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{metadata.url}/full",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": metadata.url,
    }
    assert CredentialChain.from_env(env).get().access_key == "AK"
    assert metadata.requests == []


def test_credentials_are_refreshed_ahead_of_expiry(metadata):
    clock = Clock()
    chain = CredentialChain([InstanceMetadataSource(metadata.url)], clock=clock)
    assert chain.get().token == "session-1"
    clock.now = NOW + 1800  # 30 minutes left: still fresh
    assert chain.get().token == "session-1"
    clock.now = NOW + 3600 - 600  # 10 minutes left: refreshed in the advisory window
    assert chain.get().token == "session-2"


def test_failed_refresh_keeps_valid_credentials_until_they_expire(metadata):
    clock = Clock()
    chain = CredentialChain([InstanceMetadataSource(metadata.url)], clock=clock)
    assert chain.get().token == "session-1"
    metadata.failing = True
    clock.now = NOW + 3600 - 30  # inside the mandatory window, refresh fails, still valid
    assert chain.get().token == "session-1"
    clock.now = NOW + 3601
    with pytest.raises(CredentialsError, match="EC2 instance metadata"):
        chain.get()
    metadata.failing = False
    clock.now += 6  # past the few seconds a failure is remembered
    assert chain.get().token == "session-2"


def test_no_credentials_anywhere_names_every_source_tried(tmp_path):
    chain = CredentialChain.from_env({"AWS_EC2_METADATA_DISABLED": "true", "HOME": str(tmp_path)})
    with pytest.raises(CredentialsError) as exc:
        chain.get()
    for source in ("environment", "web identity", "shared credentials file", "container"):
        assert source in str(exc.value)
    assert "AWS_ACCESS_KEY_ID" in str(exc.value)  # says how to fix it


def test_invalidate_reloads_on_next_use(metadata):
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{metadata.url}/full"}
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "secret-auth-token"
    chain = CredentialChain([EnvironmentSource({}), ContainerSource(env)])
    assert chain.get().token == "session-1"
    chain.invalidate()
    assert chain.get().token == "session-2"


def test_s3_requests_signed_with_container_credentials(metadata, s3rver: S3Server):
    env = {
        "AWS_ENDPOINT_URL": s3rver.endpoint,
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{metadata.url}/full",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "secret-auth-token",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    bucket = s3rver.new_bucket("creds")
    client = S3Client.from_env(env)
    client.put_object(bucket, "k", b"v")
    assert client.head_object(bucket, "k").size == 1
    assert metadata.issued == 1  # fetched once, then cached


def test_web_identity_assumes_the_role_with_the_projected_token(metadata, tmp_path):
    token = tmp_path / "token"
    token.write_text("projected-jwt\n")
    env = {
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/fusion",
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
        "AWS_ROLE_SESSION_NAME": "task-1",
        "AWS_ENDPOINT_URL_STS": metadata.url,
    }
    creds = WebIdentitySource(env, region="eu-west-1").load()
    assert creds is not None
    assert (creds.token, creds.expires_at) == ("irsa-1", NOW + 3600)
    ((_, _, form),) = metadata.requests
    assert form["RoleArn"] == "arn:aws:iam::123456789012:role/fusion"
    assert form["RoleSessionName"] == "task-1"


def test_web_identity_defaults_to_the_regional_sts_endpoint():
    env = {"AWS_ROLE_ARN": "arn", "AWS_WEB_IDENTITY_TOKEN_FILE": "/t"}
    assert (
        WebIdentitySource(env, region="eu-west-1").endpoint == "https://sts.eu-west-1.amazonaws.com"
    )


def test_shared_credentials_file_profile(tmp_path):
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text(
        "[default]\naws_access_key_id = DEF\naws_secret_access_key = DEFSECRET\n"
        "[work]\naws_access_key_id = WORK\naws_secret_access_key = WORKSECRET\n"
        "aws_session_token = WORKTOKEN\n"
    )
    assert SharedFileSource({"HOME": str(tmp_path)}).load().access_key == "DEF"
    work = SharedFileSource({"HOME": str(tmp_path), "AWS_PROFILE": "work"}).load()
    assert (work.access_key, work.token) == ("WORK", "WORKTOKEN")
    assert SharedFileSource({"HOME": str(tmp_path), "AWS_PROFILE": "none"}).load() is None
    other = tmp_path / "elsewhere"
    other.write_text("[default]\naws_access_key_id = X\naws_secret_access_key = Y\n")
    assert SharedFileSource({"AWS_SHARED_CREDENTIALS_FILE": str(other)}).load().access_key == "X"


def test_many_threads_share_one_refresh(metadata):
    clock = Clock()
    chain = CredentialChain([InstanceMetadataSource(metadata.url)], clock=clock)
    chain.get()
    clock.now = NOW + 3600 - 30  # must refresh before use
    metadata.expires_in = 7200  # the fresh credentials last another hour
    barrier = threading.Barrier(16)

    def use() -> str | None:
        barrier.wait()
        return chain.get().token

    with ThreadPoolExecutor(16) as pool:
        tokens = set(pool.map(lambda _: use(), range(16)))
    assert tokens == {"session-2"}
    assert metadata.issued == 2  # one initial load, one refresh for all sixteen threads


def test_short_lived_credentials_are_not_refreshed_on_every_use(metadata):
    metadata.expires_in = 900  # STS's shortest session: always inside the advisory window
    clock = Clock()
    chain = CredentialChain([InstanceMetadataSource(metadata.url)], clock=clock)
    for _ in range(50):
        chain.get()
    assert metadata.issued == 2  # the first load, then one advisory refresh
    clock.now += 31
    chain.get()
    assert metadata.issued == 3


def test_a_failed_load_is_remembered_briefly_instead_of_probing_on_every_request(metadata):
    clock = Clock()
    metadata.failing = True
    chain = CredentialChain([InstanceMetadataSource(metadata.url)], clock=clock)
    for _ in range(5):
        with pytest.raises(CredentialsError):
            chain.get()
    assert len(metadata.requests) == 2  # one probe: token PUT, then the failing role GET
    metadata.failing = False
    clock.now += 6
    assert chain.get().token == "session-1"
