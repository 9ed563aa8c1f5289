"""The Wave API while its shared store (Redis) is down: a clear 503, not a crash."""

from __future__ import annotations

from pathlib import Path

from tests.support.redis import redis_running
from tests.wave_proxy.api.helpers import submit


async def test_api_answers_503_naming_redis_while_it_is_down(make_api, tmp_path: Path) -> None:
    with redis_running(tmp_path) as server:
        api = await make_api(store=server.url(3))
        status, body = await submit(api, {"containerImage": "busybox:1"})
        assert status == 200
        token = body["containerToken"]
        server.service.stop()
        response = await api.get(f"/container-token/{token}")
        assert response.status == 503
        assert "Redis store redis://127.0.0.1" in (await response.json())["message"]
