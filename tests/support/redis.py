"""A throwaway redis-server on a loopback port, nothing persisted.

`redis_server` is the session's one server (each test picks its own database number); this
module is a pytest plugin that tests/conftest.py loads for every folder.

`redis_running(workdir)` starts one more; either stops at the end of its block or session
(Service.stop: SIGTERM to the process group, SIGKILL after 15 s).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import Service, free_port, need_binary


@dataclass(frozen=True)
class Redis:
    port: int
    service: Service

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


@contextlib.contextmanager
def redis_running(workdir: Path) -> Iterator[Redis]:
    binary = need_binary("redis-server")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    argv += ["no", "--dir", str(workdir), "--protected-mode", "no"]
    service = Service(f"redis-{port}", argv, workdir)
    try:
        service.wait_port(port)
        yield Redis(port, service)
    finally:
        service.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    with redis_running(tmp_path_factory.mktemp("redis")) as server:
        yield server
