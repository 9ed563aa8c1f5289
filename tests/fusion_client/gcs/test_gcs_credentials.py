"""Google credentials with the standard library: RS256 signatures identical to `cryptography`'s,
a service-account JWT exchanged at its token endpoint, and metadata-server tokens refreshed
before they expire."""

from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fusion_client.gcs import credentials
from fusion_client.gcs.credentials import service_account_assertion, token_source
from fusion_client.gcs.errors import GcsCredentialsError
from fusion_client.gcs.rsa import RsaKey
from fusion_client.store import tokens
from tests.support.stub_http import StubServer


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey, form: serialization.PrivateFormat) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, form, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize(
    "form",
    [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL],
    ids=["pkcs8", "pkcs1"],
)
def test_rs256_signatures_are_byte_identical_to_cryptography(key, form):
    message = b"header.claims"
    expected = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    assert RsaKey.from_pem(pem(key, form)).sign_sha256(message) == expected


def test_a_key_that_is_not_pem_is_a_clear_error():
    with pytest.raises(ValueError, match="not a PEM private key"):
        RsaKey.from_pem("garbage")


def service_account(key, tmp_path, token_uri: str) -> str:
    info = {
        "type": "service_account",
        "client_email": "fusion@project.iam.gserviceaccount.com",
        "private_key_id": "kid-1",
        "private_key": pem(key, serialization.PrivateFormat.PKCS8),
        "token_uri": token_uri,
    }
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(info))
    return str(path)


def test_the_service_account_jwt_verifies_with_the_public_key(key, tmp_path):
    info = json.loads(Path(service_account(key, tmp_path, "https://t/token")).read_text())
    jwt = service_account_assertion(info, now=1_700_000_000)
    header, claims, signature = (
        base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in jwt.split(".")
    )
    signed = jwt.rsplit(".", 1)[0].encode()
    key.public_key().verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    assert json.loads(header) == {"alg": "RS256", "typ": "JWT", "kid": "kid-1"}
    assert json.loads(claims)["aud"] == "https://t/token"
    assert json.loads(claims)["exp"] == 1_700_003_600


def test_a_service_account_key_is_exchanged_for_a_token_at_its_token_uri(key, tmp_path):
    with StubServer(lambda seen: (200, {"access_token": "ya29.sa", "expires_in": 3600})) as stub:
        path = service_account(key, tmp_path, f"http://{stub.host}/token")
        source = token_source({"GOOGLE_APPLICATION_CREDENTIALS": path})
        assert source is not None and source.token() == "ya29.sa"
        assert source.token() == "ya29.sa"  # cached: one exchange
    assert len(stub.requests) == 1
    form = urllib.parse.parse_qs(stub.requests[0].body.decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    jwt = form["assertion"][0]
    signature = base64.urlsafe_b64decode(jwt.rsplit(".", 1)[1] + "==")
    key.public_key().verify(
        signature, jwt.rsplit(".", 1)[0].encode(), padding.PKCS1v15(), hashes.SHA256()
    )


def test_the_metadata_server_token_is_refreshed_before_it_expires(monkeypatch):
    monkeypatch.setattr(tokens, "REFRESH_MARGIN", 10.0)
    issued = iter(["first", "second"])
    with StubServer(lambda seen: (200, {"access_token": next(issued), "expires_in": 5})) as stub:
        source = token_source({"GCE_METADATA_HOST": stub.host})
        assert source is not None
        assert source.token() == "first"
        assert source.token() == "second"  # 5 s left is inside the refresh margin
    assert stub.requests[0].headers["Metadata-Flavor"] == "Google"
    assert stub.requests[0].path == credentials.TOKEN_PATH


def test_a_refusing_metadata_server_is_a_credentials_error_naming_it():
    with StubServer(lambda seen: (403, {"error": "no"})) as stub:
        source = token_source({"GCE_METADATA_HOST": stub.host})
        assert source is not None
        with pytest.raises(GcsCredentialsError, match=r"metadata server .* refused: HTTP 403"):
            source.token()


def test_the_emulator_needs_no_credentials_and_wins_over_a_key_file():
    env = {"STORAGE_EMULATOR_HOST": "127.0.0.1:1", "GOOGLE_APPLICATION_CREDENTIALS": "/x"}
    assert token_source(env) is None
