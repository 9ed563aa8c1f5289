"""Where a store's requests go and how they are retried: shared by every store's transport."""

from __future__ import annotations

import base64
import random
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 0.1
    max_delay: float = 20.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RetryPolicy:
        """FUSION_S3_MAX_ATTEMPTS, FUSION_S3_RETRY_BASE_DELAY and FUSION_S3_RETRY_MAX_DELAY
        (named when S3 was the only store) set the retries of every store."""
        return cls(
            max_attempts=int(environ.get("FUSION_S3_MAX_ATTEMPTS", 8)),
            base_delay=float(environ.get("FUSION_S3_RETRY_BASE_DELAY", 0.1)),
            max_delay=float(environ.get("FUSION_S3_RETRY_MAX_DELAY", 20.0)),
        )

    def delay(self, attempt: int) -> float:
        """Sleep before retry number `attempt` (1-based): full jitter over an exponential cap,
        so many clients hitting one throttled prefix spread out instead of retrying in step."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    base_path: str = ""  # path prefix of a custom endpoint URL, without trailing slash

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    headers: tuple[tuple[str, str], ...] = ()  # Proxy-Authorization for user:password@

    @classmethod
    def parse(cls, url: str) -> Proxy:
        parts = urlsplit(url if "://" in url else "http://" + url)
        if not parts.hostname:
            raise ValueError(f"proxy {url!r} has no host")
        headers: tuple[tuple[str, str], ...] = ()
        if parts.username is not None:
            secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers = (
                ("Proxy-Authorization", "Basic " + base64.b64encode(secret.encode()).decode()),
            )
        return cls(parts.hostname, parts.port or 80, headers)
