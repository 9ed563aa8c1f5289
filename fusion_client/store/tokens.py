"""Bearer tokens fetched on first use and again shortly before they expire: the one refresh rule
for every store whose credentials are OAuth tokens (GCS, Azure managed identity)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fusion_client.log import get_logger

log = get_logger("store")

REFRESH_MARGIN = 300.0  # seconds before expiry a token is replaced

Fetcher = Callable[[], tuple[str, float]]
"""Obtain a fresh (token, lifetime in seconds)."""


class TokenSource:
    """A Bearer token, fetched on first use and again shortly before it expires."""

    def __init__(self, fetch: Fetcher, description: str) -> None:
        self.description = description
        self._fetch = fetch
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() > self._expires - REFRESH_MARGIN:
                token, lifetime = self._fetch()
                self._token, self._expires = token, time.monotonic() + lifetime
                log.debug("obtained an access token from %s", self.description)
            return self._token
