"""Fixtures shared by the fusion_client tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fusion_client.s3 import S3Client
from tests.support.s3servers import S3Server, moto_s3, s3rver

__all__ = ["moto_s3", "s3rver"]

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
