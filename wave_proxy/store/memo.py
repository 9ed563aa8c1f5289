"""An in-memory layer over a MetadataStore for what never changes.

Documents are content-addressed, and values under the `immutable_prefixes` never change once set
(links, augmentation results), so caching them per process is correct even with replicas. They
are remembered before they are written, so a store that cannot take them (a full disk) still
lets this process serve what it produced.
"""

from __future__ import annotations

from cachetools import LRUCache

from wave_proxy.store.metadata import MetadataStore, StoredDocument


class MemoizedStore:
    def __init__(
        self,
        inner: MetadataStore,
        immutable_prefixes: tuple[str, ...] = (),
        max_bytes: int = 64 << 20,
    ) -> None:
        self.inner = inner
        self._immutable = immutable_prefixes
        self._documents: LRUCache[str, StoredDocument] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda doc: len(doc.body) + 64
        )
        self._values: LRUCache[str, str] = LRUCache(maxsize=100_000)

    async def get_document(self, digest: str) -> StoredDocument | None:
        document = self._documents.get(digest)
        if document is None:
            document = await self.inner.get_document(digest)
            if document is not None:
                self._remember(digest, document)
        return document

    async def put_document(self, digest: str, document: StoredDocument) -> None:
        self._remember(digest, document)  # first: it serves this process if the write fails
        await self.inner.put_document(digest, document)

    def _remember(self, digest: str, document: StoredDocument) -> None:
        if len(document.body) + 64 <= self._documents.maxsize:
            self._documents[digest] = document

    async def get_value(self, key: str) -> str | None:
        value = self._values.get(key)
        if value is None:
            value = await self.inner.get_value(key)
            if value is not None and key.startswith(self._immutable):
                self._values[key] = value
        return value

    async def set_value(self, key: str, value: str, ttl: float | None = None) -> None:
        if key.startswith(self._immutable):
            self._values[key] = value
        await self.inner.set_value(key, value, ttl)

    async def count_values(self, prefix: str) -> int:
        return await self.inner.count_values(prefix)

    async def purge_expired(self) -> int:
        return await self.inner.purge_expired()

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()
