"""S3 errors: one exception family so callers catch `S3Error` and branch on the subclass.

Every error carries what an operator needs to act on it: HTTP status (0 when no response
arrived), the S3 error code, the server's message, the request id, and the resource.
"""

from __future__ import annotations


class S3Error(Exception):
    status: int
    code: str
    message: str
    request_id: str | None
    resource: str

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


class NoSuchKey(S3Error):
    """The object does not exist (GET/HEAD 404)."""


class NoSuchBucket(S3Error):
    """The bucket does not exist."""


class NoSuchUpload(S3Error):
    """The multipart upload id is unknown (completed, aborted or expired)."""


class PreconditionFailed(S3Error):
    """If-Match did not match: the object changed since its ETag was learned (412)."""


class AccessDenied(S3Error):
    """Credentials are missing, wrong or lack permission (403)."""


class S3ConnectionError(S3Error):
    """No usable response after every retry: the endpoint is down or unreachable."""

    def __init__(self, message: str, *, resource: str = "") -> None:
        super().__init__(0, "ConnectionError", message, resource=resource)


class CredentialsError(S3Error):
    """No credentials could be found or refreshed."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "CredentialsError", message)


_BY_CODE: dict[str, type[S3Error]] = {
    "NoSuchKey": NoSuchKey,
    "NoSuchBucket": NoSuchBucket,
    "NoSuchUpload": NoSuchUpload,
    "PreconditionFailed": PreconditionFailed,
    "AccessDenied": AccessDenied,
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
        else:
            cls = S3Error
    if not code:
        code = {404: cls.__name__, 412: "PreconditionFailed", 403: "AccessDenied"}.get(
            status, f"HTTP{status}"
        )
    return cls(status, code, message, request_id=request_id, resource=resource)
