"""A mount whose S3 answers 500s and cuts connections: reads and writes still come out whole."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fusion_client.conftest import FusionMount, mount_fusion
from tests.support.faults import FaultProxy
from tests.support.s3servers import S3Server

pytestmark = pytest.mark.fuse


@pytest.fixture(scope="module")
def proxy(s3rver: S3Server) -> Iterator[FaultProxy]:
    proxy = FaultProxy(int(s3rver.endpoint.rsplit(":", 1)[1]))
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def faulty_mount(
    s3rver: S3Server, proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FusionMount]:
    yield from mount_fusion(
        s3rver, tmp_path_factory.mktemp("fusion-faults"), AWS_ENDPOINT_URL=proxy.endpoint
    )


def test_reads_survive_server_errors_and_cut_responses(faulty_mount, proxy, s3rver):
    bucket = s3rver.new_bucket("faults")
    data = os.urandom(6 * 2**20 + 3)
    s3rver.boto3_client().put_object(Bucket=bucket, Key="in.bin", Body=data)
    path: Path = faulty_mount.path(bucket, "in.bin")
    path.stat()
    proxy.fail_next(2, method="GET")
    proxy.drop_next_responses(2, method="GET")
    assert path.read_bytes() == data
    assert proxy.pending_faults() == 0


def test_writes_survive_server_errors_and_cut_uploads(faulty_mount, proxy, s3rver):
    bucket = s3rver.new_bucket("faults")
    data = os.urandom(20 * 2**20)  # multipart: parts and the completion are retried
    faulty_mount.path(bucket).stat()
    proxy.fail_next(2, match="partNumber=")
    proxy.drop_next_requests(1, match="partNumber=")
    faulty_mount.path(bucket, "out.bin").write_bytes(data)
    assert proxy.pending_faults() == 0
    got = s3rver.boto3_client().get_object(Bucket=bucket, Key="out.bin")["Body"].read()
    assert got == data
