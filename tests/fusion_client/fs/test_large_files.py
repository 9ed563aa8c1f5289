"""1 GiB files through a real mount of s3rver, checked byte for byte against boto3.

The data is a random 1 MiB block repeated, with each block's index stamped into its first
bytes, so a chunk served from the wrong offset (or twice) changes the digest. The size is not a
multiple of the chunk or part size, so the short last chunk and part are exercised too. Digests
are computed while streaming; nothing holds a whole file in memory.
"""

from __future__ import annotations

import hashlib
import io
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fusion_client.conftest import FusionMount

pytestmark = pytest.mark.slow

MiB = 2**20
SIZE = 1024 * MiB + 4097
_BLOCK = random.Random(6).randbytes(MiB)


def stamped_blocks(size: int = SIZE) -> Iterator[bytes]:
    """The test file's content, one block at a time (the last one short)."""
    for index, offset in enumerate(range(0, size, MiB)):
        block = index.to_bytes(8, "big") + _BLOCK[8:]
        yield block[: size - offset]


def expected_sha256(size: int = SIZE) -> str:
    digest = hashlib.sha256()
    for block in stamped_blocks(size):
        digest.update(block)
    return digest.hexdigest()


class _BlockReader(io.RawIOBase):
    """A read-only stream over stamped_blocks(), for boto3's upload_fileobj."""

    def __init__(self) -> None:
        self._blocks = stamped_blocks()
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        if not self._pending:
            self._pending = next(self._blocks, b"")
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def assert_reads_whole(path: Path) -> None:
    """`path` under a mount reads back as the test file, in a separate reader process, as a
    pipeline task would be (and no GIL shared with the mount)."""
    assert path.stat().st_size == SIZE
    done = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == expected_sha256()


def write_whole(path: Path) -> None:
    """Write the test file at `path` under a mount with dd, as a task's output."""
    path.parent.mkdir()
    writer = subprocess.Popen(
        ["dd", f"of={path}", "bs=1M", "iflag=fullblock", "status=none"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert writer.stdin is not None
    for block in stamped_blocks():
        writer.stdin.write(block)
    writer.stdin.close()
    assert writer.wait(timeout=540) == 0, writer.stderr.read() if writer.stderr else ""


def s3_sha256(mount: FusionMount, bucket: str, key: str) -> tuple[str, int]:
    body = mount.server.boto3_client().get_object(Bucket=bucket, Key=key)["Body"]
    digest, size = hashlib.sha256(), 0
    for block in body.iter_chunks(MiB):
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size


@pytest.fixture
def bucket(s3rver_mount: FusionMount) -> Iterator[str]:
    """A fresh bucket whose objects are deleted afterwards: the session's s3rver keeps its
    data on disk until the end, and these are big."""
    name = s3rver_mount.server.new_bucket("large")
    yield name
    s3 = s3rver_mount.server.boto3_client()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=item["Key"])


@pytest.mark.timeout(600)
def test_a_1_gib_object_put_by_boto3_reads_byte_identical_through_the_mount(s3rver_mount, bucket):
    s3rver_mount.server.boto3_client().upload_fileobj(
        io.BufferedReader(_BlockReader(), MiB), bucket, "big/input.bin"
    )
    assert_reads_whole(s3rver_mount.path(bucket, "big/input.bin"))


@pytest.mark.timeout(600)
def test_a_1_gib_file_written_through_the_mount_is_byte_identical_in_s3_after_close(
    s3rver_mount, bucket
):
    write_whole(s3rver_mount.path(bucket, "big/output.bin"))
    assert s3_sha256(s3rver_mount, bucket, "big/output.bin") == (expected_sha256(), SIZE)
