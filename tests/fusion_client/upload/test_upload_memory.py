"""Memory stays bounded: parts stream from the staging file, reads land in the caller's buffer."""

from __future__ import annotations

import os
import random
import threading
import tracemalloc

from fusion_client.upload import Uploader
from tests.fusion_client.conftest import make_client
from tests.support.s3servers import S3Server

MiB = 2**20


def test_upload_memory_is_bounded_by_workers_not_part_or_file_size(s3rver: S3Server, tmp_path):
    bucket = s3rver.new_bucket("mem")
    path = tmp_path / "staging"
    data = os.urandom(48 * MiB)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    uploader = Uploader(make_client(s3rver), part_size=16 * MiB, workers=3)
    tracemalloc.start()
    try:
        upload = uploader.begin(bucket, "big", fd)
        for offset in range(0, len(data), MiB):
            upload.written(offset, MiB)
        upload.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        uploader.shutdown()
        os.close(fd)
    # Buffering whole parts would take 3 x 16 MiB; streaming needs a 1 MiB buffer per worker.
    assert peak < 8 * MiB
    got = s3rver.boto3_client().get_object(Bucket=bucket, Key="big")["Body"].read()
    assert got == data


def test_ranged_reads_do_not_copy_into_intermediate_buffers(s3rver: S3Server):
    bucket = s3rver.new_bucket("mem")
    data = os.urandom(16 * MiB)
    s3rver.boto3_client().put_object(Bucket=bucket, Key="obj", Body=data)
    client = make_client(s3rver)
    buf = bytearray(len(data))
    tracemalloc.start()
    try:
        n = client.get_range_into(bucket, "obj", 0, memoryview(buf), if_match=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == len(data) and buf == data
    assert peak < MiB


def test_parallel_out_of_order_writers_still_upload_eagerly(s3rver: S3Server, tmp_path):
    """FUSE delivers writes from several threads, not always in order."""
    bucket = s3rver.new_bucket("mem")
    data = os.urandom(12 * MiB + 5)
    fd = os.open(tmp_path / "staging", os.O_RDWR | os.O_CREAT)
    uploader = Uploader(make_client(s3rver), part_size=5 * MiB, workers=4)
    upload = uploader.begin(bucket, "parallel", fd)
    blocks = list(range(0, len(data), 128 * 1024))
    window = [blocks[i : i + 8] for i in range(0, len(blocks), 8)]

    def write(offset: int) -> None:
        chunk = data[offset : offset + 128 * 1024]
        os.pwrite(fd, chunk, offset)
        upload.written(offset, len(chunk))

    for group in window:  # like the kernel: a few writes in flight at once, in any order
        random.shuffle(group)
        threads = [threading.Thread(target=write, args=(o,)) for o in group]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    upload.finish()
    uploader.shutdown()
    os.close(fd)
    assert uploader.stats.restarts == 0 and uploader.stats.parts == 3
    got = s3rver.boto3_client().get_object(Bucket=bucket, Key="parallel")["Body"].read()
    assert got == data
