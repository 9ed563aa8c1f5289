"""Prometheus metrics for the app: the `/metrics` endpoint, upstream request timing (an aiohttp
client trace), store errors, and which kind of route a request took."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from wave_proxy import metrics
from wave_proxy.api.tokens import TOKEN_PREFIX
from wave_proxy.app.health import LIFECYCLE, proxy_app
from wave_proxy.server.keys import AUGMENTER, BLOB_CACHE
from wave_proxy.store.metadata import MetadataStore, MetadataStoreError, StoredDocument

_ROUTES = (
    (re.compile(r"^/v2/wt/[^/]+/.+/(manifests|blobs)/[^/]+$"), "token_{0}"),
    (re.compile(r"^/v2/wt/[^/]+/.+/tags/list$"), "token_tags"),
    (re.compile(r"^/v2/?$"), "version"),
    (re.compile(r"^/v2/.+/(manifests|blobs)/[^/]+$"), "{0}"),
    (re.compile(r"^/v2/.+/tags/list$"), "tags"),
    (re.compile(r"^/(v1alpha[12]/|container-token|service-info)"), "api"),
    (re.compile(r"^/fusion/"), "fusion"),
    (re.compile(r"^/(healthz|readyz|metrics)$"), "{0}"),
)
_KINDS = {"manifests": "manifest", "blobs": "blob"}


def route_kind(path: str) -> str:
    """A small, fixed set of labels: manifest, blob, tags, version, token_*, api, fusion, ..."""
    for pattern, label in _ROUTES:
        if match := pattern.match(path):
            groups = [_KINDS.get(g, g) for g in match.groups()]
            return label.format(*groups)
    return "other"


async def metrics_endpoint(request: web.Request) -> web.Response:
    """Prometheus text, after refreshing what is measured rather than counted."""
    app = proxy_app(request)
    if BLOB_CACHE in app:
        metrics.BLOB_CACHE_BYTES.set(app[BLOB_CACHE].used_bytes)
        metrics.BLOB_CACHE_LIMIT.set(app[BLOB_CACHE].max_bytes)
    if AUGMENTER in app and not app[LIFECYCLE].draining:  # stores close while draining
        # A failure is counted in store_errors; the other metrics still matter.
        with contextlib.suppress(MetadataStoreError):
            metrics.LIVE_TOKENS.set(await app[AUGMENTER].store.count_values(TOKEN_PREFIX))
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def upstream_tracing(registries: Mapping[str, str]) -> aiohttp.TraceConfig:
    """Count and time every upstream request, labelled with the registry's configured name
    (or the host, for token servers)."""
    names = {urlsplit(url).netloc.lower(): name for name, url in registries.items()}

    def label(url: Any) -> str:
        host = (url.host or "").lower()
        netloc = f"{host}:{url.port}" if url.port and not url.is_default_port() else host
        return names.get(netloc) or names.get(host) or host

    async def start(_session: Any, context: SimpleNamespace, _params: Any) -> None:
        context.started = time.monotonic()

    async def end(_session: Any, context: SimpleNamespace, params: Any) -> None:
        registry = label(params.url)
        metrics.UPSTREAM_REQUESTS.labels(registry, str(params.response.status)).inc()
        metrics.UPSTREAM_SECONDS.labels(registry).observe(time.monotonic() - context.started)

    async def failed(_session: Any, _context: SimpleNamespace, params: Any) -> None:
        metrics.UPSTREAM_REQUESTS.labels(label(params.url), "error").inc()

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(start)
    trace.on_request_end.append(end)
    trace.on_request_exception.append(failed)
    return trace


class ObservedStore:
    """A MetadataStore that counts its failures by operation (store_errors)."""

    def __init__(self, inner: MetadataStore) -> None:
        self.inner = inner

    async def _call(self, operation: str, call: Any) -> Any:
        try:
            return await call
        except MetadataStoreError:
            metrics.STORE_ERRORS.labels(operation).inc()
            raise

    async def get_document(self, digest: str) -> StoredDocument | None:
        return await self._call("get_document", self.inner.get_document(digest))

    async def put_document(self, digest: str, document: StoredDocument) -> None:
        await self._call("put_document", self.inner.put_document(digest, document))

    async def get_value(self, key: str) -> str | None:
        return await self._call("get_value", self.inner.get_value(key))

    async def set_value(self, key: str, value: str, ttl: float | None = None) -> None:
        await self._call("set_value", self.inner.set_value(key, value, ttl))

    async def count_values(self, prefix: str) -> int:
        return await self._call("count_values", self.inner.count_values(prefix))

    async def purge_expired(self) -> int:
        purged = await self._call("purge_expired", self.inner.purge_expired())
        metrics.PURGED.inc(purged)
        return purged

    async def ping(self) -> None:
        await self._call("ping", self.inner.ping())

    async def close(self) -> None:
        await self.inner.close()
