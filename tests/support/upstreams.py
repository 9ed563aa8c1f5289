"""The session's private upstream registries (a pytest plugin: tests/conftest.py loads it, so
each starts once per session whichever folder asks).

- `htpasswd_upstream`, `token_upstream`: docker-registry in HTTP Basic and token mode
  (tests/support/registry.py), stopped at the end of the session.
- `htpasswd_image`, `token_image`: private/tool:1 pushed to each.
The open `upstream` and its `shapes` are tests/conftest.py's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.images import ImageSpec, PushedImage, Pusher, tar_layer
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
