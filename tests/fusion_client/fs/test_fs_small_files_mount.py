"""Small files through a real mount on s3rver: close() of a small new file does not wait for
its upload, fsync does, and the launcher still exits 174 naming a file whose upload was lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.fusion_client.conftest import FAST_RETRIES, FusionMount, Through, mount_fusion

FUSION = [sys.executable, "-m", "fusion_client"]


@pytest.fixture
def slow_mount(s3rver, fault_proxy, tmp_path) -> Iterator[FusionMount]:
    yield from mount_fusion(Through(s3rver, fault_proxy.endpoint), tmp_path)  # type: ignore[arg-type]


def test_fsync_through_any_descriptor_waits_for_a_closed_files_upload(
    slow_mount, fault_proxy, s3rver
):
    bucket = s3rver.new_bucket("small")
    path = slow_mount.path(bucket, "synced.txt")
    path.parent.stat()
    gate = threading.Event()
    fault_proxy.drop_next_requests(1, method="PUT", match="synced.txt", then=gate.wait)
    closed = threading.Thread(target=path.write_bytes, args=(b"synced\n",))
    closed.start()
    closed.join(20)
    assert not closed.is_alive(), "close() waited for the upload"
    fd = os.open(path, os.O_RDONLY)
    try:
        synced = threading.Thread(target=os.fsync, args=(fd,))
        synced.start()
        synced.join(0.5)
        assert synced.is_alive(), "fsync returned before the upload completed"
        gate.set()
        synced.join(30)
        assert s3rver.get(bucket, "synced.txt") == b"synced\n"
    finally:
        gate.set()
        os.close(fd)


def test_a_shell_loop_whose_small_file_is_lost_exits_174_naming_it(s3rver, fault_proxy, tmp_path):
    bucket = s3rver.new_bucket("loop")
    folder = f"{tmp_path}/fusion/{s3rver.scheme}/{bucket}/out"
    fault_proxy.fail_next(1000, method="PUT", match="out/f7")
    env = {
        **os.environ,
        **s3rver.env_through(fault_proxy.endpoint, **FAST_RETRIES),
        "FUSION_MOUNT": str(tmp_path / "fusion"),
        "FUSION_CACHE_LOCATION": str(tmp_path / "cache"),
    }
    script = f"mkdir {folder} && for i in $(seq 12); do echo $i > {folder}/f$i; done; echo done"
    done = subprocess.run(
        [*FUSION, "sh", "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.stdout == "done\n"  # every close succeeded: the loss is the launcher's to say
    assert done.returncode == 174, done.stderr
    assert f"not saved: s3://{bucket}/out/f7:" in done.stderr
    assert s3rver.get(bucket, "out/f12") == b"12\n"


def test_a_shell_loop_appending_to_one_file_uploads_it_about_once(s3rver, tmp_path):
    bucket = s3rver.new_bucket("append")
    target = f"{tmp_path}/fusion/{s3rver.scheme}/{bucket}/out.txt"
    env = {
        **os.environ,
        **s3rver.env(**FAST_RETRIES),
        "FUSION_MOUNT": str(tmp_path / "fusion"),
        "FUSION_CACHE_LOCATION": str(tmp_path / "cache"),
        "FUSION_LOG_OUTPUT": str(tmp_path / "fusion.log"),
    }
    script = f"for i in $(seq 200); do echo line $i >> {target}; done"
    done = subprocess.run(
        [*FUSION, "sh", "-ec", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert s3rver.get(bucket, "out.txt") == b"".join(b"line %d\n" % i for i in range(1, 201))
    lines = [json.loads(line) for line in (tmp_path / "fusion.log").read_text().splitlines()]
    summary = next(line["summary"] for line in lines if "summary" in line)
    assert summary["uploaded_per_written"] <= 1.5
