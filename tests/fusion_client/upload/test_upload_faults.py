"""Uploads survive S3 faults (500s, cut connections) intact, and fail loudly when S3 is down."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fusion_client.upload import Uploader, UploadError
from tests.fusion_client.conftest import through_proxy
from tests.support.faults import FaultProxy
from tests.support.s3servers import S3Server

PART = 5 * 2**20


@pytest.fixture
def uploader(s3rver: S3Server, fault_proxy: FaultProxy) -> Iterator[Uploader]:
    up = Uploader(through_proxy(s3rver, fault_proxy, FUSION_S3_MAX_ATTEMPTS="4"), part_size=PART)
    yield up
    up.shutdown()


def write_file(tmp_path: Path, uploader: Uploader, bucket: str, key: str, data: bytes):
    fd = os.open(tmp_path / key.replace("/", "_"), os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    upload = uploader.begin(bucket, key, fd)
    for offset in range(0, len(data), 2**20):
        chunk = data[offset : offset + 2**20]
        os.pwrite(fd, chunk, offset)
        upload.written(offset, len(chunk))
    return upload


def assert_stored(server: S3Server, bucket: str, key: str, data: bytes) -> None:
    got = server.boto3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()


def test_server_errors_on_parts_are_retried_and_the_object_is_intact(
    s3rver, fault_proxy, uploader, tmp_path
):
    bucket = s3rver.new_bucket("ufault")
    data = os.urandom(3 * PART + 12345)
    fault_proxy.fail_next(3, match="partNumber=")
    fault_proxy.fail_next(1, status=503, code="SlowDown", match="uploadId=")
    upload = write_file(tmp_path, uploader, bucket, "out/data.bin", data)
    upload.finish()
    assert_stored(s3rver, bucket, "out/data.bin", data)
    assert fault_proxy.pending_faults() == 0
    assert uploader.stats.retries >= 4
    assert uploader.stats.restarts == 0


def test_connections_cut_mid_part_are_retried_and_the_object_is_intact(
    s3rver, fault_proxy, uploader, tmp_path
):
    bucket = s3rver.new_bucket("ufault")
    data = os.urandom(2 * PART + 1)
    fault_proxy.drop_next_requests(2, match="partNumber=")
    upload = write_file(tmp_path, uploader, bucket, "cut.bin", data)
    upload.finish()
    assert_stored(s3rver, bucket, "cut.bin", data)
    assert fault_proxy.pending_faults() == 0


def test_s3_down_at_finish_raises_upload_error_naming_the_object(
    s3rver, fault_proxy, uploader, tmp_path
):
    bucket = s3rver.new_bucket("ufault")
    upload = write_file(tmp_path, uploader, bucket, "lost/file.txt", b"precious")
    fault_proxy.down = True
    with pytest.raises(UploadError, match=f"s3://{bucket}/lost/file.txt"):
        upload.finish()
    failures = uploader.wait_all(timeout=10)
    assert [(f.bucket, f.key) for f in failures] == [(bucket, "lost/file.txt")]
    assert "ConnectionError" in failures[0].cause or "Connection" in failures[0].cause
    assert uploader.stats.failures == 1
    # Once S3 is back, finishing again makes it durable and clears the failure.
    fault_proxy.down = False
    upload.finish()
    assert_stored(s3rver, bucket, "lost/file.txt", b"precious")
    assert uploader.wait_all(timeout=10) == []


def test_s3_down_during_eager_parts_is_reported_by_wait_all(
    s3rver, fault_proxy, uploader, tmp_path
):
    bucket = s3rver.new_bucket("ufault")
    fault_proxy.down = True
    write_file(tmp_path, uploader, bucket, "big/never.bin", os.urandom(PART + 10))
    failures = uploader.wait_all(timeout=60, open_grace=0.1)
    (failure,) = failures
    assert str(failure).startswith(f"s3://{bucket}/big/never.bin: ConnectionError: ")
    assert "s3://" not in failure.cause  # named once, not twice


def test_error_inside_a_200_complete_response_is_retried(s3rver, fault_proxy, uploader, tmp_path):
    bucket = s3rver.new_bucket("ufault")
    data = os.urandom(PART + 1)
    fault_proxy.fail_next(1, status=200, code="InternalError", method="POST", match="uploadId=")
    upload = write_file(tmp_path, uploader, bucket, "complete.bin", data)
    upload.finish()
    assert_stored(s3rver, bucket, "complete.bin", data)
    assert fault_proxy.pending_faults() == 0
    assert uploader.store.stats.retries_by_op == {"CompleteMultipartUpload": 1}


def test_a_failed_part_stops_the_parts_queued_behind_it(s3rver, fault_proxy, tmp_path):
    client = through_proxy(s3rver, fault_proxy, FUSION_S3_MAX_ATTEMPTS="2")
    uploader = Uploader(client, part_size=PART, workers=1)
    bucket = s3rver.new_bucket("ufault")
    fault_proxy.down = True
    try:
        write_file(tmp_path, uploader, bucket, "many-parts.bin", os.urandom(4 * PART))
        failures = uploader.wait_all(timeout=60, open_grace=0.5)
    finally:
        uploader.shutdown()
    assert len(failures) == 1
    # In the eager session and again in the restart at exit, the first part exhausted its
    # attempts (creating the upload) and the three parts queued behind it were never tried.
    assert client.stats.retries_by_op == {"CreateMultipartUpload": 2}


def test_many_concurrent_writers_with_random_patterns_and_faults_end_intact(
    s3rver, fault_proxy, uploader, tmp_path
):
    """Several files at once, written in order, slightly out of order or with rewrites, while
    S3 throws 500s and cuts connections: every object equals its staging file."""
    bucket = s3rver.new_bucket("ufault")
    fault_proxy.fail_next(6)
    fault_proxy.drop_next_requests(3, match="partNumber=")

    def writer(index: int) -> tuple[str, bytes]:
        rng = random.Random(index)
        key = f"concurrent/{index}.bin"
        path = tmp_path / f"w{index}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        upload = uploader.begin(bucket, key, fd)
        size = rng.randrange(PART // 2, 3 * PART)
        blocks = list(range(0, size, 256 * 1024))
        if index % 3 == 1:  # slightly out of order, as parallel FUSE writes arrive
            for i in range(0, len(blocks) - 1, 2):
                blocks[i], blocks[i + 1] = blocks[i + 1], blocks[i]
        for offset in blocks:
            chunk = rng.randbytes(min(256 * 1024, size - offset))
            os.pwrite(fd, chunk, offset)
            upload.written(offset, len(chunk))
            if index % 3 == 2 and rng.random() < 0.05:  # rewrite something already written
                back = rng.randrange(0, offset + 1)
                os.pwrite(fd, b"rewritten", back)
                upload.written(back, 9)
        upload.finish()
        contents = os.pread(fd, size + 9, 0)
        os.close(fd)
        return key, contents

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(writer, range(6)))
    for key, contents in results:
        assert_stored(s3rver, bucket, key, contents)
    assert uploader.wait_all(timeout=10) == []
    assert fault_proxy.pending_faults() == 0
