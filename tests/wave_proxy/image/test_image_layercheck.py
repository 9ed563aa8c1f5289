"""Client-supplied layers are checked as streams: bombs bounded, entries kept inside the root."""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib

import pytest

from tests.support.images import Symlink, raw_layer, tar_layer
from wave_proxy.image.layer import LayerError, describe_layer
from wave_proxy.image.layercheck import LayerTooLarge, UnsafeEntry, check_layer


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def bomb(expanded: int) -> bytes:
    """A gzip of one tar entry holding `expanded` zero bytes, a thousand times smaller."""
    header = tarfile.TarInfo("zeros")
    header.size = expanded
    compressor = zlib.compressobj(9, wbits=31)
    parts = [compressor.compress(header.tobuf(format=tarfile.PAX_FORMAT))]
    zeros = bytes(1 << 20)
    for _ in range(expanded >> 20):
        parts.append(compressor.compress(zeros))
    parts.append(compressor.flush())
    return b"".join(parts)


def test_a_layer_is_described_as_the_plain_digester_describes_it():
    layer = tar_layer({"etc/a": b"a\n", "bin/sh": Symlink("/bin/busybox")}).compressed
    assert check_layer(io.BytesIO(layer)) == describe_layer([layer])


def test_a_layer_expanding_past_the_limit_is_refused():
    with pytest.raises(LayerTooLarge, match="expands to more than 1048576 bytes"):
        check_layer(io.BytesIO(bomb(8 << 20)), max_expanded=1 << 20)


def test_a_layer_within_the_limit_is_accepted():
    layer = bomb(2 << 20)
    assert check_layer(io.BytesIO(layer), max_expanded=3 << 20).size == len(layer)


@pytest.mark.parametrize(
    ("member", "named"),
    [
        (entry("../etc/passwd"), "'../etc/passwd'"),
        (entry("a/../../x"), "'a/../../x'"),
        (entry("/etc/passwd"), "'/etc/passwd'"),
        (entry("escape", tarfile.SYMTYPE, "../../.."), "'escape' is a symlink to '../../..'"),
        (entry("a/b/up", tarfile.SYMTYPE, "../../../etc"), "'a/b/up' is a symlink"),
        (entry("hard", tarfile.LNKTYPE, "/etc/shadow"), "'hard' is a hard link to '/etc/shadow'"),
        (entry("hard", tarfile.LNKTYPE, "../x"), "'hard' is a hard link to '../x'"),
    ],
)
def test_entries_outside_the_root_are_refused_by_name(member, named):
    with pytest.raises(UnsafeEntry, match=f"tar entry {named}"):
        check_layer(io.BytesIO(raw_layer((member, b"x")).compressed))


def test_links_that_stay_inside_the_root_are_accepted():
    layer = raw_layer(
        (entry("usr/lib/a", tarfile.SYMTYPE, "../../lib/a"), b""),
        (entry("bin/sh", tarfile.SYMTYPE, "/bin/busybox"), b""),
        (entry("lib/a"), b"a"),
        (entry("lib/b", tarfile.LNKTYPE, "lib/a"), b""),
    ).compressed
    check_layer(io.BytesIO(layer))


def test_a_huge_extended_header_is_refused():
    info = entry("x")
    info.pax_headers = {"comment": "c" * (2 << 20)}
    with pytest.raises(LayerError, match="extended header"):
        check_layer(io.BytesIO(raw_layer((info, b"x")).compressed))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not gzip", "not a .tar.gz layer"),
        (gzip.compress(b"text, not a tar archive\n" * 30, mtime=0), "valid tar archive"),
        (tar_layer({"a": b"a"}).compressed[:-10], "truncated"),
        (tar_layer({"a": b"a"}).compressed * 2, "trailing data"),
    ],
)
def test_malformed_layers_say_what_is_wrong(body, message):
    with pytest.raises(LayerError, match=message):
        check_layer(io.BytesIO(body))
