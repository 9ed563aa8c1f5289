"""Descriptors of appended gzip layers, computed by streaming."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import pytest

from wave_proxy.image.layer import LayerError, Platform, describe_layer


def make_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_descriptor_has_gzip_digest_size_and_tar_diff_id():
    tar = make_tar({"a.txt": b"hello"})
    gz = gzip.compress(tar, mtime=0)
    layer = describe_layer([gz])
    assert layer.digest == "sha256:" + hashlib.sha256(gz).hexdigest()
    assert layer.size == len(gz)
    assert layer.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()


def test_chunk_boundaries_do_not_change_the_descriptor():
    gz = gzip.compress(make_tar({"big": bytes(range(256)) * 4000}), mtime=0)
    assert describe_layer(chunks(gz, 7)) == describe_layer([gz])


@pytest.mark.parametrize(
    "data",
    [b"not gzip at all", gzip.compress(b"x" * 1000)[:-12], gzip.compress(b"a") + b"junk"],
    ids=["not-gzip", "truncated", "trailing-data"],
)
def test_broken_gzip_layers_are_rejected(data):
    with pytest.raises(LayerError):
        describe_layer([data])


def test_platform_aliases_compare_equal():
    assert Platform.parse("linux/x86_64") == Platform.parse("linux/amd64")
    assert Platform.parse("linux/aarch64") == Platform.parse("linux/arm64/v8")
    assert Platform.parse("linux/arm/v7").accepts(Platform.of("linux", "arm", "v7"))
    assert not Platform.parse("linux/arm64").accepts(Platform.of("linux", "amd64"))


def test_platform_without_variant_accepts_every_variant():
    assert Platform.parse("linux/arm").accepts(Platform.of("linux", "arm", "v6"))


@pytest.mark.parametrize("bad", ["linux", "linux//", "a/b/c/d"])
def test_malformed_platforms_are_rejected(bad):
    with pytest.raises(ValueError):
        Platform.parse(bad)
