"""Environment settings of the S3 client: region, endpoint, addressing style, SSE, retries."""

from __future__ import annotations

import pytest

from fusion_client.s3.config import S3Config


def test_region_precedence():
    assert S3Config.from_env({}).region == "us-east-1"
    assert S3Config.from_env({"AWS_DEFAULT_REGION": "eu-west-1"}).region == "eu-west-1"
    env = {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-2"}
    assert S3Config.from_env(env).region == "eu-west-2"
    assert S3Config.from_env({**env, "FUSION_AWS_REGION": "ap-south-1"}).region == "ap-south-1"


def test_endpoint_precedence_and_bare_hosts_mean_https():
    env = {"AWS_ENDPOINT_URL": "http://generic:1", "AWS_ENDPOINT_URL_S3": "http://s3only:2"}
    assert S3Config.from_env(env).custom_endpoint().host == "s3only"
    env["AWS_S3_ENDPOINT"] = "minio.example:9000"
    endpoint = S3Config.from_env(env).custom_endpoint()
    assert (endpoint.scheme, endpoint.host, endpoint.port) == ("https", "minio.example", 9000)


def test_aws_buckets_use_virtual_host_addressing():
    target = S3Config(region="eu-west-1").target("my-bucket", "a b/c+d", "eu-west-1")
    assert target.host_header == "my-bucket.s3.eu-west-1.amazonaws.com"
    assert target.path == "/a%20b/c%2Bd"
    assert target.endpoint.scheme == "https" and target.endpoint.port == 443


@pytest.mark.parametrize("bucket", ["my.dotted.bucket", "Upper_Case", "ab"])
def test_buckets_that_are_not_dns_labels_use_path_style(bucket):
    target = S3Config(region="us-east-1").target(bucket, "k", "us-east-1")
    assert target.host_header == "s3.us-east-1.amazonaws.com"
    assert target.path == f"/{bucket}/k"


def test_custom_endpoints_default_to_path_style_unless_told_otherwise():
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000/base/"}
    target = S3Config.from_env(env).target("bucket", "key", "us-east-1")
    assert (target.host_header, target.path) == ("127.0.0.1:9000", "/base/bucket/key")
    assert S3Config.from_env(env).target("bucket", None, "us-east-1").path == "/base/bucket"
    env = {"AWS_ENDPOINT_URL": "https://storage.example", "FUSION_S3_PATH_STYLE": "false"}
    target = S3Config.from_env(env).target("bucket", "key", "us-east-1")
    assert (target.host_header, target.path) == ("bucket.storage.example", "/key")
    forced = S3Config.from_env({"FUSION_S3_PATH_STYLE": "true"})
    assert forced.target("bucket", "k", "us-east-1").path == "/bucket/k"


def test_china_regions_use_the_cn_domain():
    target = S3Config(region="cn-north-1").target("b-1", "k", "cn-north-1")
    assert target.host_header == "b-1.s3.cn-north-1.amazonaws.com.cn"


def test_payload_signing_defaults_to_http_only():
    http = S3Config.from_env({"AWS_ENDPOINT_URL": "http://h:1"})
    https = S3Config.from_env({"AWS_ENDPOINT_URL": "https://h"})
    assert http.payload_signed(http.custom_endpoint()) is True
    assert https.payload_signed(https.custom_endpoint()) is False
    forced = S3Config.from_env({"AWS_ENDPOINT_URL": "https://h", "FUSION_S3_SIGN_PAYLOAD": "1"})
    assert forced.payload_signed(forced.custom_endpoint()) is True


def test_sse_settings():
    assert S3Config.from_env({"FUSION_AWS_SERVER_SIDE_ENCRYPTION": "AES256"}).sse == "AES256"
    kms = S3Config.from_env({"FUSION_AWS_SSEKMS_KEY_ID": "arn:aws:kms:key/1"})
    assert (kms.sse, kms.sse_kms_key_id) == ("aws:kms", "arn:aws:kms:key/1")


@pytest.mark.parametrize(
    "env",
    [
        {"FUSION_AWS_SERVER_SIDE_ENCRYPTION": "rot13"},
        {"FUSION_S3_PATH_STYLE": "sometimes"},
        {"FUSION_TAGS": "[*]"},
    ],
)
def test_bad_settings_are_rejected_with_the_variable_name(env):
    name = next(iter(env))
    with pytest.raises(ValueError, match=name):
        S3Config.from_env(env)


def test_retry_delays_grow_exponentially_with_full_jitter_and_a_cap():
    policy = S3Config.from_env(
        {"FUSION_S3_RETRY_BASE_DELAY": "0.5", "FUSION_S3_RETRY_MAX_DELAY": "3"}
    ).retry
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (10, 3.0)]:
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap / 2  # jittered over the whole range, not fixed
