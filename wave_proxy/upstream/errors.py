"""Typed failures of upstream registries, which the server maps to OCI error responses."""

from __future__ import annotations


class UpstreamError(Exception):
    """Base class; `registry` names the configured upstream for the message."""

    def __init__(self, registry: str, message: str) -> None:
        super().__init__(f"upstream registry {registry}: {message}")
        self.registry = registry


class UpstreamUnavailable(UpstreamError):
    """Unreachable, timing out or answering 5xx after every retry."""

    def __init__(self, registry: str, message: str, timed_out: bool = False) -> None:
        super().__init__(registry, message)
        self.timed_out = timed_out


class UpstreamRateLimited(UpstreamError):
    """429 from upstream; retry_after (seconds) is passed on to our client."""

    def __init__(self, registry: str, retry_after: str | None) -> None:
        super().__init__(registry, "rate limit reached (429 Too Many Requests)")
        self.retry_after = retry_after


class UpstreamDenied(UpstreamError):
    """401/403 even with the credentials we have (or we have none)."""

    def __init__(self, registry: str, message: str, status: int) -> None:
        super().__init__(registry, message)
        self.status = status


class UpstreamNotFound(UpstreamError):
    """404 from upstream, with the OCI code it sent (MANIFEST_UNKNOWN, NAME_UNKNOWN, ...)."""

    def __init__(self, registry: str, message: str, code: str) -> None:
        super().__init__(registry, message)
        self.code = code


class UpstreamBadResponse(UpstreamError):
    """A response we cannot use: oversized, wrong digest, malformed, unexpected status."""
