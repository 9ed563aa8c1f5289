"""Range requests on blobs (RFC 9110, distribution conformance expectations)."""

from __future__ import annotations

import pytest

from wave_proxy.server.ranges import ByteRange, Unsatisfiable, parse_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=500-1499", ByteRange(500, 1499)),
        ("bytes=500-", ByteRange(500, 1999)),
        ("bytes=-500", ByteRange(1500, 1999)),
        ("bytes=1500-5000", ByteRange(1500, 1999)),
        ("bytes=-5000", ByteRange(0, 1999)),
        ("BYTES = 0 - 0", ByteRange(0, 0)),
    ],
)
def test_single_ranges_resolve_against_the_size(header, expected):
    spec = parse_range(header)
    assert spec is not None and spec.resolve(2000) == expected


@pytest.mark.parametrize("header", [None, "", "items=0-1", "bytes=a-b", "bytes=-", "bytes=0-1,3-4"])
def test_ranges_we_do_not_understand_are_ignored(header):
    assert parse_range(header) is None


def test_last_before_first_is_unsatisfiable_whatever_the_size():
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=500-0")


@pytest.mark.parametrize("header", ["bytes=5000-10000", "bytes=2000-", "bytes=-0"])
def test_ranges_past_the_end_are_unsatisfiable(header):
    spec = parse_range(header)
    assert spec is not None
    with pytest.raises(Unsatisfiable):
        spec.resolve(2000)


def test_normalised_header_is_forwarded_upstream():
    spec = parse_range(" bytes = 10 - ")
    assert spec is not None and spec.header() == "bytes=10-"
    assert ByteRange(1, 2).content_range(9) == "bytes 1-2/9"


def test_a_last_byte_of_thousands_of_digits_means_to_the_end():
    spec = parse_range("bytes=10-" + "9" * 5000)
    assert spec is not None and spec.resolve(2000) == ByteRange(10, 1999)


def test_a_first_byte_of_thousands_of_digits_is_unsatisfiable():
    spec = parse_range("bytes=" + "9" * 5000 + "-")
    assert spec is not None
    with pytest.raises(Unsatisfiable):
        spec.resolve(2000)


def test_a_suffix_of_thousands_of_digits_is_the_whole_blob():
    spec = parse_range("bytes=-" + "9" * 5000)
    assert spec is not None and spec.resolve(2000) == ByteRange(0, 1999)
