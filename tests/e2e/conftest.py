"""Session-scoped real peers for the proxy tests: upstream registries in each auth mode, seeded.

The factories live in tests/support (so bench/ can use them too); this file only scopes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dockerd import Dockerd, dockerd_running
from tests.support.images import (
    ImageSpec,
    Layer,
    PushedImage,
    Pusher,
    tar_layer,
    write_marker_layer,
)
from tests.support.proxy import HTPASSWD_NAME, TOKEN_NAME, Proxy, proxy_running, upstream_args
from tests.support.registry import Registry, registry_running

PRIVATE_REPOSITORY = "private/tool"


@pytest.fixture(scope="session")
def htpasswd_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A docker-registry behind HTTP Basic (bcrypt htpasswd); credentials in `.credentials`."""
    with registry_running(tmp_path_factory.mktemp("upstream-htpasswd"), "htpasswd") as registry:
        yield registry


@pytest.fixture(scope="session")
def token_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A docker-registry in token mode with its test issuer (`.issuer`); see support.registry."""
    with registry_running(tmp_path_factory.mktemp("upstream-token"), "token") as registry:
        yield registry


def _push_private(registry: Registry) -> PushedImage:
    layer = tar_layer({"opt/private/secret.txt": f"private in {registry.mode}\n".encode()})
    return Pusher(registry).image(PRIVATE_REPOSITORY, "1", ImageSpec((layer,), {"Cmd": ["sh"]}))


@pytest.fixture(scope="session")
def htpasswd_image(htpasswd_upstream: Registry) -> PushedImage:
    """private/tool:1 in the htpasswd registry."""
    return _push_private(htpasswd_upstream)


@pytest.fixture(scope="session")
def token_image(token_upstream: Registry) -> PushedImage:
    """private/tool:1 in the token-auth registry."""
    return _push_private(token_upstream)


@pytest.fixture(scope="session")
def marker_layer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Layer]:
    """The .tar.gz tests pass to `--layer`: it adds /etc/wave-proxy-test (see support.images)."""
    path = tmp_path_factory.mktemp("layers") / "marker.tar.gz"
    return path, write_marker_layer(path)


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
