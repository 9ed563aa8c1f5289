"""OCI error responses: `{"errors":[{"code","message","detail"}]}` with the matching status."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


class RegistryError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = headers or {}

    def response(self) -> web.Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return web.Response(
            status=self.status,
            body=json.dumps({"errors": [error]}).encode(),
            content_type="application/json",
            headers=self.headers,
        )
