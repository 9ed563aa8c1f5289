"""The proxy's Prometheus metrics, all defined here (prometheus-client, default registry).

Modules record what happens where it happens; wave_proxy/app/observe.py serves them on
`/metrics` (the main port, or `--metrics-listen`). The registry also carries prometheus-client's
process and Python collectors (CPU, memory, open file descriptors, GC).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PREFIX = "wave_proxy_"

REQUESTS = Counter(
    PREFIX + "http_requests", "Requests answered, by route kind and status.", ["route", "status"]
)
REQUEST_SECONDS = Histogram(
    PREFIX + "http_request_duration_seconds",
    "Time to answer a request (whole body sent), by route kind.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
UPSTREAM_REQUESTS = Counter(
    PREFIX + "upstream_requests",
    "Requests to upstream registries (and their token servers), by registry and status; "
    'status="error" when no answer came.',
    ["registry", "status"],
)
UPSTREAM_SECONDS = Histogram(
    PREFIX + "upstream_request_duration_seconds",
    "Time until an upstream's response headers arrived, by registry.",
    ["registry"],
)
BLOB_BYTES = Counter(
    PREFIX + "blob_bytes_served",
    "Blob bytes sent to clients by source: local (appended layers, produced configs), "
    "cache (the blob cache) or upstream (relayed as it streams).",
    ["source"],
)
BLOB_CACHE_REQUESTS = Counter(
    PREFIX + "blob_cache_requests",
    "Upstream blobs asked for: hit (served from the cache or a fill in progress) or miss.",
    ["result"],
)
BLOB_CACHE_CORRUPT = Counter(
    PREFIX + "blob_cache_corrupt_blobs",
    "Cached blobs found not to match their digest (re-hashed after start, on a schedule and "
    "after being served), dropped to be refilled from upstream.",
)
BLOB_CACHE_BYTES = Gauge(PREFIX + "blob_cache_bytes", "Bytes held in the blob cache.")
BLOB_CACHE_LIMIT = Gauge(PREFIX + "blob_cache_limit_bytes", "The blob cache's bound.")
AUGMENTATIONS = Histogram(
    PREFIX + "augmentation_duration_seconds",
    "Manifests augmented (produced anew, not served from the store) and how long it took.",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
LIVE_TOKENS = Gauge(PREFIX + "tokens_live", "Wave API container tokens held in the store.")
STORE_ERRORS = Counter(
    PREFIX + "store_errors", "Metadata store operations that failed.", ["operation"]
)
PURGED = Counter(PREFIX + "store_purged_entries", "Expired entries removed by the sweep.")
READY = Gauge(PREFIX + "ready", "1 while /readyz answers 200.")
BLOB_STORE_UP = Gauge(
    PREFIX + "blob_store_up",
    "1 while the shared blob store (--blob-store) answers, 0 while degraded (blobs are relayed "
    "from upstream uncached until it recovers).",
)
FLEET_FILLS = Counter(
    PREFIX + "fleet_fills",
    "Cold upstream blobs asked for under --blob-store, by what this replica did: filled (held "
    "the lease and fetched it), waited (another replica filled it), took_over (the filler's "
    "lease expired), unleased (no lease service: fetched without one).",
    ["role"],
)
