"""Run the proxy until SIGTERM/SIGINT, then drain: readiness fails at once, the listeners
close (no new connections), requests in flight (blob streams) get `shutdown_grace` to finish,
and the process exits 0."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from wave_proxy import metrics
from wave_proxy.app.connections import BoundedRunner
from wave_proxy.app.factory import create_admin_app, create_app
from wave_proxy.app.health import LIFECYCLE
from wave_proxy.app.logs import ACCESS_LOGGER, RequestLog
from wave_proxy.app.tls import ReloadableTls
from wave_proxy.config import ConfigError, Settings

log = logging.getLogger("wave_proxy")


async def serve(settings: Settings) -> None:
    app = create_app(settings)
    tls = _tls(settings)
    runners = [_runner(app, settings)]
    if settings.metrics_listen is not None:
        runners.append(_runner(create_admin_app(app), settings))
    await runners[0].setup()  # opens the stores and provides the layers: may take a while
    try:
        context = tls.context if tls else None
        await web.TCPSite(runners[0], settings.host, settings.port, ssl_context=context).start()
        if settings.metrics_listen is not None:
            await runners[1].setup()
            await web.TCPSite(runners[1], *settings.metrics_listen).start()
        _log_listening(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if tls is not None:
            loop.add_signal_handler(signal.SIGHUP, tls.reload)
        await stop.wait()
        app[LIFECYCLE].draining = True
        metrics.READY.set(0)
        log.info("stopping: draining requests in flight for up to %gs", settings.shutdown_grace)
    finally:
        for runner in runners:  # the main listener first; metrics answer until the end
            await runner.cleanup()
    log.info("stopped")


def _tls(settings: Settings) -> ReloadableTls | None:
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together: give both, or neither")
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    return ReloadableTls(settings.tls_cert, settings.tls_key)


def _runner(app: web.Application, settings: Settings) -> web.AppRunner:
    return BoundedRunner(
        app,
        idle_timeout=settings.idle_timeout,
        max_connections=settings.max_connections,
        access_log=logging.getLogger(ACCESS_LOGGER),
        access_log_class=RequestLog,
        shutdown_timeout=settings.shutdown_grace,
        handle_signals=False,
    )


def _log_listening(settings: Settings) -> None:
    registries = ", ".join(f"{n}={u}" for n, u in settings.registries.items())
    log.info(
        "listening on %s://%s:%d (upstreams: %s; data dir %s)",
        "https" if settings.tls_cert else "http",
        settings.host,
        settings.port,
        registries,
        settings.data_dir,
    )
    if settings.metrics_listen is not None:
        log.info("metrics on http://%s:%d/metrics", *settings.metrics_listen)
