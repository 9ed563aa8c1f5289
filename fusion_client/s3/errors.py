"""S3's members of the store error family (fusion_client.store.errors): callers catch the
generic classes; the S3 names say which S3 answer produced them."""

from __future__ import annotations

from fusion_client.store import errors as store


class S3Error(store.StoreError):
    provider = "s3"


class NoSuchKey(S3Error, store.ObjectNotFound):
    """The object does not exist (GET/HEAD 404)."""


class NoSuchBucket(S3Error, store.BucketNotFound):
    """The bucket does not exist."""


class NoSuchUpload(S3Error):
    """The multipart upload id is unknown (completed, aborted or expired)."""


class PreconditionFailed(S3Error, store.PreconditionFailed):
    """If-Match did not match: the object changed since its ETag was learned (412)."""


class AccessDenied(S3Error, store.AccessDenied):
    """Credentials are missing, wrong or lack permission (403)."""


class SlowDown(S3Error, store.Throttled):
    """S3 kept throttling (503 SlowDown, 429) after every retry."""


class S3ConnectionError(S3Error, store.StoreUnavailable):
    """No usable response after every retry: the endpoint is down or unreachable."""

    def __init__(self, message: str, *, resource: str = "") -> None:
        store.StoreUnavailable.__init__(self, message, resource=resource)


class CredentialsError(S3Error, store.CredentialsError):
    """No credentials could be found or refreshed."""

    def __init__(self, message: str) -> None:
        store.CredentialsError.__init__(self, message)


_BY_CODE: dict[str, type[S3Error]] = {
    "NoSuchKey": NoSuchKey,
    "NoSuchBucket": NoSuchBucket,
    "NoSuchUpload": NoSuchUpload,
    "PreconditionFailed": PreconditionFailed,
    "AccessDenied": AccessDenied,
    "SlowDown": SlowDown,
}


def error_for(
    status: int,
    code: str,
    message: str = "",
    *,
    request_id: str | None = None,
    resource: str = "",
    missing: type[S3Error] = NoSuchKey,
) -> S3Error:
    """Build the most specific error for a response; `missing` names what a bare 404 means."""
    cls = _BY_CODE.get(code)
    if cls is None:
        if status == 404:
            cls = missing
        elif status == 412:
            cls = PreconditionFailed
        elif status == 403:
            cls = AccessDenied
        elif status in (429, 503):
            cls = SlowDown
        else:
            cls = S3Error
    if not code:
        code = {404: cls.__name__, 412: "PreconditionFailed", 403: "AccessDenied"}.get(
            status, f"HTTP{status}"
        )
    return cls(status, code, message, request_id=request_id, resource=resource)
