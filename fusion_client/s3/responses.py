"""Parsing of S3's XML bodies (pure functions over bytes).

S3 documents that a 200 response may still carry an <Error> (CompleteMultipartUpload,
CopyObject, UploadPartCopy), so every result parser checks the root element first.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import unquote_plus
from xml.sax.saxutils import escape

from fusion_client.store.model import ListPage, ObjectInfo, iso8601_ns, strip_etag

from .errors import S3Error, error_for


class MalformedResponse(S3Error):
    """The server answered with something that is not the XML S3 documents."""

    def __init__(self, what: str, body: bytes) -> None:
        super().__init__(0, "MalformedResponse", f"{what}: {body[:200]!r}")


def _root(body: bytes, what: str) -> ET.Element:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise MalformedResponse(f"unparsable {what} XML", body) from None
    for elem in root.iter():
        if isinstance(elem.tag, str) and "}" in elem.tag:
            elem.tag = elem.tag.rsplit("}", 1)[1]
    return root


def _text(elem: ET.Element, name: str, default: str = "") -> str:
    child = elem.find(name)
    if child is None:
        return default
    return child.text or ""


def error_fields(body: bytes) -> tuple[str, str, str | None]:
    """(code, message, request id) of an <Error> body; empty fields when it is not XML."""
    try:
        root = _root(body, "error")
    except MalformedResponse:
        return "", body[:200].decode("utf-8", "replace").strip(), None
    if root.tag != "Error":
        return "", "", None
    return _text(root, "Code"), _text(root, "Message"), _text(root, "RequestId") or None


def raise_if_error(root: ET.Element, status: int, resource: str) -> None:
    if root.tag == "Error":
        raise error_for(
            status,
            _text(root, "Code") or "InternalError",
            _text(root, "Message"),
            request_id=_text(root, "RequestId") or None,
            resource=resource,
        )


def parse_list_objects_v2(body: bytes) -> ListPage:
    root = _root(body, "ListObjectsV2")
    raise_if_error(root, 200, _text(root, "Name"))
    # Decode only when the server says it encoded: some S3 clones ignore encoding-type.
    url_encoded = _text(root, "EncodingType").lower() == "url"

    def decode(text: str) -> str:
        return unquote_plus(text) if url_encoded else text

    objects = [
        ObjectInfo(
            key=decode(_text(item, "Key")),
            size=int(_text(item, "Size", "0") or 0),
            etag=strip_etag(_text(item, "ETag")),
            last_modified_ns=iso8601_ns(_text(item, "LastModified"))
            if item.find("LastModified") is not None
            else 0,
        )
        for item in root.findall("Contents")
    ]
    prefixes = [decode(_text(item, "Prefix")) for item in root.findall("CommonPrefixes")]
    truncated = _text(root, "IsTruncated").lower() == "true"
    token = _text(root, "NextContinuationToken") or None
    return ListPage(objects, prefixes, token if truncated else None)


def parse_upload_id(body: bytes, resource: str) -> str:
    root = _root(body, "InitiateMultipartUpload")
    raise_if_error(root, 200, resource)
    upload_id = _text(root, "UploadId")
    if not upload_id:
        raise MalformedResponse("InitiateMultipartUpload without UploadId", body)
    return upload_id


def parse_etag_result(body: bytes, resource: str) -> str:
    """ETag of CompleteMultipartUpload, CopyObject or UploadPartCopy results (or their error)."""
    root = _root(body, "result")
    raise_if_error(root, 200, resource)
    etag = _text(root, "ETag")
    if not etag:
        raise MalformedResponse(f"{root.tag} without ETag", body)
    return strip_etag(etag)


def parse_delete_errors(body: bytes) -> list[tuple[str, str, str]]:
    """(key, code, message) for every key DeleteObjects could not delete."""
    root = _root(body, "DeleteObjects")
    raise_if_error(root, 200, "")
    return [(_text(e, "Key"), _text(e, "Code"), _text(e, "Message")) for e in root.findall("Error")]


_NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def complete_multipart_body(parts: list[tuple[int, str]]) -> bytes:
    items = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>&quot;{escape(strip_etag(etag))}&quot;</ETag>"
        "</Part>"
        for n, etag in sorted(parts)
    )
    return f"<CompleteMultipartUpload {_NS}>{items}</CompleteMultipartUpload>".encode()


def delete_objects_body(keys: list[str]) -> bytes:
    items = "".join(f"<Object><Key>{escape(k)}</Key></Object>" for k in keys)
    return f"<Delete {_NS}><Quiet>true</Quiet>{items}</Delete>".encode()
