"""The metadata store protocol: one machine uses SQLite, several replicas share Redis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class MetadataStoreError(RuntimeError):
    """The store cannot be opened or used; the message names it and the cause."""


class StoreUnavailable(MetadataStoreError):
    """A networked store cannot be reached or refused a command: worth a retry (503)."""


@dataclass(frozen=True)
class StoredDocument:
    """A manifest, index or config we produced, kept under its own digest."""

    media_type: str
    body: bytes


class MetadataStore(Protocol):
    """Documents by digest (immutable, never expire) plus key -> value with an optional TTL.

    Implementations verify nothing: callers store only content they digested themselves.
    """

    async def get_document(self, digest: str) -> StoredDocument | None: ...

    async def put_document(self, digest: str, document: StoredDocument) -> None: ...

    async def get_value(self, key: str) -> str | None: ...

    async def set_value(self, key: str, value: str, ttl: float | None = None) -> None: ...

    async def count_values(self, prefix: str) -> int:
        """Unexpired values whose key starts with `prefix` (for metrics: may scan)."""
        ...

    async def purge_expired(self) -> int:
        """Remove expired values now (where expiry is not the engine's own); how many."""
        ...

    async def ping(self) -> None:
        """Raise MetadataStoreError unless the store answers (for /readyz)."""
        ...

    async def close(self) -> None: ...
