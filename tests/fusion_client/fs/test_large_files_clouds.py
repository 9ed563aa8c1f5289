"""1 GiB files through real mounts of fake-gcs-server and Azurite, checked byte for byte with
each cloud's SDK (google-cloud-storage, azure-storage-blob), as test_large_files.py does for S3.

Digests are computed while streaming; nothing holds a whole file in memory. fake-gcs-server
rewrites the whole object for every resumable chunk it receives (docs/SEMANTICS.md, emulator
gaps), so its mount writes with 128 MiB parts (FUSION_UPLOAD_PART_SIZE): 8 chunks instead of 128.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fusion_client.conftest import FusionMount, mount_fusion, synced
from tests.fusion_client.fs.test_large_files import (
    SIZE,
    assert_reads_whole,
    expected_sha256,
    stamped_blocks,
    write_whole,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.fuse]

MiB = 2**20
# Per store: settings for its mount.
MOUNT_ENV = {"fake_gcs": {"FUSION_UPLOAD_PART_SIZE": "128M"}, "azurite": {}}


class _Digest:
    """A write-only file object hashing what is written: the SDKs' download sink."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return len(data)


def sdk_sha256(server: Any, bucket: str, key: str) -> tuple[str, int]:
    """The object's digest and size as the cloud's own SDK downloads it, streamed."""
    sink = _Digest()
    if server.scheme == "gs":
        server.sdk().bucket(bucket).blob(key).download_to_file(sink)
    else:
        for block in server.sdk().get_blob_client(bucket, key).download_blob().chunks():
            sink.write(block)
    return sink.sha256.hexdigest(), sink.size


def sdk_upload(server: Any, bucket: str, key: str, source: Path) -> None:
    """Put a file from disk with the cloud's SDK."""
    if server.scheme == "gs":
        # One request: fake-gcs-server's chunked uploads cost O(size^2) (see the docstring).
        blob = server.sdk().bucket(bucket).blob(key, chunk_size=2 * 1024 * MiB)
        blob.upload_from_filename(str(source), timeout=540)
    else:
        with source.open("rb") as data:
            blob = server.sdk().get_blob_client(bucket, key)
            blob.upload_blob(data, overwrite=True, max_concurrency=4)


def sdk_delete_all(server: Any, bucket: str) -> None:
    if server.scheme == "gs":
        sdk_bucket = server.sdk().bucket(bucket)
        for blob in server.sdk().list_blobs(bucket):
            sdk_bucket.blob(blob.name).delete()
    else:
        container = server.sdk().get_container_client(bucket)
        for blob in container.list_blobs():
            container.delete_blob(blob.name)


@pytest.fixture(scope="module", params=list(MOUNT_ENV))
def mount(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FusionMount]:
    server = request.getfixturevalue(request.param)
    base = tmp_path_factory.mktemp(f"fusion-large-{server.scheme}")
    yield from mount_fusion(server, base, **MOUNT_ENV[request.param])


@pytest.fixture
def bucket(mount: FusionMount) -> Iterator[str]:
    """A fresh bucket whose objects are deleted afterwards: the emulators keep their data on
    disk for the session, and these are big."""
    name = mount.server.new_bucket("large")
    yield name
    sdk_delete_all(mount.server, name)


@pytest.mark.timeout(600)
def test_a_1_gib_object_put_by_the_sdk_reads_byte_identical_through_the_mount(
    mount, bucket, tmp_path
):
    source = tmp_path / "input.bin"
    with source.open("wb") as out:
        for block in stamped_blocks():
            out.write(block)
    sdk_upload(mount.server, bucket, "big/input.bin", source)
    source.unlink()
    assert_reads_whole(mount.path(bucket, "big/input.bin"))


@pytest.mark.timeout(600)
def test_a_1_gib_file_written_through_the_mount_is_byte_identical_in_the_store_after_fsync(
    mount, bucket
):
    path = mount.path(bucket, "big/output.bin")
    write_whole(path)
    synced(path)
    assert sdk_sha256(mount.server, bucket, "big/output.bin") == (expected_sha256(), SIZE)
