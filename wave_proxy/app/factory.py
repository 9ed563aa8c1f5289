"""Build the aiohttp application: open the stores, ingest the layers, connect upstreams, mount
the registry API and the Wave API."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from wave_proxy.api import routes as api_routes
from wave_proxy.api.fusion import FusionLayers
from wave_proxy.app.access import allow_cidr_middleware, check_exposure
from wave_proxy.app.clientauth import (
    CLIENT_AUTH,
    ClientAuth,
    Htpasswd,
    client_auth_middleware,
    token_endpoint,
)
from wave_proxy.app.health import LIFECYCLE, PROXY, Lifecycle, healthz, readyz
from wave_proxy.app.housekeeping import sweeping
from wave_proxy.app.middleware import add_api_version, oci_errors
from wave_proxy.app.observe import ObservedStore, metrics_endpoint, upstream_tracing
from wave_proxy.app.token_registry import token_registry
from wave_proxy.augment import IMMUTABLE_KEYS, Augmenter
from wave_proxy.config import Settings
from wave_proxy.fusion_default import LAUNCHER_PREFIX, fusion_directory, fusion_layer_specs
from wave_proxy.fusion_fleet import provide_once_per_fleet
from wave_proxy.image.layer import LayerDescriptor
from wave_proxy.image.mutate import ConfigChanges
from wave_proxy.server import handlers
from wave_proxy.server.keys import AUGMENTER, BLOB_CACHE, BLOBS, CACHE_VERIFIER, FLEET
from wave_proxy.store.blobcache import BlobCache
from wave_proxy.store.blobs import BlobStore
from wave_proxy.store.cacheverify import CacheVerifier
from wave_proxy.store.fleet import Fleet
from wave_proxy.store.layers import ingest_layer
from wave_proxy.store.leases import Leases, LocalLeases
from wave_proxy.store.memo import MemoizedStore
from wave_proxy.store.metadata import MetadataStore
from wave_proxy.store.shared import open_blob_store
from wave_proxy.store.sqlite import SqliteMetadataStore
from wave_proxy.upstream.auth import Credentials, load_docker_config
from wave_proxy.upstream.client import RetryPolicy
from wave_proxy.upstream.credentials import CredentialSource, docker_config_source
from wave_proxy.upstream.registries import Registries

log = logging.getLogger("wave_proxy.app")

MAX_REQUEST_BODY = 64 << 10  # pull-only: no request needs a body
SHUTDOWN_GRACE = 10.0  # seconds for background cache fills at shutdown


def create_app(
    settings: Settings, retry: RetryPolicy | None = None, upstream_timeout: float = 30.0
) -> web.Application:
    """The proxy app; `retry` and `upstream_timeout` tune the upstream client (tests shorten)."""
    middlewares = [oci_errors]
    auth = ClientAuth(Htpasswd.load(settings.htpasswd)) if settings.htpasswd else None
    if auth is not None:
        middlewares.insert(0, client_auth_middleware(auth))
    if settings.allow_cidr:  # before anything else happens
        admit = allow_cidr_middleware(
            settings.allow_cidr, settings.trusted_proxies, others_may_log_in=auth is not None
        )
        middlewares.insert(0, admit)
    app = web.Application(client_max_size=MAX_REQUEST_BODY, middlewares=middlewares)
    app.cleanup_ctx.append(lambda app: _lifecycle(app, settings, retry, upstream_timeout))
    app.on_response_prepare.append(add_api_version)
    app[LIFECYCLE] = Lifecycle()
    add_health_routes(app.router, with_metrics=settings.metrics_listen is None)
    api_routes.add_routes(app.router)
    if auth is not None:
        app[CLIENT_AUTH] = auth
        app.router.add_get("/v2/token", token_endpoint)
    # /v2/wt/<token>/ ahead of the /v2 catch-all: a token's image, not a mirrored repository
    app.router.add_route("*", "/v2/wt/{token}/{path:.+}", token_registry)
    app.router.add_route("*", "/v2", handlers.version)
    app.router.add_route("*", "/v2/", handlers.version)
    app.router.add_route("*", "/v2/{path:.+}", handlers.dispatch)
    return app


def create_admin_app(proxy: web.Application) -> web.Application:
    """What --metrics-listen serves: /metrics, /healthz and /readyz of `proxy`."""
    admin = web.Application()
    admin[PROXY] = proxy
    add_health_routes(admin.router, with_metrics=True)
    return admin


def add_health_routes(router: web.UrlDispatcher, with_metrics: bool) -> None:
    router.add_get("/healthz", healthz)
    router.add_get("/readyz", readyz)
    if with_metrics:
        router.add_get("/metrics", metrics_endpoint)


async def _lifecycle(
    app: web.Application, settings: Settings, retry: RetryPolicy | None, timeout: float
) -> AsyncIterator[None]:
    data_dir = settings.data_dir
    blobs = BlobStore(data_dir / "blobs")
    credentials = resolve_credentials(settings)
    check_exposure(settings, credentials)
    store = MemoizedStore(ObservedStore(await open_metadata_store(settings)), IMMUTABLE_KEYS)
    leases = open_leases(settings)
    fleet = None
    if settings.blob_store:
        shared = open_blob_store(settings.blob_store)
        fleet = app[FLEET] = Fleet(shared, leases, settings.blob_redirect)
    # After the quick checks: providing the Fusion layers may take a build on first start.
    fusion_dir = fusion_directory(settings)
    ingested: dict[Path, LayerDescriptor] = {}
    ingest = functools.partial(_ingest_layers, settings, blobs, ingested)
    if fleet is not None and settings.fusion:
        layers = await provide_once_per_fleet(fleet, store, fusion_dir, ingest)
    else:
        layers = await asyncio.to_thread(ingest)
    required = settings.fusion_layers is not None
    fusion = await asyncio.to_thread(FusionLayers.load, fusion_dir, blobs, required, ingested)
    session = aiohttp.ClientSession(
        auto_decompress=False,
        connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=60),
        trust_env=True,  # HTTPS_PROXY / NO_PROXY for egress to upstream registries
        trace_configs=[upstream_tracing(settings.registries)],
    )
    registries = Registries(settings.registries, session, credentials, retry, timeout)
    app[BLOBS] = blobs
    if settings.blob_cache_size:
        app[BLOB_CACHE] = await asyncio.to_thread(
            BlobCache, data_dir / "cache", settings.blob_cache_size
        )
        app[CACHE_VERIFIER] = CacheVerifier(app[BLOB_CACHE])
    changes = ConfigChanges(entrypoint_prefix=LAUNCHER_PREFIX if settings.fusion else ())
    app[AUGMENTER] = Augmenter(store, registries, layers, changes)
    for layer in layers:
        log.info(
            "appending layer %s (%d bytes, platform %s)",
            layer.digest,
            layer.size,
            layer.platform or "all",
        )
    try:
        async with (
            api_routes.wave_api(app, settings, app[AUGMENTER], blobs, fusion, fusion_dir),
            sweeping(app),
            _verifying(app),
            _fleet(app, settings),
        ):
            yield
    finally:
        if BLOB_CACHE in app:
            # Let fills whose client left finish briefly; what is cut is dropped at next start.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(app[BLOB_CACHE].settled(), SHUTDOWN_GRACE)
        await session.close()
        await store.close()
        await leases.close()


def open_leases(settings: Settings) -> Leases:
    """Redis leases when replicas share a Redis store, else leases within this process."""
    if settings.store:
        from wave_proxy.store.redis import RedisLeases  # only replicas need redis-py

        return RedisLeases(settings.store)
    return LocalLeases()


@contextlib.asynccontextmanager
async def _fleet(app: web.Application, settings: Settings) -> AsyncIterator[None]:
    """With --blob-store: the store's health probe, and the appended layers put into it."""
    fleet = app.get(FLEET)
    if fleet is None:
        if settings.blob_redirect:
            log.warning("--blob-redirect does nothing without --blob-store: blobs are streamed")
        yield
        return
    redirected = " (clients redirected to it)" if fleet.redirect else ""
    log.info("blob store %s%s", fleet.store.description, redirected)
    async with fleet.probing():
        for layer in app[AUGMENTER].layers:
            await fleet.publish(layer.digest, app[BLOBS].path(layer.digest))
        yield


@contextlib.asynccontextmanager
async def _verifying(app: web.Application) -> AsyncIterator[None]:
    """Damaged cache entries are looked for after start and on a schedule."""
    if CACHE_VERIFIER not in app:
        yield
        return
    async with app[CACHE_VERIFIER].running():
        yield


async def open_metadata_store(settings: Settings) -> MetadataStore:
    """SQLite in the data dir by default; Redis (--store redis://...) to share replicas' state."""
    if settings.store:
        from wave_proxy.store.redis import RedisMetadataStore  # only replicas need redis-py

        return await RedisMetadataStore.open(settings.store)
    return await SqliteMetadataStore.open(settings.data_dir / "metadata.sqlite3")


def _ingest_layers(
    settings: Settings, blobs: BlobStore, ingested: dict[Path, LayerDescriptor]
) -> list[LayerDescriptor]:
    """The appended layers, described and copied into the blob store once (`ingested` records
    them by path, so the Wave API's Fusion layers are not read again)."""
    specs = [*settings.layers, *fusion_layer_specs(settings)]
    for spec in specs:
        ingested[spec.path] = ingest_layer(blobs, spec.path, spec.platform)
    return [ingested[spec.path] for spec in specs]


def resolve_credentials(settings: Settings) -> Mapping[str, Credentials | CredentialSource]:
    """--registry-auth wins; else what docker config.json has for the registry's name or its
    URL's host (a credential helper, an `auths` entry, or the credsStore)."""
    found: dict[str, Credentials | CredentialSource] = {}
    if settings.docker_config is not None:
        docker = load_docker_config(settings.docker_config)
        for name, url in settings.registries.items():
            hosts = [name, urlsplit(url).netloc.lower()]
            if (source := docker_config_source(docker, hosts)) is not None:
                found[name] = source
    found.update(settings.registry_auth)
    return found
