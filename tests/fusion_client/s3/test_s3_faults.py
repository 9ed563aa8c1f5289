"""S3Client retry behaviour with faults injected between it and a real s3rver."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate

import pytest

from fusion_client.s3 import NoSuchKey, PreconditionFailed, S3Client, S3ConnectionError, S3Error
from tests.fusion_client.conftest import through_proxy
from tests.support import free_port
from tests.support.faults import FaultProxy
from tests.support.s3servers import S3Server

SIZE = 3 * 2**20 + 17  # the object bucket_with_object puts


@pytest.fixture
def bucket_with_object(s3rver: S3Server) -> tuple[str, bytes]:
    bucket = s3rver.new_bucket("faults")
    data = os.urandom(SIZE)
    s3rver.boto3_client().put_object(Bucket=bucket, Key="obj", Body=data)
    return bucket, data


def read_all(client, bucket: str, size: int) -> bytes:
    buf = bytearray(size)
    assert client.get_range_into(bucket, "obj", 0, memoryview(buf), if_match=None) == size
    return bytes(buf)


def test_server_errors_and_throttling_are_retried(s3rver, fault_proxy, bucket_with_object):
    bucket, data = bucket_with_object
    client = through_proxy(s3rver, fault_proxy)
    fault_proxy.fail_next(2)
    fault_proxy.fail_next(1, status=503, code="SlowDown")
    assert read_all(client, bucket, len(data)) == data
    assert client.stats.retries == 3
    assert fault_proxy.pending_faults() == 0


def test_retries_are_bounded_and_the_error_names_status_code_and_object(
    s3rver, fault_proxy, bucket_with_object
):
    bucket, _ = bucket_with_object
    client = through_proxy(s3rver, fault_proxy, FUSION_S3_MAX_ATTEMPTS="3")
    fault_proxy.fail_next(10)
    with pytest.raises(S3Error) as exc:
        client.head_object(bucket, "obj")
    assert exc.value.status == 500 and exc.value.code == "HTTP500"
    assert f"s3://{bucket}/obj" in str(exc.value)
    assert fault_proxy.requests == 3


def test_error_body_code_and_request_id_are_reported(s3rver, fault_proxy, bucket_with_object):
    bucket, _ = bucket_with_object
    client = through_proxy(s3rver, fault_proxy, FUSION_S3_MAX_ATTEMPTS="1")
    fault_proxy.fail_next(1, status=503, code="SlowDown")
    with pytest.raises(S3Error) as exc:
        client.list_page(bucket, "")
    assert (exc.value.status, exc.value.code) == (503, "SlowDown")
    assert exc.value.request_id and exc.value.request_id.startswith("FAULT")


def test_client_errors_are_not_retried(s3rver, fault_proxy, bucket_with_object):
    bucket, _ = bucket_with_object
    client = through_proxy(s3rver, fault_proxy)
    with pytest.raises(NoSuchKey):
        client.head_object(bucket, "missing")
    assert fault_proxy.requests == 1 and client.stats.retries == 0


def test_body_cut_mid_read_resumes_where_it_stopped(s3rver, fault_proxy, bucket_with_object):
    bucket, data = bucket_with_object
    client = through_proxy(s3rver, fault_proxy)
    fault_proxy.drop_next_responses(2, method="GET")
    assert read_all(client, bucket, len(data)) == data
    # Each resumed request asked only for what was missing: half, then a quarter, then the rest.
    assert client.stats.bytes_received == len(data)
    assert fault_proxy.requests == 3


def test_connection_cut_mid_request_is_retried(s3rver, fault_proxy, bucket_with_object):
    bucket, _ = bucket_with_object
    client = through_proxy(s3rver, fault_proxy)
    body = os.urandom(2**20)
    fault_proxy.drop_next_requests(1, method="PUT")
    etag = client.put_object(bucket, "put", body)
    got = s3rver.boto3_client().get_object(Bucket=bucket, Key="put")
    assert got["Body"].read() == body and got["ETag"].strip('"') == etag


def test_server_down_raises_connection_error_after_bounded_retries(
    s3rver, fault_proxy, bucket_with_object
):
    bucket, _ = bucket_with_object
    client = through_proxy(s3rver, fault_proxy, FUSION_S3_MAX_ATTEMPTS="4")
    fault_proxy.down = True
    with pytest.raises(S3ConnectionError) as exc:
        client.head_object(bucket, "obj")
    assert f"s3://{bucket}/obj" in str(exc.value)
    assert client.stats.retries == 3
    fault_proxy.down = False
    assert client.head_object(bucket, "obj").size == SIZE


def test_nothing_listening_is_a_connection_error(s3rver):
    env = s3rver.env(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
        FUSION_S3_MAX_ATTEMPTS="2",
        FUSION_S3_RETRY_BASE_DELAY="0.01",
    )
    with pytest.raises(S3ConnectionError, match="ConnectionRefusedError"):
        S3Client.from_env(env).head_bucket("b")


def test_region_redirect_re_signs_for_the_bucket_region(s3rver, fault_proxy, bucket_with_object):
    bucket, _ = bucket_with_object
    client = through_proxy(s3rver, fault_proxy)
    fault_proxy.fail_next(
        1, status=301, code="PermanentRedirect", headers={"x-amz-bucket-region": "eu-west-3"}
    )
    assert client.head_object(bucket, "obj").size == SIZE  # s3rver checks the eu-west-3 signature
    assert client.stats.retries == 0
    assert fault_proxy.requests == 2


def test_expired_session_token_reloads_credentials_once(s3rver, fault_proxy, bucket_with_object):
    bucket, _ = bucket_with_object
    client = through_proxy(s3rver, fault_proxy)
    fault_proxy.fail_next(1, status=400, code="ExpiredToken")
    assert client.list_page(bucket, "").objects
    fault_proxy.fail_next(1, status=400, method="HEAD")  # HEAD errors come without a code
    assert client.head_object(bucket, "obj").size == SIZE
    fault_proxy.fail_next(5, status=400, code="ExpiredToken")
    with pytest.raises(S3Error, match="ExpiredToken"):
        client.list_page(bucket, "")
    assert fault_proxy.pending_faults() == 3


def test_idle_connection_closed_by_the_server_is_replaced_without_a_retry(
    s3rver, fault_proxy, bucket_with_object
):
    bucket, _ = bucket_with_object
    client = through_proxy(s3rver, fault_proxy)
    client.head_object(bucket, "obj")
    fault_proxy.cut_open_connections()
    client.head_object(bucket, "obj")
    assert client.stats.retries == 0
    assert fault_proxy.connections == 2


def test_concurrent_readers_share_a_bounded_pool(s3rver, fault_proxy, bucket_with_object):
    bucket, data = bucket_with_object
    client = through_proxy(s3rver, fault_proxy, FUSION_S3_MAX_CONNECTIONS="3")
    chunk = 64 * 1024

    def read(index: int) -> bool:
        offset = (index * 7919 * chunk) % (len(data) - chunk)
        buf = bytearray(chunk)
        client.get_range_into(bucket, "obj", offset, memoryview(buf), if_match=None)
        return buf == data[offset : offset + chunk]

    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(read, range(200)))
    assert fault_proxy.connections <= 3


def test_resumed_read_never_mixes_versions(moto_s3: S3Server):
    """A read cut mid-body resumes with If-Match on the first response's ETag, so an object
    replaced in between fails with PreconditionFailed instead of returning spliced bytes."""
    bucket = moto_s3.new_bucket("faults")
    s3 = moto_s3.boto3_client()
    s3.put_object(Bucket=bucket, Key="obj", Body=b"1" * 2**20)
    proxy = FaultProxy(int(moto_s3.endpoint.rsplit(":", 1)[1]))
    try:
        client = through_proxy(moto_s3, proxy)
        proxy.drop_next_responses(
            1, method="GET", then=lambda: s3.put_object(Bucket=bucket, Key="obj", Body=b"2" * 2**20)
        )
        with pytest.raises(PreconditionFailed):
            client.get_range_into(bucket, "obj", 0, memoryview(bytearray(2**20)), if_match=None)
    finally:
        proxy.close()


def test_clock_skew_reported_by_s3_is_corrected(s3rver, fault_proxy, bucket_with_object):
    bucket, _ = bucket_with_object
    client = through_proxy(s3rver, fault_proxy)
    server_time = formatdate(time.time() + 120, usegmt=True)
    fault_proxy.fail_next(1, status=403, code="RequestTimeTooSkewed", headers={"Date": server_time})
    assert client.list_page(bucket, "").objects  # re-signed with S3's time and accepted
    assert 115 < client._clock_skew < 125
    assert client.stats.retries == 0


def test_requester_pays_header_is_sent_and_signed(s3rver, fault_proxy, bucket_with_object):
    bucket, _ = bucket_with_object
    client = through_proxy(s3rver, fault_proxy, FUSION_AWS_REQUESTER_PAYS="true")
    assert client.head_object(bucket, "obj").size == SIZE  # s3rver verified the signature
    assert b"x-amz-request-payer: requester" in fault_proxy.last_request_head.lower()
