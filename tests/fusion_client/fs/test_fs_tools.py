"""POSIX tools on a real mount of s3rver; every result is checked with boto3."""

from __future__ import annotations

import concurrent.futures
import errno
import hashlib
import os
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from tests.fusion_client.conftest import FusionMount, synced


def sh(script: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        ["sh", "-ec", script], capture_output=True, text=True, cwd=cwd, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def body(mount: FusionMount, bucket: str, key: str) -> bytes:
    """The object as S3 has it once the file is durable (fsync: a small new file's close
    does not wait for its upload)."""
    synced(mount.path(bucket, key))
    return mount.server.boto3_client().get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture
def bucket(s3rver_mount: FusionMount) -> str:
    return s3rver_mount.server.new_bucket("fs")


def test_objects_from_boto3_read_with_cat_sort_grep_and_dd(s3rver_mount, bucket):
    s3 = s3rver_mount.server.boto3_client()
    lines = b"".join(f"line {n:05d}\n".encode() for n in reversed(range(5000)))
    s3.put_object(Bucket=bucket, Key="data/lines.txt", Body=lines)
    path = s3rver_mount.path(bucket, "data/lines.txt")
    assert sh(f"cat {path}").encode() == lines
    assert sh(f"sort {path} | head -n 2") == "line 00000\nline 00001\n"
    assert sh(f"grep -c '^line 0012' {path}") == "10\n"
    dd = sh(f"dd if={path} bs=11 skip=10 count=1 status=none")
    assert dd.encode() == lines[110:121]


def test_files_written_with_cp_dd_tar_and_python_arrive_in_s3(s3rver_mount, bucket, tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(3 * 2**20 + 17))
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "a.txt").write_text("a\n")
    (tmp_path / "tree" / "b.txt").write_text("b\n")
    root = s3rver_mount.path(bucket)
    sh(f"cp {source} {root}/copied.bin")
    sh(f"dd if={source} of={root}/dd.bin bs=1M status=none")
    sh(f"tar -C {tmp_path} -cf {root}/tree.tar tree")
    (root / "py.txt").write_text("from python\n")
    assert body(s3rver_mount, bucket, "copied.bin") == source.read_bytes()
    assert body(s3rver_mount, bucket, "dd.bin") == source.read_bytes()
    assert body(s3rver_mount, bucket, "py.txt") == b"from python\n"
    extract = tmp_path / "extract"
    extract.mkdir()
    with tarfile.open(root / "tree.tar") as archive:
        archive.extractall(extract, filter="data")
    assert (extract / "tree" / "sub" / "a.txt").read_text() == "a\n"


def test_tar_extracts_a_tree_into_the_mount(s3rver_mount, bucket, tmp_path):
    (tmp_path / "t" / "x" / "y").mkdir(parents=True)
    (tmp_path / "t" / "x" / "y" / "deep.txt").write_text("deep\n")
    (tmp_path / "t" / "top.txt").write_text("top\n")
    sh(f"tar -C {tmp_path} -cf {tmp_path}/t.tar t")
    sh(f"tar -C {s3rver_mount.path(bucket)} -xf {tmp_path}/t.tar")
    assert body(s3rver_mount, bucket, "t/x/y/deep.txt") == b"deep\n"
    assert sh(f"cat {s3rver_mount.path(bucket, 't/top.txt')}") == "top\n"


@pytest.mark.slow
def test_ls_l_lists_a_prefix_of_2000_objects_with_sizes(s3rver_mount, bucket):
    s3 = s3rver_mount.server.boto3_client()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda n: s3.put_object(Bucket=bucket, Key=f"many/f{n:04d}", Body=b"x" * n),
                range(2000),
            )
        )
    lines = sh(f"ls -l {s3rver_mount.path(bucket, 'many')}").splitlines()[1:]
    assert len(lines) == 2000
    sizes = {line.split()[-1]: int(line.split()[4]) for line in lines}
    assert sizes["f0000"] == 0 and sizes["f1999"] == 1999


def test_directories_are_prefixes_and_markers(s3rver_mount, bucket):
    s3 = s3rver_mount.server.boto3_client()
    s3.put_object(Bucket=bucket, Key="implicit/file.txt", Body=b"1")
    s3.put_object(Bucket=bucket, Key="marked/", Body=b"")
    root = s3rver_mount.path(bucket)
    assert sorted(os.listdir(root)) == ["implicit", "marked"]
    assert (root / "implicit").is_dir() and (root / "marked").is_dir()
    assert os.listdir(root / "marked") == []
    (root / "made").mkdir()
    assert s3.head_object(Bucket=bucket, Key="made/")["ContentLength"] == 0


def test_rmdir_refuses_a_non_empty_directory_and_removes_an_empty_one(s3rver_mount, bucket):
    root = s3rver_mount.path(bucket)
    (root / "full").mkdir()
    (root / "full" / "f").write_text("x")
    with pytest.raises(OSError) as raised:
        (root / "full").rmdir()
    assert raised.value.errno == errno.ENOTEMPTY
    (root / "full" / "f").unlink()
    (root / "full").rmdir()
    listed = s3rver_mount.server.boto3_client().list_objects_v2(Bucket=bucket)
    assert listed.get("KeyCount", 0) == 0


def test_rename_of_a_file_and_of_a_directory_moves_every_object(s3rver_mount, bucket):
    root = s3rver_mount.path(bucket)
    (root / "d" / "e").mkdir(parents=True)
    (root / "d" / "one.txt").write_text("1")
    (root / "d" / "e" / "two.txt").write_text("2")
    (root / "d" / "one.txt").rename(root / "d" / "uno.txt")
    (root / "d").rename(root / "moved")
    keys = sorted(
        item["Key"]
        for item in s3rver_mount.server.boto3_client().list_objects_v2(Bucket=bucket)["Contents"]
    )
    assert keys == ["moved/", "moved/e/", "moved/e/two.txt", "moved/uno.txt"]
    assert (root / "moved" / "e" / "two.txt").read_text() == "2"
    assert not (root / "d").exists()


def test_symlinks_round_trip_and_look_sensible_to_plain_s3_clients(s3rver_mount, bucket):
    root = s3rver_mount.path(bucket)
    (root / "data").mkdir()
    (root / "data" / "sample.txt").write_text("sample\n")
    (root / "work").mkdir()
    os.symlink("../data/sample.txt", root / "work" / "link.txt")
    assert os.readlink(root / "work" / "link.txt") == "../data/sample.txt"
    assert (root / "work" / "link.txt").read_text() == "sample\n"
    head = s3rver_mount.server.boto3_client().head_object(Bucket=bucket, Key="work/link.txt")
    assert int(head["Metadata"]["mode"]) & 0o170000 == 0o120000
    assert body(s3rver_mount, bucket, "work/link.txt") == b"../data/sample.txt"
    (root / "work" / "link.txt").rename(root / "work" / "renamed.txt")
    assert os.readlink(root / "work" / "renamed.txt") == "../data/sample.txt"
    assert sh(f"ls -l {root / 'work'}").count("->") == 1


def test_a_file_is_readable_by_its_writer_before_and_after_close(s3rver_mount, bucket):
    path = s3rver_mount.path(bucket, "growing.log")
    with open(path, "w+b") as f:
        f.write(b"first\n")
        f.flush()
        assert path.read_bytes() == b"first\n"
        f.seek(0)
        assert f.read() == b"first\n"
        f.write(b"second\n")
    assert path.read_bytes() == b"first\nsecond\n"
    assert body(s3rver_mount, bucket, "growing.log") == b"first\nsecond\n"


def test_appending_to_an_existing_object_rewrites_it_whole(s3rver_mount, bucket):
    s3rver_mount.server.boto3_client().put_object(Bucket=bucket, Key="log.txt", Body=b"old\n")
    sh(f"echo new >> {s3rver_mount.path(bucket, 'log.txt')}")
    assert body(s3rver_mount, bucket, "log.txt") == b"old\nnew\n"


def test_random_writes_into_an_existing_object_keep_the_rest(s3rver_mount, bucket):
    original = os.urandom(300_000)
    s3rver_mount.server.boto3_client().put_object(Bucket=bucket, Key="r.bin", Body=original)
    with open(s3rver_mount.path(bucket, "r.bin"), "r+b") as f:
        f.seek(1000)
        f.write(b"PATCH")
    expected = original[:1000] + b"PATCH" + original[1005:]
    assert body(s3rver_mount, bucket, "r.bin") == expected


def test_truncate_shortens_the_object(s3rver_mount, bucket):
    s3rver_mount.server.boto3_client().put_object(Bucket=bucket, Key="t.txt", Body=b"0123456789")
    os.truncate(s3rver_mount.path(bucket, "t.txt"), 4)
    assert body(s3rver_mount, bucket, "t.txt") == b"0123"
    assert s3rver_mount.path(bucket, "t.txt").stat().st_size == 4


def test_unlink_deletes_the_object(s3rver_mount, bucket):
    s3 = s3rver_mount.server.boto3_client()
    s3.put_object(Bucket=bucket, Key="gone.txt", Body=b"x")
    s3rver_mount.path(bucket, "gone.txt").unlink()
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert not s3rver_mount.path(bucket, "gone.txt").exists()


def test_concurrent_readers_of_one_file_all_read_it_whole(s3rver_mount, bucket):
    data = os.urandom(12 * 2**20 + 5)
    s3rver_mount.server.boto3_client().put_object(Bucket=bucket, Key="shared.bin", Body=data)
    path = s3rver_mount.path(bucket, "shared.bin")
    digests: list[str] = []
    lock = threading.Lock()

    def reader() -> None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        with lock:
            digests.append(digest)

    threads = [threading.Thread(target=reader) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert digests == [hashlib.sha256(data).hexdigest()] * 6


def test_chmod_and_utime_are_kept_for_the_session(s3rver_mount, bucket):
    path = s3rver_mount.path(bucket, "script.sh")
    path.write_text("#!/bin/sh\necho ran\n")
    path.chmod(0o755)
    os.utime(path, ns=(1_000_000_000, 2_000_000_000))
    time.sleep(0.3)  # past the metadata TTL: S3's attributes are re-read, the session's kept
    assert path.stat().st_mode & 0o777 == 0o755
    assert path.stat().st_mtime_ns == 2_000_000_000
    assert sh(str(path)) == "ran\n"


def test_creating_in_the_mount_root_is_refused(s3rver_mount):
    with pytest.raises(OSError) as raised:
        (s3rver_mount.root / "s3" / "newbucket").mkdir()
    assert raised.value.errno == errno.EPERM


def test_statfs_reports_plenty_of_space(s3rver_mount, bucket):
    stats = os.statvfs(s3rver_mount.path(bucket))
    assert stats.f_bavail * stats.f_frsize >= 2**40


def test_fsync_makes_a_file_durable_before_close_and_writes_may_follow(s3rver_mount, bucket):
    first, second = os.urandom(12 * 2**20), os.urandom(3 * 2**20)  # multipart, then more
    path = s3rver_mount.path(bucket, "synced.bin")
    with open(path, "wb") as f:
        f.write(first)
        f.flush()
        os.fsync(f.fileno())
        assert body(s3rver_mount, bucket, "synced.bin") == first
        f.write(second)
    assert body(s3rver_mount, bucket, "synced.bin") == first + second
    assert path.read_bytes() == first + second
