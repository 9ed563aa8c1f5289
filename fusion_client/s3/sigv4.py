"""AWS Signature Version 4 for S3, as pure functions (no I/O, no clock) so tests can compare
them byte for byte with botocore's signer.

S3 differs from other services in one way that matters: the object key is percent-encoded
exactly once (`/` kept) and the path is not normalised, so keys with spaces, `+`, `=`, `//`
or `..` segments sign exactly as they are sent.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

# Headers a proxy or http.client may add or rewrite; signing them would break requests.
_UNSIGNED_HEADERS = frozenset(
    {"authorization", "user-agent", "expect", "connection", "transfer-encoding", "content-length"}
)


def encode_path(path: str) -> str:
    """Percent-encode a bucket/key path once, keeping `/` and the unreserved characters."""
    return quote(path, safe="/~")


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """The canonical query string; also used verbatim as the request's query string."""
    pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in pairs)


def signing_key(secret_key: str, date: str, region: str, service: str = "s3") -> bytes:
    key = _hmac(f"AWS4{secret_key}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def authorization(
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    payload_hash: str,
    access_key: str,
    secret_key: str,
    region: str,
    amz_date: str,
) -> str:
    """The Authorization header value for a request.

    `path` is the already-encoded URI path, `query` the canonical query string, `headers` every
    header sent (names any case; `host`, `x-amz-date`, `x-amz-content-sha256` and a session
    token, when used, must be among them).
    """
    date = amz_date[:8]
    scope = f"{date}/{region}/s3/aws4_request"
    canonical_headers: dict[str, str] = {}
    for name, value in headers.items():
        lname = name.lower()
        if lname in _UNSIGNED_HEADERS:
            continue
        value = " ".join(str(value).split())
        canonical_headers[lname] = (
            f"{canonical_headers[lname]},{value}" if lname in canonical_headers else value
        )
    names = sorted(canonical_headers)
    signed_headers = ";".join(names)
    canonical_request = "\n".join(
        [
            method,
            path,
            query,
            "".join(f"{n}:{canonical_headers[n]}\n" for n in names),
            signed_headers,
            payload_hash,
        ]
    )
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    signature = hmac.new(
        signing_key(secret_key, date, region), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    return (
        f"{ALGORITHM} Credential={access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()
