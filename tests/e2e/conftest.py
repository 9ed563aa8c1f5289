"""The end-to-end tests' session proxy and the dockerd that uses it as its registry mirror.

The factories live in tests/support (so bench/ can use them too); this file only scopes them.
The upstream registries and layers they use are session plugins (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dockerd import Dockerd, dockerd_running
from tests.support.images import Layer
from tests.support.proxy import HTPASSWD_NAME, TOKEN_NAME, Proxy, proxy_running, upstream_args
from tests.support.registry import Registry


@pytest.fixture(scope="session")
def proxy(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: Registry,
    htpasswd_upstream: Registry,
    token_upstream: Registry,
    marker_layer: tuple[Path, Layer],
) -> Iterator[Proxy]:
    """The session's `wavectl serve`: docker.io -> `upstream`, the private registries under
    HTPASSWD_NAME / TOKEN_NAME with --registry-auth, and the marker layer appended. Tests may
    restart it (same port and data dir), so dockerd's mirror setting stays valid."""
    registries = {
        "docker.io": upstream,
        HTPASSWD_NAME: htpasswd_upstream,
        TOKEN_NAME: token_upstream,
    }
    args = [*upstream_args(registries), "--layer", str(marker_layer[0])]
    with proxy_running(tmp_path_factory.mktemp("proxy"), args) as running:
        yield running


@pytest.fixture(scope="session")
def dockerd(proxy: Proxy, upstream: Registry) -> Iterator[Dockerd]:
    """A private dockerd whose docker.io mirror is the session proxy; it may also pull from the
    proxy and from `upstream` by their loopback host names (insecure registries)."""
    with dockerd_running(mirrors=[proxy.url], insecure=[proxy.host, upstream.host]) as daemon:
        yield daemon
