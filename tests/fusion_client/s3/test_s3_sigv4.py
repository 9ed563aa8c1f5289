"""Our SigV4 signer produces exactly botocore's S3 signatures, on awkward keys and queries."""

from __future__ import annotations

import datetime
import hashlib

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode

from fusion_client.s3 import sigv4
from fusion_client.s3.config import S3Config

AMZ_DATE = "20260124T101112Z"
KEYS = [
    "plain.txt",
    "dir with space/file.txt",
    "ü+ä=&*.txt",
    "a+b=c;d,e:f@g$h!i'j(k)l~m",
    "double//slash/x",
    "dots/./and/../x",
    "percent%20literal%2F",
    "tab\tand\nnewline",
    "emoji/\U0001f600",
]
QUERIES = [
    [],
    [("list-type", "2"), ("prefix", "dir with space/"), ("delimiter", "/")],
    [("continuation-token", "1a+b/c=="), ("list-type", "2"), ("start-after", "ü~x")],
    [("uploads", "")],
    [("partNumber", "7"), ("uploadId", "x+y/z==")],
]


@pytest.fixture(autouse=True)
def frozen_botocore_clock(monkeypatch):
    fixed = datetime.datetime(2026, 1, 24, 10, 11, 12)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: fixed)


def botocore_authorization(method, url, headers, body, token=None):
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    S3SigV4Auth(creds, "s3", "eu-west-3").add_auth(request)
    return request.headers["Authorization"], request.headers["X-Amz-Content-SHA256"]


def our_authorization(method, target, query, headers, payload_hash, token=None):
    headers = {"host": target.host_header, **headers, "x-amz-date": AMZ_DATE}
    headers["x-amz-content-sha256"] = payload_hash
    if token:
        headers["x-amz-security-token"] = token
    return sigv4.authorization(
        method=method,
        path=target.path,
        query=query,
        headers=headers,
        payload_hash=payload_hash,
        access_key="AKIDEXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region="eu-west-3",
        amz_date=AMZ_DATE,
    )


@pytest.mark.parametrize("path_style", [True, False], ids=["path", "vhost"])
@pytest.mark.parametrize("key", KEYS)
def test_object_request_signature_equals_botocore(key, path_style):
    config = S3Config(region="eu-west-3", path_style=path_style)
    target = config.target("my-bucket", key, "eu-west-3")
    # botocore's serializer encodes greedy {Key+} labels this way: once, keeping `/` and `~`.
    assert target.path.endswith("/" + percent_encode(key, safe="/~"))
    headers = {"Range": "bytes=0-99", "If-Match": '"abc"'}
    url = f"https://{target.host_header}{target.path}"
    theirs, payload = botocore_authorization("GET", url, headers, b"")
    assert payload == sigv4.EMPTY_SHA256
    assert our_authorization("GET", target, "", headers, payload) == theirs


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: "&".join(k for k, _ in q) or "none")
def test_query_signature_equals_botocore(query):
    config = S3Config(region="eu-west-3", endpoint_url="http://127.0.0.1:9000")
    target = config.target("bucket", None, "eu-west-3")
    canonical = sigv4.canonical_query(query)
    url = f"http://{target.host_header}{target.path}" + (f"?{canonical}" if canonical else "")
    theirs, payload = botocore_authorization("GET", url, {}, b"")
    assert our_authorization("GET", target, canonical, {}, payload) == theirs


def test_signed_body_and_session_token_equal_botocore():
    config = S3Config(region="eu-west-3", endpoint_url="http://127.0.0.1:9000")
    target = config.target("bucket", "key with space+plus", "eu-west-3")
    body = b"some body bytes"
    query = sigv4.canonical_query([("partNumber", "1"), ("uploadId", "id+/=")])
    headers = {"x-amz-meta-mode": "644", "Content-Type": "application/octet-stream"}
    url = f"http://{target.host_header}{target.path}?{query}"
    theirs, payload = botocore_authorization("PUT", url, headers, body, token="TOKEN/+=")
    assert payload == hashlib.sha256(body).hexdigest()
    assert our_authorization("PUT", target, query, headers, payload, token="TOKEN/+=") == theirs


def test_aws_documented_example_signature():
    """The GET /test.txt example from the AWS SigV4 for S3 documentation."""
    empty = sigv4.EMPTY_SHA256
    auth = sigv4.authorization(
        method="GET",
        path="/test.txt",
        query="",
        headers={
            "Host": "examplebucket.s3.amazonaws.com",
            "Range": "bytes=0-9",
            "x-amz-content-sha256": empty,
            "x-amz-date": "20130524T000000Z",
        },
        payload_hash=empty,
        access_key="AKIAIOSFODNN7EXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        amz_date="20130524T000000Z",
    )
    assert auth.endswith(
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
