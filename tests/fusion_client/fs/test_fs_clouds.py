"""The same POSIX tools and faults on every cloud: s3rver (S3), fake-gcs-server (GCS) and
Azurite (Azure Blob), each mounted for real and every result checked with the cloud's own SDK
(boto3, google-cloud-storage, azure-storage-blob)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fusion_client.conftest import FAST_RETRIES, FusionMount, Through, mount_fusion, synced
from tests.support.faults import FaultProxy

CLOUDS = ["s3rver", "fake_gcs", "azurite"]
# The store is chosen by parameter (getfixturevalue), which the fixture-based marks cannot see.
pytestmark = [pytest.mark.e2e, pytest.mark.fuse]
MiB = 2**20
FUSION = [sys.executable, "-m", "fusion_client"]


def sh(script: str) -> str:
    done = subprocess.run(["sh", "-ec", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module", params=CLOUDS)
def server(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def mount(server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FusionMount]:
    yield from mount_fusion(server, tmp_path_factory.mktemp(f"fusion-{server.scheme}"))


@pytest.fixture
def bucket(server) -> str:
    return server.new_bucket("posix")


def test_objects_put_with_the_sdk_read_with_cat_sort_grep_and_dd(mount, server, bucket):
    lines = b"".join(f"line {n:05d}\n".encode() for n in reversed(range(5000)))
    server.put(bucket, "data/lines.txt", lines)
    path = mount.path(bucket, "data/lines.txt")
    assert sh(f"cat {path}").encode() == lines
    assert sh(f"sort {path} | head -n 2") == "line 00000\nline 00001\n"
    assert sh(f"grep -c '^line 0012' {path}") == "10\n"
    assert sh(f"dd if={path} bs=11 skip=10 count=1 status=none").encode() == lines[110:121]


def test_files_written_with_cp_dd_tar_and_python_arrive_whole(mount, server, bucket, tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(3 * MiB + 17))
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "a.txt").write_text("a\n")
    root = mount.path(bucket)
    sh(f"cp {source} {root}/copied.bin")
    sh(f"dd if={source} of={root}/dd.bin bs=1M status=none")
    sh(f"tar -C {tmp_path} -cf {root}/tree.tar tree")
    (root / "py.txt").write_text("from python\n")
    synced(root / "copied.bin", root / "dd.bin", root / "py.txt")
    assert server.get(bucket, "copied.bin") == source.read_bytes()
    assert server.get(bucket, "dd.bin") == source.read_bytes()
    assert server.get(bucket, "py.txt") == b"from python\n"
    assert sh(f"tar -tf {root}/tree.tar") == "tree/\ntree/a.txt\n"


def test_a_file_larger_than_several_parts_is_uploaded_while_written(mount, server, bucket):
    data = os.urandom(20 * MiB + 5)  # three 8 MiB parts, the last one short
    mount.path(bucket, "big.bin").write_bytes(data)
    assert server.get(bucket, "big.bin") == data
    assert mount.path(bucket, "big.bin").read_bytes() == data


def test_mkdir_mv_and_rm_change_the_keys(mount, server, bucket):
    root = mount.path(bucket)
    sh(f"mkdir -p {root}/d/sub && echo x > {root}/d/sub/f && echo y > {root}/d/g")
    sh(f"mv {root}/d {root}/e && mv {root}/e/g {root}/e/h")
    assert [k for k in server.keys(bucket) if not k.endswith("/")] == ["e/h", "e/sub/f"]
    sh(f"rm -r {root}/e")
    assert server.keys(bucket) == []


def test_ls_lists_files_and_directories_across_listing_pages(mount, server, bucket):
    for n in range(3):
        server.put(bucket, f"dir/sub{n}/x", b"x")
    server.put(bucket, "dir/a b+c.txt", b"awkward name")
    assert sh(f"ls {mount.path(bucket, 'dir')}").split("\n")[:-1] == [
        "a b+c.txt",
        "sub0",
        "sub1",
        "sub2",
    ]
    assert mount.path(bucket, "dir/a b+c.txt").read_bytes() == b"awkward name"


def test_symlinks_made_with_ln_read_back_with_readlink(mount, bucket):
    root = mount.path(bucket)
    sh(f"echo target > {root}/t.txt && ln -s t.txt {root}/link")
    assert sh(f"readlink {root}/link") == "t.txt\n"
    assert sh(f"cat {root}/link") == "target\n"


# -- faults: the store answers 500s and cuts connections --------------------------------------


@pytest.fixture(scope="module")
def proxy(server) -> Iterator[FaultProxy]:
    port = int(server.endpoint.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    proxy = FaultProxy(port)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def faulty_mount(server, proxy, tmp_path_factory) -> Iterator[FusionMount]:
    base = tmp_path_factory.mktemp(f"fusion-faults-{server.scheme}")
    environ_server = Through(server, proxy.endpoint)
    yield from mount_fusion(environ_server, base)  # type: ignore[arg-type]


def test_reads_survive_server_errors_and_cut_responses(faulty_mount, proxy, server):
    bucket = server.new_bucket("faults")
    data = os.urandom(6 * MiB + 3)
    server.put(bucket, "in.bin", data)
    path: Path = faulty_mount.path(bucket, "in.bin")
    path.stat()
    proxy.fail_next(2, method="GET")
    proxy.drop_next_responses(2, method="GET")
    assert path.read_bytes() == data
    assert proxy.pending_faults() == 0


def test_writes_survive_server_errors_during_the_upload(faulty_mount, proxy, server):
    bucket = server.new_bucket("faults")
    data = os.urandom(20 * MiB)
    faulty_mount.path(bucket).stat()
    proxy.fail_next(2, method="PUT")
    faulty_mount.path(bucket, "out.bin").write_bytes(data)
    assert proxy.pending_faults() == 0
    assert server.get(bucket, "out.bin") == data


def test_the_store_down_at_exit_exits_174_naming_the_lost_file(server, proxy, tmp_path):
    bucket = server.new_bucket("lost")
    go, ready = tmp_path / "go", tmp_path / "ready"
    target = f"{server.scheme}/{bucket}/lost.txt"
    script = (  # writes, then goes on writing after the store went down, and exits
        "import os, time\n"
        f"out = open(os.environ['FUSION_MOUNT'] + '/{target}', 'w')\n"
        "out.write('first'); out.flush()\n"
        f"open('{ready}', 'w').close()\n"
        f"while not os.path.exists('{go}'): time.sleep(0.05)\n"
        "out.write('second')\n"
    )
    env = {
        **os.environ,
        **server.env_through(proxy.endpoint, **FAST_RETRIES),
        "FUSION_MOUNT": str(tmp_path / "fusion"),
        "FUSION_CACHE_LOCATION": str(tmp_path / "cache"),
    }
    proc = subprocess.Popen(
        [*FUSION, sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        from tests.support import wait_until

        wait_until(ready.exists, 30, "the command to write")
        proxy.down = True
        go.touch()
        _, stderr = proc.communicate(timeout=120)
    finally:
        proxy.down = False
        proc.kill()
        proc.wait()
    assert proc.returncode == 174, stderr
    assert f"{server.scheme}://{bucket}/lost.txt" in stderr
