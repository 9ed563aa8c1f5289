"""Google Cloud Storage's members of the store error family (fusion_client.store.errors)."""

from __future__ import annotations

from fusion_client.store import errors as store


class GcsError(store.StoreError):
    provider = "gcs"


class GcsNotFound(GcsError, store.ObjectNotFound):
    pass


class GcsBucketNotFound(GcsError, store.BucketNotFound):
    pass


class GcsPreconditionFailed(GcsError, store.PreconditionFailed):
    pass


class GcsDenied(GcsError, store.AccessDenied):
    pass


class GcsThrottled(GcsError, store.Throttled):
    pass


class GcsUnavailable(GcsError, store.StoreUnavailable):
    def __init__(self, message: str, *, resource: str = "") -> None:
        store.StoreUnavailable.__init__(self, message, resource=resource)


class GcsCredentialsError(GcsError, store.CredentialsError):
    def __init__(self, message: str) -> None:
        store.CredentialsError.__init__(self, message)


def error_for(
    status: int, reason: str, message: str, *, request_id: str | None, resource: str, bucket: bool
) -> GcsError:
    """The error for a JSON API answer; `bucket`: a 404 means the bucket, not an object."""
    if status == 404:
        cls: type[GcsError] = GcsBucketNotFound if bucket else GcsNotFound
    elif status == 412:
        cls = GcsPreconditionFailed
    elif status in (401, 403):
        cls = GcsDenied
    elif status in (429, 503):
        cls = GcsThrottled
    else:
        cls = GcsError
    return cls(status, reason or f"HTTP{status}", message, request_id=request_id, resource=resource)
