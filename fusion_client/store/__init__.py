"""Object stores behind /fusion: the interface (interface.py), the values and errors every store
shares, the HTTP connection pools their transports use, and the in-memory twin (memory.py)."""

from .errors import (
    AccessDenied,
    BucketNotFound,
    CredentialsError,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    StoreUnavailable,
    Throttled,
)
from .interface import ObjectStore
from .model import Body, FileRange, ListPage, ObjectInfo, StagingChanged, StoreStats

__all__ = [
    "AccessDenied",
    "Body",
    "BucketNotFound",
    "CredentialsError",
    "FileRange",
    "ListPage",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "PreconditionFailed",
    "StagingChanged",
    "StoreError",
    "StoreStats",
    "StoreUnavailable",
    "Throttled",
]
