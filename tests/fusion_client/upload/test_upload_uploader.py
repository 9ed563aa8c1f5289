"""The eager uploader against moto (which enforces S3's multipart rules), checked with boto3."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fusion_client.s3 import S3Client
from fusion_client.upload import Uploader, part_span
from tests.fusion_client.conftest import make_client
from tests.support import wait_until
from tests.support.s3servers import S3Server

PART = 5 * 2**20


class StagingFile:
    """What the file system does: write to the staging file, then tell the upload."""

    def __init__(self, path: Path, uploader: Uploader, bucket: str, key: str, **kw) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.upload = uploader.begin(bucket, key, self.fd, **kw)

    def write(self, offset: int, data: bytes) -> None:
        os.pwrite(self.fd, data, offset)
        self.upload.written(offset, len(data))

    def contents(self) -> bytes:
        return os.pread(self.fd, os.fstat(self.fd).st_size, 0)

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def bucket(moto_s3: S3Server) -> str:
    return moto_s3.new_bucket("upload")


@pytest.fixture
def uploader(moto_client: S3Client) -> Iterator[Uploader]:
    up = Uploader(moto_client, part_size=PART, workers=4)
    yield up
    up.shutdown()


def stored(server: S3Server, bucket: str, key: str) -> bytes:
    return server.boto3_client().get_object(Bucket=bucket, Key=key)["Body"].read()


def test_small_file_is_one_put_with_metadata(moto_s3, bucket, uploader, tmp_path):
    f = StagingFile(tmp_path / "s", uploader, bucket, "small.txt", metadata={"mode": "100644"})
    f.write(0, b"hello ")
    f.write(6, b"world")
    info = f.upload.finish()
    assert info is not None and info.size == 11
    head = moto_s3.boto3_client().head_object(Bucket=bucket, Key="small.txt")
    assert head["ETag"].strip('"') == info.etag
    assert head["Metadata"] == {"mode": "100644"}
    assert stored(moto_s3, bucket, "small.txt") == b"hello world"
    assert (uploader.stats.objects, uploader.stats.parts) == (1, 1)


def test_empty_file_becomes_empty_object(moto_s3, bucket, uploader, tmp_path):
    f = StagingFile(tmp_path / "e", uploader, bucket, "empty")
    assert f.upload.finish().size == 0
    assert stored(moto_s3, bucket, "empty") == b""


def test_parts_upload_while_writing_and_finish_sends_only_the_tail(
    moto_s3, bucket, uploader, tmp_path
):
    f = StagingFile(tmp_path / "big", uploader, bucket, "big.bin")
    data = os.urandom(2 * PART + 1000)
    for offset in range(0, 2 * PART, 2**20):
        f.write(offset, data[offset : offset + 2**20])
    wait_until(lambda: uploader.stats.parts == 2, 30, "two eager parts")
    f.write(2 * PART, data[2 * PART :])
    info = f.upload.finish()
    assert info.etag.endswith("-3")
    assert stored(moto_s3, bucket, "big.bin") == data
    assert uploader.stats.parts == 3 and uploader.stats.restarts == 0
    assert uploader.stats.bytes_uploaded == len(data)


def test_out_of_order_writes_upload_once_the_prefix_is_contiguous(
    moto_s3, bucket, uploader, tmp_path
):
    f = StagingFile(tmp_path / "o", uploader, bucket, "ooo.bin")
    data = os.urandom(PART + 10)
    f.write(PART // 2, data[PART // 2 :])
    assert uploader.stats.parts == 0
    f.write(0, data[: PART // 2])
    wait_until(lambda: uploader.stats.parts == 1, 30, "the first part")
    f.upload.finish()
    assert stored(moto_s3, bucket, "ooo.bin") == data
    assert uploader.stats.restarts == 0


def test_rewrite_below_sent_parts_restarts_from_the_staging_file(
    moto_s3, bucket, uploader, tmp_path
):
    f = StagingFile(tmp_path / "r", uploader, bucket, "rewrite.bin")
    f.write(0, os.urandom(PART + 100))
    wait_until(lambda: uploader.stats.parts == 1, 30, "the first part")
    f.write(10, b"REWRITTEN")
    f.upload.finish()
    assert stored(moto_s3, bucket, "rewrite.bin") == f.contents()
    assert uploader.stats.restarts == 1


def test_truncated_staging_file_is_uploaded_at_its_final_size(moto_s3, bucket, uploader, tmp_path):
    f = StagingFile(tmp_path / "t", uploader, bucket, "trunc.bin")
    f.write(0, os.urandom(2 * PART))
    wait_until(lambda: uploader.stats.parts >= 1, 30, "an eager part")
    os.ftruncate(f.fd, 1000)
    info = f.upload.finish()
    assert info.size == 1000
    assert stored(moto_s3, bucket, "trunc.bin") == f.contents()


def test_writes_after_finish_are_uploaded_by_the_next_finish(moto_s3, bucket, uploader, tmp_path):
    f = StagingFile(tmp_path / "a", uploader, bucket, "append.txt")
    f.write(0, b"first")
    first = f.upload.finish()
    assert f.upload.finish() is first  # nothing new: no second upload
    f.write(5, b" second")
    f.upload.finish()
    assert stored(moto_s3, bucket, "append.txt") == b"first second"
    assert uploader.stats.objects == 2


def test_abort_leaves_no_object_and_no_multipart_upload(moto_s3, bucket, uploader, tmp_path):
    f = StagingFile(tmp_path / "x", uploader, bucket, "aborted.bin")
    f.write(0, os.urandom(PART))
    wait_until(lambda: uploader.stats.parts == 1, 30, "the part")
    f.upload.abort()
    assert f.upload.finish() is None
    s3 = moto_s3.boto3_client()
    wait_until(
        lambda: not s3.list_multipart_uploads(Bucket=bucket).get("Uploads"),
        30,
        "the multipart upload to be aborted",
    )
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert uploader.wait_all(timeout=5) == []


def test_wait_all_finishes_files_left_open(moto_s3, bucket, uploader, tmp_path):
    f = StagingFile(tmp_path / "open", uploader, bucket, "left-open.txt")
    f.write(0, b"written but never closed")
    assert uploader.wait_all(timeout=30, open_grace=0.1) == []
    assert stored(moto_s3, bucket, "left-open.txt") == b"written but never closed"


def test_tags_and_encryption_from_the_environment(moto_s3, bucket, tmp_path):
    client = make_client(
        moto_s3,
        FUSION_TAGS="[.command.*|.exitcode](nextflow.io/metadata=true),[*](nextflow.io/temporary=true)",
        FUSION_AWS_SERVER_SIDE_ENCRYPTION="AES256",
    )
    up = Uploader(client, part_size=PART, workers=2)
    try:
        for key in ("work/ab/.command.sh", "work/ab/out.bam"):
            f = StagingFile(tmp_path / key.replace("/", "_"), up, bucket, key)
            f.write(0, b"x" * (PART + 1))  # multipart: tags and SSE go on CreateMultipartUpload
            f.upload.finish()
        f = StagingFile(tmp_path / "ec", up, bucket, "work/ab/.exitcode")
        f.write(0, b"0")
        f.upload.finish()
    finally:
        up.shutdown()
    s3 = moto_s3.boto3_client()

    def tags(key: str) -> dict[str, str]:
        return {
            t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        }

    assert tags("work/ab/.command.sh") == {"nextflow.io/metadata": "true"}
    assert tags("work/ab/.exitcode") == {"nextflow.io/metadata": "true"}
    assert tags("work/ab/out.bam") == {"nextflow.io/temporary": "true"}
    head = s3.head_object(Bucket=bucket, Key="work/ab/out.bam")
    assert head["ServerSideEncryption"] == "AES256"


def test_part_sizes_double_every_thousand_parts():
    assert part_span(1, PART) == (0, PART)
    assert part_span(1000, PART) == (999 * PART, PART)
    assert part_span(1001, PART) == (1000 * PART, 2 * PART)
    assert part_span(2001, PART) == (1000 * PART + 2000 * PART, 4 * PART)
    offset, size = part_span(10_000, 8 * 2**20)
    assert offset + size > 5 * 2**40  # 10,000 parts cover S3's 5 TiB maximum
