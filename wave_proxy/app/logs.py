"""Logging: text or JSON lines (`--log-format`), and one access-log line per request.

The access line names method, path, status, bytes sent, duration, client address, route kind
and who asked (a user name, never a password; a token shortened to its first characters,
never whole: tokens are capabilities). Query values that look like secrets are masked. The same
hook records the request metrics, so logs and /metrics always agree.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from wave_proxy import metrics
from wave_proxy.app.observe import route_kind
from wave_proxy.server.keys import BLOB_SOURCE

ACCESS_LOGGER = "wave_proxy.access"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_TOKEN_IN_PATH = re.compile(r"^(/v2/wt/|/container-token/|/v1alpha2/container/)([^/]+)")
_SECRET_PARAM = re.compile(r"token|key|secret|pass|sig|cred|auth", re.IGNORECASE)
SHOWN_TOKEN_CHARS = 8


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and an access line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "access", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"))


def configure_logging(level: str, log_format: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def shorten_token(token: str) -> str:
    return token[:SHOWN_TOKEN_CHARS] + "…" if len(token) > SHOWN_TOKEN_CHARS else token


def logged_path(request: web.BaseRequest) -> str:
    """The path with tokens shortened and secret-looking query values masked."""
    path = _TOKEN_IN_PATH.sub(lambda m: m[1] + shorten_token(m[2]), request.path)
    if not request.query_string:
        return path
    pairs = parse_qsl(request.query_string, keep_blank_values=True)
    masked = [(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in pairs]
    return f"{path}?{urlencode(masked)}"


def client_identity(request: web.BaseRequest) -> str:
    """Who asked: an authenticated user, a Basic user name, a token (shortened) or "-"."""
    if user := request.get("user"):
        return str(user)
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value, validate=True).decode().partition(":")[0] or "-"
        except (binascii.Error, UnicodeDecodeError):
            return "-"
    if match := _TOKEN_IN_PATH.match(request.path):
        return "token:" + shorten_token(match[2])
    if scheme.lower() == "bearer":
        return "bearer"
    return "-"


def _body_bytes(request: web.BaseRequest, response: web.StreamResponse) -> int:
    """The body's length as answered (sendfile bypasses aiohttp's own byte count)."""
    if request.method == "HEAD" or response.status in (204, 304):
        return 0
    return response.content_length if response.content_length is not None else 0


class RequestLog(AbstractAccessLogger):
    """aiohttp's per-request hook, called once the response is sent."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        route = route_kind(request.path)
        status = response.status
        sent = _body_bytes(request, response)
        metrics.REQUESTS.labels(route, str(status)).inc()
        metrics.REQUEST_SECONDS.labels(route).observe(time)
        if source := request.get(BLOB_SOURCE):
            metrics.BLOB_BYTES.labels(source).inc(sent)
        fields = {
            "remote": request.remote or "-",
            "user": client_identity(request),
            "method": request.method,
            "path": logged_path(request),
            "status": status,
            "bytes": sent,
            "duration": round(time, 6),
            "route": route,
        }
        self.logger.info(
            '%s %s "%s %s HTTP/%d.%d" %d %d %.3fs %s',
            fields["remote"],
            fields["user"],
            request.method,
            fields["path"],
            *request.version,
            status,
            sent,
            time,
            route,
            extra={"access": fields},
        )
