"""The Wave API's routes and its state on the proxy's aiohttp app (wave_proxy/app mounts both)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from wave_proxy.api import handlers as api
from wave_proxy.api.fusion import FusionLayers
from wave_proxy.api.layers import LayerLimits, LayerResolver
from wave_proxy.api.service import ApiOptions, WaveService
from wave_proxy.api.tokens import EXPIRED_GRACE, TokenStore
from wave_proxy.augment import Augmenter
from wave_proxy.config import Settings
from wave_proxy.remote_layers import RemoteLayerFetcher
from wave_proxy.store.blobs import BlobStore

log = logging.getLogger("wave_proxy.api")


def add_routes(router: web.UrlDispatcher) -> None:
    """The API's endpoints; `/v2/wt/<token>/...` is mounted by the app with the registry's."""
    router.add_post("/v1alpha2/container", api.submit_v2)
    router.add_post("/container-token", api.submit_v1)
    router.add_get("/container-token/{token}", api.describe_token)
    router.add_delete("/container-token/{token}", api.delete_token)
    router.add_get("/v1alpha2/container/{request_id}", api.container_details)
    router.add_get("/v1alpha2/container/{request_id}/status", api.container_status)
    router.add_post("/v1alpha1/inspect", api.inspect)
    router.add_get("/service-info", api.service_info)
    router.add_get("/fusion/{name}.json", api.fusion_config)
    router.add_get("/fusion/{version}/fusion-{arch}.tar.gz", api.fusion_tarball)


@contextlib.asynccontextmanager
async def wave_api(
    app: web.Application,
    settings: Settings,
    proxy: Augmenter,
    blobs: BlobStore,
    fusion: FusionLayers,
    fusion_dir: Path,
) -> AsyncIterator[None]:
    """The API's state on `app` while the proxy runs, built on the proxy's own stores and
    Fusion layers (loaded once by the app, from `fusion_dir`)."""
    fetcher = RemoteLayerFetcher(settings.allow_private_layer_hosts)
    retention = settings.token_ttl + EXPIRED_GRACE
    limits = LayerLimits(
        expanded_bytes=settings.layer_expanded_limit, ingests=settings.layer_ingests
    )
    resolver = LayerResolver(proxy.store, blobs, fusion, fetcher, retention, limits)
    options = ApiOptions(settings.token_ttl, settings.advertise_host)
    app[api.SERVICE] = WaveService(
        proxy.store, proxy.registries, resolver, TokenStore(proxy.store), options
    )
    app[api.FUSION] = fusion
    _log_setup(settings, fusion, fusion_dir)
    app[api.API_KEYS] = settings.api_keys
    try:
        yield
    finally:
        await fetcher.close()


def _log_setup(settings: Settings, fusion: FusionLayers, fusion_dir: Path) -> None:
    store = "redis (shared)" if settings.store else "sqlite"
    keys = f"{len(settings.api_keys)} API key(s)" if settings.api_keys else "open (no API key)"
    hours = settings.token_ttl / 3600
    log.info("Wave API: %s store, %s, tokens live %gh", store, keys, round(hours, 2))
    layers = fusion.all_current()
    if layers:
        arches = ", ".join(layer.arch for layer in layers)
        log.info("Fusion layer %s (%s) from %s", fusion.current, arches, fusion_dir)
    else:
        log.warning(
            "no Fusion layer in %s: Fusion requests get a 400 until `wavectl layer build` and "
            "--fusion-layers",
            fusion_dir,
        )
