"""Parsing S3's XML bodies, including url-encoded listings and errors inside 200 responses."""

from __future__ import annotations

import pytest

from fusion_client.s3 import S3Error
from fusion_client.s3.responses import (
    MalformedResponse,
    complete_multipart_body,
    error_fields,
    parse_etag_result,
    parse_list_objects_v2,
    parse_upload_id,
)

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def test_url_encoded_listing_is_decoded():
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult {NS}><Name>b</Name><Prefix>dir%2F</Prefix><KeyCount>2</KeyCount>
<MaxKeys>2</MaxKeys><Delimiter>%2F</Delimiter><IsTruncated>true</IsTruncated>
<EncodingType>url</EncodingType>
<Contents><Key>dir%2Fa+b%2Bc%C3%BC</Key><LastModified>2026-01-02T03:04:05.678Z</LastModified>
<ETag>&quot;0123&quot;</ETag><Size>42</Size><StorageClass>STANDARD</StorageClass></Contents>
<CommonPrefixes><Prefix>dir%2Fsub+dir%2F</Prefix></CommonPrefixes>
<NextContinuationToken>tok+/=</NextContinuationToken></ListBucketResult>""".encode()
    page = parse_list_objects_v2(body)
    (obj,) = page.objects
    assert (obj.key, obj.size, obj.etag) == ("dir/a b+cü", 42, "0123")
    assert obj.last_modified_ns == 1767323045_678000000
    assert page.prefixes == ["dir/sub dir/"]
    assert page.next_token == "tok+/="


def test_listing_without_encoding_type_is_taken_literally():
    body = f"""<ListBucketResult {NS}><IsTruncated>false</IsTruncated>
<Contents><Key>a+b%20c</Key><Size>1</Size><ETag>"e"</ETag></Contents>
<NextContinuationToken>ignored</NextContinuationToken></ListBucketResult>""".encode()
    page = parse_list_objects_v2(body)
    assert page.objects[0].key == "a+b%20c"
    assert page.next_token is None  # not truncated


def test_complete_multipart_error_inside_a_200_is_raised():
    body = b"""<?xml version="1.0"?>
<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message>
<RequestId>RID1</RequestId></Error>"""
    with pytest.raises(S3Error) as exc:
        parse_etag_result(body, "s3://b/k")
    assert (exc.value.code, exc.value.request_id) == ("InternalError", "RID1")
    assert "s3://b/k" in str(exc.value)


def test_result_etags_and_upload_ids():
    body = f"""<CompleteMultipartUploadResult {NS}><Location>x</Location><Bucket>b</Bucket>
<Key>k</Key><ETag>"abc-2"</ETag></CompleteMultipartUploadResult>""".encode()
    assert parse_etag_result(body, "") == "abc-2"
    body = f"<InitiateMultipartUploadResult {NS}><UploadId>U+1/=</UploadId>".encode()
    assert parse_upload_id(body + b"</InitiateMultipartUploadResult>", "") == "U+1/="


def test_garbage_bodies_raise_malformed_response():
    with pytest.raises(MalformedResponse):
        parse_list_objects_v2(b"<html>proxy error page")
    assert error_fields(b"<html>nope</html>") == ("", "", None)
    assert error_fields(b"Service Unavailable")[1] == "Service Unavailable"


def test_complete_body_lists_parts_in_order_with_quoted_etags():
    body = complete_multipart_body([(2, "bb"), (1, '"aa"')]).decode()
    assert body.index("<PartNumber>1</PartNumber><ETag>&quot;aa&quot;") < body.index(
        "<PartNumber>2</PartNumber><ETag>&quot;bb&quot;"
    )
