"""Azure Blob's members of the store error family (fusion_client.store.errors)."""

from __future__ import annotations

from fusion_client.store import errors as store


class AzureError(store.StoreError):
    provider = "azure"


class AzureNotFound(AzureError, store.ObjectNotFound):
    pass


class AzureContainerNotFound(AzureError, store.BucketNotFound):
    pass


class AzureConditionNotMet(AzureError, store.PreconditionFailed):
    pass


class AzureDenied(AzureError, store.AccessDenied):
    pass


class AzureThrottled(AzureError, store.Throttled):
    pass


class AzureUnavailable(AzureError, store.StoreUnavailable):
    def __init__(self, message: str, *, resource: str = "") -> None:
        store.StoreUnavailable.__init__(self, message, resource=resource)


class AzureCredentialsError(AzureError, store.CredentialsError):
    def __init__(self, message: str) -> None:
        store.CredentialsError.__init__(self, message)


def error_for(
    status: int, code: str, message: str, *, request_id: str | None, resource: str
) -> AzureError:
    if code == "ContainerNotFound":
        cls: type[AzureError] = AzureContainerNotFound
    elif status == 404:
        cls = AzureNotFound
    elif status in (304, 412):
        cls = AzureConditionNotMet
    elif status in (401, 403):
        cls = AzureDenied
    elif status in (429, 503):
        cls = AzureThrottled
    else:
        cls = AzureError
    return cls(status, code or f"HTTP{status}", message, request_id=request_id, resource=resource)
