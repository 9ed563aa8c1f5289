"""Session-scoped real peers for the proxy tests: upstream registries in each auth mode.

The factories live in tests/support (so bench/ can use them too); this file only scopes them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.registry import Registry, registry_running


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An open docker-registry on loopback."""
    with registry_running(tmp_path_factory.mktemp("upstream-open"), "open") as registry:
        yield registry


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
