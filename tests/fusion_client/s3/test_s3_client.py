"""S3Client against real S3 servers (moto for semantics, s3rver for sizes and signatures),
cross-checked with boto3."""

from __future__ import annotations

import mmap
import os

import pytest

from fusion_client.s3 import (
    NoSuchBucket,
    NoSuchKey,
    PreconditionFailed,
    S3Client,
)
from tests.fusion_client.conftest import make_client
from tests.support.s3servers import S3Server

pytestmark = pytest.mark.e2e

AWKWARD_KEYS = [
    "plain.txt",
    "dir with space/file name.txt",
    "unicode/ü+ä=€~.txt",
    "a+b=c&d;e,f:g@h$i!j'k(l)m*n.txt",
    "percent%20literal",
]
# s3rver (like boto3 against it) cannot store these: it 404s `//` and normalises dot segments.
# (Neither server can route a key containing a newline, so that one is only signature-tested.)
MOTO_ONLY_KEYS = ["double//slash/x", "dots/./and/../x", "tab\tkey"]


def test_put_then_head_and_get_agree_with_boto3(moto_s3: S3Server, moto_client: S3Client):
    bucket = moto_s3.new_bucket()
    etag = moto_client.put_object(bucket, "a/b.txt", b"hello world", metadata={"mode": "644"})
    info = moto_client.head_object(bucket, "a/b.txt")
    theirs = moto_s3.boto3_client().head_object(Bucket=bucket, Key="a/b.txt")
    assert info.size == 11
    assert info.etag == etag == theirs["ETag"].strip('"')
    assert info.metadata == {"mode": "644"}
    assert info.last_modified_ns // 10**9 == int(theirs["LastModified"].timestamp())
    buf = bytearray(11)
    assert moto_client.get_range_into(bucket, "a/b.txt", 0, memoryview(buf), if_match=etag) == 11
    assert buf == b"hello world"


@pytest.mark.parametrize("server_name", ["moto_s3", "s3rver"])
def test_awkward_keys_round_trip(server_name: str, request: pytest.FixtureRequest):
    server: S3Server = request.getfixturevalue(server_name)
    client = make_client(server)
    bucket = server.new_bucket()
    keys = AWKWARD_KEYS + (MOTO_ONLY_KEYS if server.name == "moto" else [])
    for key in keys:
        client.put_object(bucket, key, key.encode())
    theirs = server.boto3_client().list_objects_v2(Bucket=bucket)
    assert sorted(o["Key"] for o in theirs["Contents"]) == sorted(keys)
    for key in keys:
        buf = bytearray(100)
        n = client.get_range_into(bucket, key, 0, memoryview(buf), if_match=None)
        assert bytes(buf[:n]) == key.encode()
        assert client.head_object(bucket, key).size == len(key.encode())


def test_ranged_read_returns_short_count_only_at_end_of_object(
    s3rver: S3Server, s3rver_client: S3Client
):
    bucket = s3rver.new_bucket()
    data = os.urandom(3 * 2**20 + 123)
    s3rver.boto3_client().put_object(Bucket=bucket, Key="big", Body=data)
    buf = bytearray(2**20)
    assert s3rver_client.get_range_into(bucket, "big", 2**20, memoryview(buf), if_match=None) == (
        2**20
    )
    assert buf == data[2**20 : 2**21]
    n = s3rver_client.get_range_into(bucket, "big", 3 * 2**20, memoryview(buf), if_match=None)
    assert n == 123
    assert buf[:123] == data[3 * 2**20 :]
    assert (
        s3rver_client.get_range_into(bucket, "big", len(data), memoryview(buf), if_match=None) == 0
    )


def test_get_with_stale_etag_raises_precondition_failed(moto_s3: S3Server, moto_client: S3Client):
    bucket = moto_s3.new_bucket()
    old = moto_client.put_object(bucket, "k", b"version one")
    moto_client.put_object(bucket, "k", b"version two")
    with pytest.raises(PreconditionFailed) as exc:
        moto_client.get_range_into(bucket, "k", 0, memoryview(bytearray(4)), if_match=old)
    assert exc.value.status == 412
    assert "s3://" in str(exc.value)


def test_missing_key_and_bucket_raise_specific_errors(moto_s3: S3Server, moto_client: S3Client):
    bucket = moto_s3.new_bucket()
    with pytest.raises(NoSuchKey):
        moto_client.head_object(bucket, "nope")
    with pytest.raises(NoSuchKey):
        moto_client.get_range_into(bucket, "nope", 0, memoryview(bytearray(4)), if_match=None)
    with pytest.raises(NoSuchBucket):
        moto_client.head_bucket("no-such-bucket-here")
    with pytest.raises(NoSuchBucket):
        moto_client.list_page("no-such-bucket-here", "")
    moto_client.head_bucket(bucket)


@pytest.mark.parametrize("server_name", ["moto_s3", "s3rver"])
def test_list_pages_with_delimiter_and_continuation(server_name: str, request):
    server: S3Server = request.getfixturevalue(server_name)
    client = make_client(server)
    bucket = server.new_bucket()
    keys = [f"dir/f{i:02d}" for i in range(5)] + ["dir/sub/x", "dir/sub2/y", "top", "a b+c"]
    for key in keys:
        client.put_object(bucket, key, b"x")
    first = client.list_page(bucket, "dir/", max_keys=3)
    assert [o.key for o in first.objects] == ["dir/f00", "dir/f01", "dir/f02"]
    assert first.next_token
    second = client.list_page(bucket, "dir/", token=first.next_token)
    assert [o.key for o in second.objects] == ["dir/f03", "dir/f04"]
    assert second.prefixes == ["dir/sub/", "dir/sub2/"]
    assert second.next_token is None
    root = client.list_page(bucket, "")
    assert [o.key for o in root.objects] == ["a b+c", "top"]
    assert root.prefixes == ["dir/"]
    flat = client.list_page(bucket, "", delimiter=None)
    assert sorted(o.key for o in flat.objects) == sorted(keys)
    assert all(o.size == 1 and o.etag and o.last_modified_ns for o in flat.objects)


def test_ranged_read_lands_in_an_mmap_slice(s3rver: S3Server, s3rver_client: S3Client, tmp_path):
    bucket = s3rver.new_bucket()
    data = os.urandom(2**20)
    s3rver.boto3_client().put_object(Bucket=bucket, Key="obj", Body=data)
    with open(tmp_path / "cache", "w+b") as f:
        f.truncate(4 * 2**20)
        with mmap.mmap(f.fileno(), 4 * 2**20) as mapped:
            view = memoryview(mapped)
            n = s3rver_client.get_range_into(
                bucket, "obj", 4096, view[2**20 : 2**20 + 8192], if_match=None
            )
            assert n == 8192 and bytes(view[2**20 : 2**20 + 8192]) == data[4096 : 4096 + 8192]
            view.release()


def test_anonymous_access_sends_unsigned_requests(moto_s3: S3Server):
    bucket = moto_s3.new_bucket()
    moto_s3.boto3_client().put_object(
        Bucket=bucket, Key="public", Body=b"open data", ACL="public-read"
    )
    env = {"AWS_ENDPOINT_URL": moto_s3.endpoint, "FUSION_AWS_ANONYMOUS": "true"}
    client = S3Client.from_env(env)
    assert client.head_object(bucket, "public").size == 9
