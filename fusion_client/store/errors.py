"""Errors every object store raises: one family, so the file system maps them to errno in one
place (fs/errors.py, documented in docs/SEMANTICS.md) whatever the cloud.

Each error carries what an operator needs to act on it and what the per-task log reports:
the provider (`s3`, `gcs`, `azure`), the HTTP status (0 when no response arrived), the
provider's own error code, its message, the request id, and the resource.
"""

from __future__ import annotations


class StoreError(Exception):
    """A request failed for good (after the store's retries)."""

    provider = ""  # set by each store's subclass: s3, gcs, azure
    category = "Unknown"  # the incumbent's `error_code` log field, one per class below

    def __init__(
        self,
        status: int,
        code: str,
        message: str = "",
        *,
        request_id: str | None = None,
        resource: str = "",
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.resource = resource
        super().__init__(str(self))

    def __str__(self) -> str:
        return self.describe(with_resource=True)

    def describe(self, *, with_resource: bool) -> str:
        """One line for logs; without the resource when the caller already names it."""
        where = f" on {self.resource}" if self.resource and with_resource else ""
        status = f"HTTP {self.status} " if self.status else ""
        text = f"{status}{self.code}{where}"
        if self.message:
            text += f": {self.message}"
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text

    def __reduce__(self):  # keep pickling/copying working despite the keyword-only fields
        return (
            _rebuild,
            (type(self), self.status, self.code, self.message, self.request_id, self.resource),
        )


def _rebuild(cls, status, code, message, request_id, resource):  # type: ignore[no-untyped-def]
    return cls(status, code, message, request_id=request_id, resource=resource)


class ObjectNotFound(StoreError):
    """The object does not exist (or vanished since it was listed)."""

    category = "ResourceNotFound"


class BucketNotFound(StoreError):
    """The bucket (GCS) or container (Azure) does not exist."""

    category = "ContainerNotFound"


class PreconditionFailed(StoreError):
    """The object changed since its version was learned (If-Match / ifGenerationMatch)."""

    category = "Conflict"


class AccessDenied(StoreError):
    """Credentials are missing, wrong, expired or lack permission (401/403)."""

    category = "Forbidden"


class Throttled(StoreError):
    """The store kept asking us to slow down (429, 503, SlowDown, ServerBusy) past retries."""

    category = "RateLimited"


class StoreUnavailable(StoreError):
    """No usable response after every retry: the endpoint is down or unreachable."""

    category = "Unavailable"

    def __init__(self, message: str, *, resource: str = "") -> None:
        super().__init__(0, "ConnectionError", message, resource=resource)


class CredentialsError(AccessDenied):
    """No credentials could be found or refreshed."""

    category = "InvalidCredentials"

    def __init__(self, message: str) -> None:
        super().__init__(0, "CredentialsError", message)


def log_fields(error: StoreError) -> dict[str, object]:
    """The fields a log line about `error` carries (the incumbent's names, so the jq recipes
    of its troubleshooting guide work on our .fusion.log too)."""
    fields: dict[str, object] = {
        "error": error.describe(with_resource=False),
        "error_code": error.category,
        "provider_code": error.code,
    }
    if error.provider:
        fields["provider"] = error.provider
    if error.status:
        fields["provider_http_status"] = error.status
    if error.request_id:
        fields["provider_request_id"] = error.request_id
    if error.message:
        fields["provider_error"] = error.message
    return fields
