"""Content digests (`algorithm:hex`), as used in every OCI descriptor and registry URL."""

from __future__ import annotations

import hashlib
import re

_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_DIGEST = re.compile(r"(?P<algorithm>[a-z0-9]+):(?P<encoded>[a-f0-9]+)")


class DigestError(ValueError):
    """A digest string that is not `sha256:<64 hex>` or `sha512:<128 hex>`."""


def parse_digest(value: str) -> tuple[str, str]:
    """Split and validate a digest; return (algorithm, hex)."""
    match = _DIGEST.fullmatch(value)
    if not match:
        raise DigestError(f"invalid digest {value[:80]!r}: expected sha256:<64 lowercase hex>")
    algorithm, encoded = match["algorithm"], match["encoded"]
    expected = _HEX_LENGTHS.get(algorithm)
    if expected is None:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}: use sha256 or sha512")
    if len(encoded) != expected:
        raise DigestError(f"invalid {algorithm} digest: expected {expected} hex characters")
    return algorithm, encoded


def is_digest(value: str) -> bool:
    try:
        parse_digest(value)
    except DigestError:
        return False
    return True


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """Digest `data` with the named algorithm (to verify content against a sha512 reference)."""
    if algorithm not in _HEX_LENGTHS:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}")
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def matches(digest: str, data: bytes) -> bool:
    algorithm, _ = parse_digest(digest)
    return digest_of(data, algorithm) == digest
