"""HTTP side of the Wave API: JSON in, JSON out, errors as `{"message": ...}` with a 4xx/5xx.

The `/v2/wt/<token>/...` routes belong to the registry side (wave_proxy/app/token_registry.py).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from wave_proxy import __version__
from wave_proxy.api.fusion import FusionLayers
from wave_proxy.api.inspect import inspect_image
from wave_proxy.api.request import RequestError
from wave_proxy.api.service import ImageNotFound, TokenProblem, WaveService, describe
from wave_proxy.api.tokens import TokenRecord, iso_time
from wave_proxy.failures import registry_error
from wave_proxy.image.reference import InvalidName
from wave_proxy.upstream.registries import UnknownRegistry

MAX_BODY = 48 << 20  # several data: layers of up to ~10 MiB each
BODY_SECONDS = 120.0
SERVICE = web.AppKey("wave_service", WaveService)
FUSION = web.AppKey("fusion_layers", FusionLayers)
API_KEYS = web.AppKey("api_keys", tuple)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def api_endpoint(handler: Handler) -> Handler:
    """Turn known failures into `{"message": ...}` answers with the right status."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return _error(exc.status, exc.message)
        except RequestError as exc:
            return _error(400, str(exc))
        except (UnknownRegistry, InvalidName) as exc:
            return _error(400, f"containerImage: {exc}")
        except (TokenProblem, ImageNotFound) as exc:
            return _error(404, str(exc))
        except Exception as exc:
            error = registry_error(exc)
            if error is None:
                raise
            return _error(error.status, error.message)

    return wrapped


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def _json(data: Any) -> web.Response:
    return web.json_response(data)


async def read_json(request: web.Request) -> Any:
    """The JSON body within MAX_BODY, once the API key is known to be there.

    The key comes in `Authorization: Bearer KEY` (checked before the body is read) or, as
    Nextflow sends it, in the body's `towerAccessToken`: then the raw body must hold the key
    before it is parsed, so a client without it costs no JSON parsing."""
    in_header = _key_in_header(request)
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, f"request body is over {MAX_BODY >> 20} MiB")
    raw = await _read_body(request)
    keys: tuple[str, ...] = request.app[API_KEYS]
    spellings = {form for key in keys for form in (key.encode(), json.dumps(key)[1:-1].encode())}
    if not in_header and not any(form in raw for form in spellings):
        raise _no_key()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply") from None
    if not in_header:
        given = body.get("towerAccessToken") if isinstance(body, dict) else None
        if not (isinstance(given, str) and _is_key(request, given)):
            raise _no_key()
    return body


async def _read_body(request: web.Request) -> bytes:
    """At most MAX_BODY bytes within BODY_SECONDS: a body trickling in must not hold a
    connection (and its memory) for ever."""
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_SECONDS):
            async for chunk in request.content.iter_chunked(1 << 20):
                size += len(chunk)
                if size > MAX_BODY:
                    raise ApiError(413, f"request body is over {MAX_BODY >> 20} MiB")
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, f"request body not received within {BODY_SECONDS:g}s") from None
    return b"".join(chunks)


def check_api_key(request: web.Request) -> None:
    """Open when no key is configured; else `Authorization: Bearer KEY`."""
    if not _key_in_header(request):
        raise _no_key()


def _key_in_header(request: web.Request) -> bool:
    """True when no key is configured or the header carries one."""
    if not request.app[API_KEYS]:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and _is_key(request, given.strip())


def _is_key(request: web.Request, candidate: str) -> bool:
    keys: tuple[str, ...] = request.app[API_KEYS]
    return any(secrets.compare_digest(candidate.encode(), k.encode()) for k in keys)


def _no_key() -> ApiError:
    return ApiError(
        401,
        "this Wave endpoint needs an API key: send `Authorization: Bearer <key>` "
        "(Nextflow: set tower.accessToken to the key)",
    )


def _host(request: web.Request) -> str:
    return request.app[SERVICE].host(request.host)


# -- container requests -----------------------------------------------------------------------


@api_endpoint
async def submit_v2(request: web.Request) -> web.Response:
    record = await request.app[SERVICE].submit(await read_json(request))
    return _json(
        {
            **_common_response(record, _host(request)),
            "freeze": False,
            "mirror": False,
            "succeeded": True,
        }
    )


@api_endpoint
async def submit_v1(request: web.Request) -> web.Response:
    record = await request.app[SERVICE].submit(await read_json(request))
    return _json(_common_response(record, _host(request)))


def _common_response(record: TokenRecord, host: str) -> dict[str, Any]:
    return {
        "requestId": record.token,
        "containerToken": record.token,
        "targetImage": record.target_image(host, pinned=record.tag is None),
        "expiration": iso_time(record.expires),
        "containerImage": record.container_image,
    }


@api_endpoint
async def describe_token(request: web.Request) -> web.Response:
    check_api_key(request)
    record = await request.app[SERVICE].lookup(request.match_info["token"])
    return _json(describe(record, _host(request)))


@api_endpoint
async def delete_token(request: web.Request) -> web.Response:
    check_api_key(request)
    await request.app[SERVICE].revoke(request.match_info["token"])
    return _json({})


@api_endpoint
async def container_details(request: web.Request) -> web.Response:
    check_api_key(request)
    record = await request.app[SERVICE].lookup(request.match_info["request_id"])
    details = describe(record, _host(request))
    return _json(
        {
            "requestId": record.token,
            "containerImage": record.container_image,
            "sourceImage": details["source"]["image"],
            "sourceDigest": record.source_digest,
            "waveImage": details["wave"]["image"],
            "waveDigest": record.wave_digest,
            "platform": ",".join(record.platforms),
            "timestamp": iso_time(record.created),
            "expiration": iso_time(record.expires),
            "containerConfig": details["request"]["containerConfig"],
        }
    )


@api_endpoint
async def container_status(request: web.Request) -> web.Response:
    check_api_key(request)
    record = await request.app[SERVICE].lookup(request.match_info["request_id"])
    return _json(
        {
            "id": record.token,
            "status": "DONE",
            "succeeded": True,
            "creationTime": iso_time(record.created),
        }
    )


@api_endpoint
async def inspect(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("containerImage"), str):
        raise ApiError(400, "containerImage: required")
    platform = request.query.get("platform")
    return _json(await inspect_image(request.app[SERVICE], body["containerImage"], platform))


async def service_info(_request: web.Request) -> web.Response:
    return _json({"serviceInfo": {"version": __version__, "commitId": "wave-proxy"}})


# -- our Fusion layer ---------------------------------------------------------------------------


@api_endpoint
async def fusion_config(request: web.Request) -> web.Response:
    """`/fusion/<version>-<arch>.json`, for Nextflow's fusion.containerConfigUrl."""
    version, _, arch = request.match_info["name"].rpartition("-")
    layer = request.app[FUSION].get(version, arch)
    if layer is None:
        raise ApiError(404, f"no Fusion layer {version} for {arch or '?'} on this proxy")
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme)  # TLS at a load balancer
    location = f"{scheme}://{_host(request)}/fusion/{layer.version}/fusion-{arch}.tar.gz"
    return _json(layer.container_config(location))


async def fusion_tarball(request: web.Request) -> web.StreamResponse:
    layer = request.app[FUSION].get(request.match_info["version"], request.match_info["arch"])
    if layer is None:
        return _error(404, "no such Fusion layer on this proxy")
    return web.FileResponse(layer.blob, headers={"Content-Type": "application/gzip"})
