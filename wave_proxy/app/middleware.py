"""What wraps every request: OCI error answers and the registry API version header."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from wave_proxy.failures import RegistryError, registry_error
from wave_proxy.server.handlers import API_VERSION

log = logging.getLogger("wave_proxy.app")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def oci_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ConnectionError as exc:  # the client went away mid-answer: nobody to tell
        log.debug("%s %s: the client went away (%s)", request.method, request.path, exc)
        gone = web.Response(status=499, reason="Client Closed Request")  # nginx's convention
        gone.force_close()
        return gone
    except web.HTTPException as exc:
        if exc.status == 404:
            return RegistryError(404, "NOT_FOUND", f"no such endpoint {request.path}").response()
        raise
    except Exception as exc:
        error = registry_error(exc)
        if error is None:
            log.exception("failed %s %s", request.method, request.path)
            error = RegistryError(500, "UNKNOWN", f"internal error: {exc.__class__.__name__}")
        elif error.status >= 500:
            log.warning("%s %s: %s", request.method, request.path, error.message)
        return error.response()


async def add_api_version(_request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault(*API_VERSION)
