"""The proxy's shared state on the aiohttp app, by typed key."""

from __future__ import annotations

from aiohttp import web

from wave_proxy.augment import Augmenter
from wave_proxy.store.blobcache import BlobCache
from wave_proxy.store.blobs import BlobStore
from wave_proxy.store.cacheverify import CacheVerifier
from wave_proxy.store.fleet import Fleet

AUGMENTER = web.AppKey("augmenter", Augmenter)
BLOBS = web.AppKey("blobs", BlobStore)
BLOB_CACHE = web.AppKey("blob_cache", BlobCache)  # absent when the cache is disabled
CACHE_VERIFIER = web.AppKey("cache_verifier", CacheVerifier)  # with BLOB_CACHE
FLEET = web.AppKey("fleet", Fleet)  # present with --blob-store

# On a request: where the blob it answers comes from (local, cache, upstream), for metrics.
BLOB_SOURCE = web.RequestKey("blob_source", str)
