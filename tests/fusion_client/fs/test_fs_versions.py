"""An object replaced in S3 while a reader holds it open never mixes versions (moto honours
If-Match, s3rver does not)."""

from __future__ import annotations

import errno
import os
import time

import pytest

MiB = 2**20


def test_a_reader_never_mixes_versions_of_a_replaced_object(moto_mount):
    s3 = moto_mount.server.boto3_client()
    bucket = moto_mount.server.new_bucket("versions")
    old, new = b"1" * (4 * MiB), b"2" * (4 * MiB)
    s3.put_object(Bucket=bucket, Key="data.bin", Body=old)
    path = moto_mount.path(bucket, "data.bin")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert os.pread(fd, 4096, 0) == old[:4096]
        s3.put_object(Bucket=bucket, Key="data.bin", Body=new)
        with pytest.raises(OSError) as raised:  # a chunk not cached yet: If-Match fails
            os.pread(fd, 4096, 3 * MiB + 512 * 1024)
        assert raised.value.errno == errno.EIO
        assert os.pread(fd, 4096, 0) == old[:4096]  # what was read stays the old version
    finally:
        os.close(fd)
    time.sleep(0.3)  # past the metadata TTL: the next open sees the new version
    assert path.read_bytes() == new
