"""Multipart uploads, copies and deletes through S3Client against moto, checked with boto3."""

from __future__ import annotations

import os

import pytest

from fusion_client.s3 import S3Client, S3Error
from fusion_client.s3 import client as client_module
from fusion_client.s3.client import multipart_etag
from tests.fusion_client.conftest import make_client
from tests.support.s3servers import S3Server

pytestmark = pytest.mark.e2e

PART = 5 * 2**20


def test_multipart_upload_etag_matches_s3s_formula(moto_s3: S3Server, moto_client: S3Client):
    bucket = moto_s3.new_bucket()
    data = os.urandom(PART + 1234)
    upload_id = moto_client.create_multipart_upload(bucket, "mp", metadata={"uid": "1000"})
    parts = [
        (1, moto_client.upload_part(bucket, "mp", upload_id, 1, memoryview(data)[:PART])),
        (2, moto_client.upload_part(bucket, "mp", upload_id, 2, data[PART:])),
    ]
    etag = moto_client.complete_multipart_upload(bucket, "mp", upload_id, parts)
    assert etag == multipart_etag([e for _, e in parts])
    head = moto_s3.boto3_client().head_object(Bucket=bucket, Key="mp")
    assert head["ETag"].strip('"') == etag and head["Metadata"] == {"uid": "1000"}
    assert moto_s3.boto3_client().get_object(Bucket=bucket, Key="mp")["Body"].read() == data
    # A Complete retried after its first attempt succeeded finds the object and agrees.
    assert moto_client.complete_multipart_upload(bucket, "mp", upload_id, parts) == etag


def test_small_non_final_part_is_refused_by_s3(moto_s3: S3Server, moto_client: S3Client):
    bucket = moto_s3.new_bucket()
    upload_id = moto_client.create_multipart_upload(bucket, "small")
    parts = [(n, moto_client.upload_part(bucket, "small", upload_id, n, b"x" * 10)) for n in (1, 2)]
    with pytest.raises(S3Error, match="EntityTooSmall"):
        moto_client.complete_multipart_upload(bucket, "small", upload_id, parts)


def test_abort_removes_the_upload_and_is_idempotent(moto_s3: S3Server, moto_client: S3Client):
    bucket = moto_s3.new_bucket()
    upload_id = moto_client.create_multipart_upload(bucket, "gone")
    moto_client.upload_part(bucket, "gone", upload_id, 1, b"data")
    moto_client.abort_multipart_upload(bucket, "gone", upload_id)
    moto_client.abort_multipart_upload(bucket, "gone", upload_id)
    assert not moto_s3.boto3_client().list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_copy_keeps_or_replaces_metadata_and_tags_the_destination(moto_s3: S3Server):
    client = make_client(moto_s3, FUSION_TAGS="[*.bam](kind=bam)")
    bucket = moto_s3.new_bucket()
    client.put_object(bucket, "src.txt", b"payload", metadata={"mode": "600"})
    client.copy_object(bucket, "src.txt", bucket, "kept.txt")
    client.copy_object(bucket, "src.txt", bucket, "out.bam", metadata={"mode": "644"})
    s3 = moto_s3.boto3_client()
    assert s3.head_object(Bucket=bucket, Key="kept.txt")["Metadata"] == {"mode": "600"}
    assert s3.head_object(Bucket=bucket, Key="out.bam")["Metadata"] == {"mode": "644"}
    assert s3.get_object_tagging(Bucket=bucket, Key="out.bam")["TagSet"] == [
        {"Key": "kind", "Value": "bam"}
    ]
    assert s3.get_object(Bucket=bucket, Key="out.bam")["Body"].read() == b"payload"


def test_copy_above_the_single_copy_limit_uses_part_copies(
    moto_s3: S3Server, moto_client: S3Client, monkeypatch
):
    monkeypatch.setattr(client_module, "MAX_COPY_SIZE", PART)
    monkeypatch.setattr(client_module, "COPY_PART_SIZE", PART)
    bucket = moto_s3.new_bucket()
    data = os.urandom(2 * PART + 7)
    moto_client.put_object(bucket, "big", data, metadata={"mode": "640"})
    etag = moto_client.copy_object(bucket, "big", bucket, "big-copy")
    assert etag.endswith("-3")
    s3 = moto_s3.boto3_client()
    assert s3.get_object(Bucket=bucket, Key="big-copy")["Body"].read() == data
    assert s3.head_object(Bucket=bucket, Key="big-copy")["Metadata"] == {"mode": "640"}


def test_delete_object_and_delete_objects(moto_s3: S3Server, moto_client: S3Client):
    bucket = moto_s3.new_bucket()
    keys = [f"d/{i}" for i in range(5)]
    for key in keys:
        moto_client.put_object(bucket, key, b"x")
    moto_client.delete_object(bucket, keys[0])
    moto_client.delete_object(bucket, "never-existed")
    moto_client.delete_objects(bucket, [*keys[1:], "never-existed-either"])
    assert "Contents" not in moto_s3.boto3_client().list_objects_v2(Bucket=bucket)


def test_kms_encryption_applies_to_puts_uploads_and_copies(moto_s3: S3Server):
    key_id = "arn:aws:kms:us-east-1:123456789012:key/fusion-test"
    client = make_client(moto_s3, FUSION_AWS_SSEKMS_KEY_ID=key_id)
    bucket = moto_s3.new_bucket()
    client.put_object(bucket, "put", b"x")
    upload_id = client.create_multipart_upload(bucket, "mp")
    part = client.upload_part(bucket, "mp", upload_id, 1, b"y")
    client.complete_multipart_upload(bucket, "mp", upload_id, [(1, part)])
    client.copy_object(bucket, "put", bucket, "copy")
    s3 = moto_s3.boto3_client()
    for key in ("put", "mp", "copy"):
        head = s3.head_object(Bucket=bucket, Key=key)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key_id), key


def test_storage_class_of_new_objects(moto_s3: S3Server):
    client = make_client(moto_s3, FUSION_AWS_STORAGE_CLASS="STANDARD_IA")
    bucket = moto_s3.new_bucket()
    client.put_object(bucket, "put", b"x")
    upload_id = client.create_multipart_upload(bucket, "mp")
    part = client.upload_part(bucket, "mp", upload_id, 1, b"y")
    client.complete_multipart_upload(bucket, "mp", upload_id, [(1, part)])
    s3 = moto_s3.boto3_client()
    for key in ("put", "mp"):
        assert s3.head_object(Bucket=bucket, Key=key)["StorageClass"] == "STANDARD_IA", key


@pytest.mark.parametrize(
    ("server_name", "source"),
    [
        ("moto_s3", "dir with space/ü+ä=&.txt"),
        # s3rver (with boto3 too) cannot find copy sources whose keys hold `+`, `=` or `&`.
        ("s3rver", "dir with space/ü.txt"),
    ],
)
def test_copy_of_awkward_keys(server_name: str, source: str, request: pytest.FixtureRequest):
    server: S3Server = request.getfixturevalue(server_name)
    client = make_client(server)
    bucket = server.new_bucket()
    client.put_object(bucket, source, b"awkward")
    client.copy_object(bucket, source, bucket, "to/a+b c%20d.txt")
    got = server.boto3_client().get_object(Bucket=bucket, Key="to/a+b c%20d.txt")
    assert got["Body"].read() == b"awkward"
