"""What a failure looks like to an HTTP client: OCI error responses that say what to do.

`{"errors":[{"code","message","detail"}]}` with the matching status, for the registry API and
`/v2/wt/<token>/`; the Wave API answers the same failures with its own `{"message"}` form.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from wave_proxy.augment import NotAcceptable
from wave_proxy.image.digest import DigestError
from wave_proxy.image.mutate import ManifestError
from wave_proxy.image.reference import InvalidName
from wave_proxy.store.metadata import MetadataStoreError, StoreUnavailable
from wave_proxy.upstream.errors import (
    UpstreamBadResponse,
    UpstreamDenied,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamUnavailable,
)
from wave_proxy.upstream.registries import UnknownRegistry

log = logging.getLogger(__name__)


class RegistryError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = headers or {}

    def response(self) -> web.Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return web.Response(
            status=self.status,
            body=json.dumps({"errors": [error]}).encode(),
            content_type="application/json",
            headers=self.headers,
        )


def registry_error(exc: Exception) -> RegistryError | None:
    """The OCI error for a known failure, None for a bug (reported as 500 UNKNOWN)."""
    if isinstance(exc, RegistryError):
        return exc
    if isinstance(exc, DigestError):
        return RegistryError(400, "DIGEST_INVALID", str(exc))
    if isinstance(exc, InvalidName):
        return RegistryError(400, "NAME_INVALID", str(exc))
    if isinstance(exc, UnknownRegistry):
        return RegistryError(404, "NAME_UNKNOWN", str(exc))
    if isinstance(exc, NotAcceptable):
        return RegistryError(404, "MANIFEST_UNKNOWN", str(exc))
    if isinstance(exc, ManifestError):
        return RegistryError(502, "MANIFEST_INVALID", f"upstream sent an unusable manifest: {exc}")
    if isinstance(exc, UpstreamError):
        return _upstream_error(exc)
    if isinstance(exc, StoreUnavailable):
        return RegistryError(503, "UNAVAILABLE", f"{exc}; retry shortly")
    if isinstance(exc, MetadataStoreError):  # e.g. a full disk: the cause is for the log only
        log.error("%s", exc)
        return RegistryError(503, "UNAVAILABLE", "this proxy cannot record state now; retry later")
    return None


def _upstream_error(exc: UpstreamError) -> RegistryError:
    message = str(exc)
    if isinstance(exc, UpstreamNotFound):
        return RegistryError(404, exc.code, message)
    if isinstance(exc, UpstreamRateLimited):
        headers = {"Retry-After": exc.retry_after} if exc.retry_after else {}
        return RegistryError(429, "TOOMANYREQUESTS", f"{message}; retry later", headers=headers)
    if isinstance(exc, UpstreamDenied):
        code = "DENIED" if exc.status == 403 else "UNAUTHORIZED"
        return RegistryError(403, code, message)
    if isinstance(exc, UpstreamUnavailable):
        status = 504 if exc.timed_out else 503
        return RegistryError(
            status, "UNAVAILABLE", f"{message}; check that the upstream is reachable and retry"
        )
    if isinstance(exc, UpstreamBadResponse):
        return RegistryError(502, "UNKNOWN", message)
    return RegistryError(502, "UNKNOWN", message)
