"""Persistence: JSON documents and small key/values (MetadataStore), layer files (BlobStore)."""

from wave_proxy.store.blobs import BlobStore, BlobWriteError
from wave_proxy.store.metadata import MetadataStore, StoredDocument
from wave_proxy.store.sqlite import SqliteMetadataStore

__all__ = ["BlobStore", "BlobWriteError", "MetadataStore", "SqliteMetadataStore", "StoredDocument"]
