"""A small blocking client of the Wave API, for `wavectl augment` and `wavectl token`.

Works against this proxy and against any Wave-compatible endpoint. Failures become
WaveClientError with one line saying what went wrong (the server's own message when it sent one).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

DEFAULT_ENDPOINT = "http://localhost:9090"
TIMEOUT = 600.0  # an augmentation resolves and rewrites the image before answering


class WaveClientError(Exception):
    pass


class WaveClient:
    def __init__(self, endpoint: str, api_key: str | None = None) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise WaveClientError(f"invalid endpoint {endpoint!r}: use http(s)://HOST[:PORT]")
        self.endpoint = endpoint.rstrip("/")
        self.api_key = api_key

    def submit(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/v1alpha2/container", request)

    def describe(self, token: str) -> dict[str, Any]:
        return self._call("GET", f"/container-token/{quote(token, safe='')}")

    def delete(self, token: str) -> None:
        self._call("DELETE", f"/container-token/{quote(token, safe='')}")

    def inspect(self, image: str, platform: str | None = None) -> dict[str, Any]:
        query = f"?{urlencode({'platform': platform})}" if platform else ""
        return self._call("POST", f"/v1alpha1/inspect{query}", {"containerImage": image})

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = self.endpoint + path
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise WaveClientError(f"{method} {path}: {_server_message(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise WaveClientError(f"cannot reach {self.endpoint}: {reason}") from None
        try:
            return json.loads(payload) if payload else {}
        except ValueError:
            raise WaveClientError(f"{method} {path}: the endpoint did not answer JSON") from None


def _server_message(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
    except ValueError:
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            return f"{body['message']} (HTTP {exc.code})"
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return f"{errors[0].get('message')} (HTTP {exc.code})"
    return f"HTTP {exc.code} {exc.reason}"
