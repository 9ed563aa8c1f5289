"""Real S3-compatible servers for tests: s3rver (fast ranged reads, verifies SigV4 signatures,
ignores If-Match) and moto_server (honours If-Match, but re-reads whole objects per ranged
GET: small objects only).

Each is session-scoped; tests get fresh buckets from `new_bucket()`, so they never see each
other's objects. This module is a pytest plugin that tests/conftest.py loads, so each starts
once per session whichever folder asks.

`start_s3rver` (also over https, with a test CA) and `start_moto` start one more; every server
stops with its `service.stop()` (SIGTERM to its process group, SIGKILL after 15 s), which the
fixtures call at the end of the session. s3rver keeps objects on disk under its data dir.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import Service, free_port, need_binary, serving

REGION = "us-east-1"
_bucket_numbers = itertools.count(1)


@dataclass
class S3Server:
    scheme = "s3"  # the directory under a Fusion mount
    name: str
    endpoint: str  # http://127.0.0.1:PORT
    access_key: str
    secret_key: str
    service: Service | None = field(default=None, repr=False)
    region: str = REGION
    ca_bundle: str | None = None  # CA certificate of an https endpoint

    def boto3_client(self, **config: Any) -> Any:
        """A boto3 S3 client for checking results independently of our client."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            verify=self.ca_bundle,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}, **config),
        )

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for S3Client.from_env / the fusion launcher to use this server. Instance
        metadata is disabled so nothing ever probes 169.254.169.254."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            **({"AWS_CA_BUNDLE": self.ca_bundle} if self.ca_bundle else {}),
            **extra,
        }

    def new_bucket(self, prefix: str = "test") -> str:
        name = f"{prefix}-{os.getpid()}-{next(_bucket_numbers)}"
        self.boto3_client().create_bucket(Bucket=name)
        return name

    # The same checks as the other clouds' emulators (tests/support/cloudservers.py) offer:

    def env_through(self, endpoint: str, **extra: str) -> dict[str, str]:
        """env() for reaching this server through a proxy at `endpoint`."""
        return self.env(AWS_ENDPOINT_URL=endpoint, **extra)

    def get(self, bucket: str, key: str) -> bytes:
        return self.boto3_client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.boto3_client().put_object(Bucket=bucket, Key=key, Body=data)

    def keys(self, bucket: str) -> list[str]:
        pages = self.boto3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def start_s3rver(log_dir: Path, data_dir: Path, tls: tuple[Path, Path] | None = None) -> S3Server:
    """s3rver on a free loopback port, over https when given `tls` = (key.pem, cert.pem)."""
    binary = need_binary("s3rver")
    port = free_port()
    https = ["--key", str(tls[0]), "--cert", str(tls[1])] if tls else []
    service = Service(
        "s3rver",
        [
            binary,
            "--directory",
            str(data_dir),
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
            "--silent",
            "--no-vhost-buckets",  # path-style only, whatever Host a test sends
            *https,
        ],
        log_dir,
        # Node 20 needs the legacy provider for s3rver's md5 use, else ListObjectsV2 fails.
        env={"NODE_OPTIONS": "--openssl-legacy-provider"},
    )
    service.wait_port(port)
    endpoint = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    ca_bundle = str(tls[1]) if tls else None
    return S3Server("s3rver", endpoint, "S3RVER", "S3RVER", service, ca_bundle=ca_bundle)


def start_moto(log_dir: Path) -> S3Server:
    beside_python = Path(sys.executable).with_name("moto_server")  # venv not on PATH
    binary = str(beside_python) if beside_python.exists() else need_binary("moto_server")
    port = free_port()
    service = Service("moto_server", [binary, "-H", "127.0.0.1", "-p", str(port)], log_dir)
    service.wait_port(port)
    return S3Server("moto", f"http://127.0.0.1:{port}", "testing", "testing", service)


@pytest.fixture(scope="session")
def s3rver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    base = tmp_path_factory.mktemp("s3rver")
    (base / "data").mkdir()
    yield from serving(start_s3rver(base, base / "data"))


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    yield from serving(start_moto(tmp_path_factory.mktemp("moto")))
