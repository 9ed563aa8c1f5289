"""Fixtures shared by the fusion_client tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fusion_client.fs.runtime import MountedFileSystem
from fusion_client.s3 import S3Client
from fusion_client.settings import Settings
from tests.support.faults import FaultProxy
from tests.support.s3servers import S3Server

# Retries in tests back off in milliseconds, not seconds (a settings knob, not test sleeps).
FAST_RETRIES = {"FUSION_S3_RETRY_BASE_DELAY": "0.01", "FUSION_S3_RETRY_MAX_DELAY": "0.05"}


def make_client(server: S3Server, **env: str) -> S3Client:
    return S3Client.from_env(server.env(**FAST_RETRIES, **env))


@pytest.fixture
def moto_client(moto_s3: S3Server) -> Iterator[S3Client]:
    client = make_client(moto_s3)
    yield client
    client.close()


@pytest.fixture
def s3rver_client(s3rver: S3Server) -> Iterator[S3Client]:
    client = make_client(s3rver)
    yield client
    client.close()


@pytest.fixture
def fault_proxy(s3rver: S3Server) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the session's s3rver."""
    proxy = FaultProxy(int(s3rver.endpoint.rsplit(":", 1)[1]))
    yield proxy
    proxy.close()


class Through:
    """A server as seen through a fault proxy (for mount_fusion)."""

    def __init__(self, server: Any, endpoint: str) -> None:
        self._server, self._endpoint = server, endpoint
        self.scheme = server.scheme

    def env(self, **extra: str) -> dict[str, str]:
        return self._server.env_through(self._endpoint, **extra)


def through_proxy(server: S3Server, proxy: FaultProxy, **env: str) -> S3Client:
    """A client of `server` whose requests go through `proxy`."""
    return S3Client.from_env(server.env(**FAST_RETRIES, AWS_ENDPOINT_URL=proxy.endpoint, **env))


# -- mounted file systems (H5) -----------------------------------------------------------------


@dataclass
class FusionMount:
    """An in-process mount of one S3 server; `path(bucket, key)` names a file under it."""

    root: Path
    server: S3Server
    mounted: MountedFileSystem

    def path(self, bucket: str, key: str = "") -> Path:
        folder = self.root / self.server.scheme / bucket
        return folder / key if key else folder


def synced(*paths: Path) -> None:
    """fsync each file through a new descriptor: returns once it is durable in the store
    (a small new file's close does not wait for its upload; docs/SEMANTICS.md)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def mount_fusion(server: S3Server, base: Path, **env: str) -> Iterator[FusionMount]:
    environ = {
        **server.env(**FAST_RETRIES),
        "FUSION_MOUNT": str(base / "mnt"),
        "FUSION_CACHE_LOCATION": str(base / "cache"),
        "FUSION_METADATA_TTL": "0.2",
        "FUSION_NEGATIVE_TTL": "0.2",
        **env,
    }
    mounted = MountedFileSystem.start(Settings.from_env(environ), environ)
    try:
        yield FusionMount(base / "mnt", server, mounted)
    finally:
        lost = mounted.close()
        assert not lost, f"uploads lost at unmount: {lost}"


@pytest.fixture(scope="session")
def s3rver_mount(s3rver: S3Server, tmp_path_factory: pytest.TempPathFactory):
    yield from mount_fusion(s3rver, tmp_path_factory.mktemp("fusion-s3rver"))


@pytest.fixture(scope="session")
def moto_mount(moto_s3: S3Server, tmp_path_factory: pytest.TempPathFactory):
    yield from mount_fusion(moto_s3, tmp_path_factory.mktemp("fusion-moto"))
