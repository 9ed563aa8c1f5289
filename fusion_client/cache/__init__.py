"""Read cache: sparse mmap-backed files per object version, filled chunk by chunk."""

from fusion_client.cache.chunks import CachedObject, CacheStats, ChunkCache, ReadStream

__all__ = ["CacheStats", "CachedObject", "ChunkCache", "ReadStream"]
