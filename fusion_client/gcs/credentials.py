"""Google credentials in the order Google's own clients look for them (Application Default
Credentials), turned into a Bearer token that is refreshed before it expires:

1. STORAGE_EMULATOR_HOST: an emulator, no credentials (the official emulator convention).
2. GOOGLE_APPLICATION_CREDENTIALS: a service-account JSON key. A JWT signed with its RSA key
   (RS256, stdlib only: rsa.py) is exchanged at its token_uri for an access token.
3. GOOGLE_OAUTH_ACCESS_TOKEN: a fixed token handed in (a convenience; it cannot be refreshed).
4. The metadata server of GCE and Google Batch VMs (GCE_METADATA_HOST overrides its address):
   on Google Batch, Nextflow passes Fusion no credentials and this is the one that applies.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import time
import urllib.parse
from collections.abc import Mapping

from fusion_client.store.http import fetch_json
from fusion_client.store.tokens import TokenSource

from .errors import GcsCredentialsError
from .rsa import RsaKey

SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
METADATA_HOST = "metadata.google.internal"
TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
TOKEN_TIMEOUT = 10.0


def token_source(environ: Mapping[str, str]) -> TokenSource | None:
    """The credentials to use, or None for an emulator (no Authorization header)."""
    if environ.get("STORAGE_EMULATOR_HOST"):
        return None
    key_file = environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key_file:
        return TokenSource(lambda: _service_account_token(key_file), key_file)
    fixed = environ.get("GOOGLE_OAUTH_ACCESS_TOKEN")
    if fixed:
        return TokenSource(lambda: (fixed, 3600.0), "GOOGLE_OAUTH_ACCESS_TOKEN")
    host = environ.get("GCE_METADATA_HOST") or METADATA_HOST
    return TokenSource(lambda: _metadata_token(host), f"the metadata server ({host})")


def service_account_assertion(info: Mapping[str, str], now: float) -> str:
    """The signed JWT a service account presents to the token endpoint (RFC 7523)."""
    header = {"alg": "RS256", "typ": "JWT"}
    if info.get("private_key_id"):
        header["kid"] = info["private_key_id"]
    claims = {
        "iss": info["client_email"],
        "scope": SCOPE,
        "aud": info.get("token_uri") or "https://oauth2.googleapis.com/token",
        "iat": int(now),
        "exp": int(now) + 3600,
    }
    signing_input = f"{_b64json(header)}.{_b64json(claims)}".encode()
    signature = RsaKey.from_pem(info["private_key"]).sign_sha256(signing_input)
    return f"{signing_input.decode()}.{_b64(signature)}"


def _service_account_token(path: str) -> tuple[str, float]:
    try:
        with open(path, encoding="utf-8") as handle:
            info = json.load(handle)
    except (OSError, ValueError) as exc:
        raise GcsCredentialsError(f"GOOGLE_APPLICATION_CREDENTIALS={path}: {exc}") from None
    if info.get("type") != "service_account":
        raise GcsCredentialsError(
            f"GOOGLE_APPLICATION_CREDENTIALS={path}: only service-account keys are supported "
            f"(this one is {info.get('type')!r})"
        )
    try:
        assertion = service_account_assertion(info, time.time())
    except (KeyError, ValueError) as exc:
        raise GcsCredentialsError(f"{path}: unusable service-account key: {exc}") from None
    body = urllib.parse.urlencode(
        {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    ).encode()
    token_uri = info.get("token_uri") or "https://oauth2.googleapis.com/token"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return _token("POST", token_uri, headers, body, f"the token endpoint {token_uri}")


def _metadata_token(host: str) -> tuple[str, float]:
    url = f"http://{host}{TOKEN_PATH}"
    return _token("GET", url, {"Metadata-Flavor": "Google"}, None, f"the metadata server {host}")


def _token(
    method: str, url: str, headers: dict[str, str], body: bytes | None, source: str
) -> tuple[str, float]:
    try:
        status, answer = fetch_json(method, url, headers=headers, body=body, timeout=TOKEN_TIMEOUT)
    except (OSError, http.client.HTTPException) as exc:
        raise GcsCredentialsError(f"no Google access token from {source}: {exc}") from None
    if status != 200:
        raise GcsCredentialsError(f"{source} refused: HTTP {status}")
    try:
        return answer["access_token"], float(answer.get("expires_in", 3600))  # type: ignore[index,union-attr]
    except (TypeError, KeyError, ValueError) as exc:
        raise GcsCredentialsError(f"no Google access token from {source}: {exc}") from None


def _b64json(value: object) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def default_endpoint(environ: Mapping[str, str] = os.environ) -> str:
    host = environ.get("STORAGE_EMULATOR_HOST", "").strip()
    if not host:
        return "https://storage.googleapis.com"
    return host if "://" in host else f"http://{host}"
