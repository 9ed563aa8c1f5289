"""What a real dockerd sends to a `registry-mirrors` entry that asks for authentication.

Found (and kept true by these tests): dockerd follows the mirror's Bearer challenge, but the
credentials it offers the mirror's token endpoint are those the CLI holds for Docker Hub
(`docker login` without a host), never those stored for the mirror's own host. So a mirror
cannot tell its clients apart by credentials of its own: in mirror mode, admit clients by
address (--allow-cidr, with TLS), and keep --htpasswd for clients that name the proxy in image
references. See deploy/README.md, "Mirror mode and access control".
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from aiohttp import web

from tests.support import free_port
from tests.support.dockerd import Dockerd, dockerd_running
from tests.support.images import Shapes
from tests.support.registry import Registry

pytestmark = pytest.mark.timeout(300)


class ChallengingMirror:
    """A mirror that asks for a Bearer token, records what it is offered, then relays pulls to
    `upstream` (so dockerd never falls back to Docker Hub)."""

    def __init__(self, upstream: Registry) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.token_requests: list[str] = []  # the Authorization of each token request
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/token", self._token)
        app.router.add_route("*", "/v2/{path:.*}", self._registry)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._loop.run_forever()

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests.append(request.headers.get("Authorization", ""))
        return web.json_response({"token": "mirror-token"})

    async def _registry(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer mirror-token":
            challenge = f'Bearer realm="http://{self.host}/token",service="{self.host}"'
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        relayed = await asyncio.to_thread(
            requests.request,
            request.method,
            f"{self.upstream.url}{request.path_qs}",
            headers={k: v for k, v in request.headers.items() if k in ("Accept", "Range")},
            timeout=60,
        )
        headers = {
            k: v
            for k, v in relayed.headers.items()
            if k in ("Content-Type", "Docker-Content-Digest", "Content-Length")
        }
        return web.Response(status=relayed.status_code, body=relayed.content, headers=headers)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture(scope="module")
def mirror_and_daemon(
    upstream: Registry, shapes: Shapes
) -> Iterator[tuple[ChallengingMirror, Dockerd]]:
    mirror = ChallengingMirror(upstream)
    try:
        with dockerd_running(mirrors=[f"http://{mirror.host}"], insecure=[mirror.host]) as daemon:
            yield mirror, daemon
    finally:
        mirror.stop()


def pull_with(daemon: Dockerd, config_dir: Path, auths: dict[str, str]) -> None:
    config_dir.mkdir()
    entries = {
        key: {"auth": base64.b64encode(value.encode()).decode()} for key, value in auths.items()
    }
    (config_dir / "config.json").write_text(json.dumps({"auths": entries}))
    daemon.cli("rmi", "-f", "busybox:1", check=False)
    result = daemon.cli("--config", str(config_dir), "pull", "busybox:1", check=False)
    assert result.returncode == 0, result.stderr


def test_dockerd_offers_a_challenging_mirror_its_docker_hub_credentials(
    mirror_and_daemon, tmp_path: Path
) -> None:
    mirror, daemon = mirror_and_daemon
    mirror.token_requests.clear()
    pull_with(daemon, tmp_path / "cli", {"https://index.docker.io/v1/": "hubuser:hubpw"})
    offered = {base64.b64decode(a.split()[1]).decode() for a in mirror.token_requests if a}
    assert offered == {"hubuser:hubpw"}


def test_dockerd_never_offers_a_mirror_the_credentials_stored_for_its_host(
    mirror_and_daemon, tmp_path: Path
) -> None:
    mirror, daemon = mirror_and_daemon
    mirror.token_requests.clear()
    pull_with(daemon, tmp_path / "cli", {mirror.host: "mirroruser:mirrorpw"})
    assert mirror.token_requests and set(mirror.token_requests) == {""}
