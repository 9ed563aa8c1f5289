"""The `fusion` command as a container runs it: mount, run, forward signals, save, exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import fusion_client
from tests.fusion_client.conftest import FAST_RETRIES
from tests.support import need_binary, wait_until
from tests.support.faults import FaultProxy
from tests.support.s3servers import S3Server

pytestmark = pytest.mark.fuse

FUSION = [sys.executable, "-m", "fusion_client"]


@pytest.fixture
def env(s3rver: S3Server, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        **s3rver.env(**FAST_RETRIES),
        "FUSION_MOUNT": str(tmp_path / "fusion"),
        "FUSION_CACHE_LOCATION": str(tmp_path / "cache"),
    }


def fusion(*args: str, env: dict[str, str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FUSION, *args], env=env, capture_output=True, text=True, timeout=120, **kwargs
    )


def test_version_prints_the_name_and_version():
    done = subprocess.run([*FUSION, "--version"], capture_output=True, text=True, check=True)
    assert done.stdout == f"fusion {fusion_client.__version__}\n"


def test_the_exit_status_of_the_command_is_returned(env):
    assert fusion("sh", "-c", "exit 3", env=env).returncode == 3


def test_a_command_killed_by_a_signal_exits_128_plus_the_signal(env):
    assert fusion("--", "sh", "-c", "kill -KILL $$", env=env).returncode == 128 + 9


def test_the_launcher_named_again_as_the_command_mounts_only_once(env):
    count = f"grep -c ' {env['FUSION_MOUNT']} fuse' /proc/mounts"
    done = fusion("--", "/usr/bin/fusion", "sh", "-c", count, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


def test_no_command_at_all_is_a_usage_error_that_says_so(env):
    done = fusion("--", env=env)
    assert done.returncode == 2
    assert "no command to run" in done.stderr


def test_a_missing_command_exits_127(env):
    done = fusion("no-such-command-here", env=env)
    assert done.returncode == 127
    assert "not found" in done.stderr


def test_outputs_written_under_fusion_are_in_s3_when_it_exits(s3rver, env):
    bucket = s3rver.new_bucket("launch")
    done = fusion(
        "sh",
        "-c",
        f'cd "$FUSION_MOUNT/s3/{bucket}" && mkdir out && echo result > out/result.txt',
        env=env,
    )
    assert done.returncode == 0, done.stderr
    got = s3rver.boto3_client().get_object(Bucket=bucket, Key="out/result.txt")
    assert got["Body"].read() == b"result\n"
    assert "uploads 1 objects" in done.stderr
    assert not Path(env["FUSION_MOUNT"], "s3").exists()  # unmounted


def test_sigterm_is_forwarded_to_the_command(env, tmp_path):
    ready = tmp_path / "ready"
    script = f'trap "exit 42" TERM; touch {ready}; while :; do sleep 0.05; done'
    proc = subprocess.Popen([*FUSION, "sh", "-c", script], env=env, stderr=subprocess.PIPE)
    try:
        wait_until(ready.exists, 30, "the command to start")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 42
    finally:
        proc.kill()
        proc.wait()


def test_the_command_gets_the_environment_the_image_meant(env):
    env = {**env, "FUSION_SAVED_LD_LIBRARY_PATH": "/opt/lib", "FUSION_SAVED_LD_PRELOAD": ""}
    done = fusion("env", env=env)
    lines = done.stdout.splitlines()
    assert "LD_LIBRARY_PATH=/opt/lib" in lines
    assert "LD_PRELOAD=" in lines
    assert not [line for line in lines if line.startswith("FUSION_SAVED_")]


def test_without_dev_fuse_it_warns_once_and_runs_the_command(env):
    unshare = need_binary("unshare")
    hide_fuse = 'mount -t tmpfs tmpfs /dev && exec "$@"'
    done = subprocess.run(
        [unshare, "--mount", "sh", "-c", hide_fuse, "sh", *FUSION, "sh", "-c", "echo ran; exit 5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 5
    assert done.stdout == "ran\n"
    assert len(done.stderr.splitlines()) == 1
    assert "without /fusion" in done.stderr and "/dev/fuse" in done.stderr


def test_as_pid_1_it_returns_the_command_status(env):
    unshare = need_binary("unshare")
    done = subprocess.run(
        [unshare, "--pid", "--fork", *FUSION, "sh", "-c", "sleep 0.1 & exit 7"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 7


@pytest.fixture
def proxy(s3rver: S3Server) -> Iterator[FaultProxy]:
    proxy = FaultProxy(int(s3rver.endpoint.rsplit(":", 1)[1]))
    yield proxy
    proxy.close()


def test_s3_down_at_exit_exits_174_naming_the_lost_file(s3rver, env, proxy, tmp_path):
    bucket = s3rver.new_bucket("lost")
    go = tmp_path / "go"
    ready = tmp_path / "ready"
    script = (  # writes, then goes on writing after S3 went down, and exits
        "import os, sys, time\n"
        f"out = open(os.environ['FUSION_MOUNT'] + '/s3/{bucket}/lost.txt', 'w')\n"
        "out.write('first'); out.flush()\n"
        f"open('{ready}', 'w').close()\n"
        f"while not os.path.exists('{go}'): time.sleep(0.05)\n"
        "out.write('second')\n"
    )
    env = {**env, "AWS_ENDPOINT_URL": proxy.endpoint}
    proc = subprocess.Popen(
        [*FUSION, sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until(ready.exists, 30, "the command to write")
        proxy.down = True
        go.touch()
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 174, stderr
    assert f"s3://{bucket}/lost.txt" in stderr


def test_logs_and_the_summary_go_to_fusion_log_output(env, tmp_path):
    log = tmp_path / "fusion.log"
    done = fusion("true", env={**env, "FUSION_LOG_OUTPUT": str(log)})
    assert done.returncode == 0
    assert done.stderr == ""
    assert "summary: fetched" in log.read_text()


def test_a_bad_setting_is_a_one_line_error(env):
    done = fusion("true", env={**env, "FUSION_CACHE_SIZE": "lots"})
    assert done.returncode == 1
    assert done.stderr.startswith("[fusion] error: FUSION_CACHE_SIZE")
    assert len(done.stderr.splitlines()) == 1


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mountpoint], check=True)
    yield mountpoint
    subprocess.run(["umount", "-l", mountpoint], check=False)


def test_reads_succeed_when_the_cache_directory_is_full(s3rver, env, small_tmpfs, tmp_path):
    bucket = s3rver.new_bucket("full")
    data = os.urandom(12 * 2**20)  # three times the cache file system
    s3rver.boto3_client().put_object(Bucket=bucket, Key="big.bin", Body=data)
    expected = tmp_path / "expected"
    expected.write_bytes(data)
    env = {**env, "FUSION_CACHE_LOCATION": str(small_tmpfs), "FUSION_CACHE_SIZE": "64M"}
    done = fusion("cmp", f"{env['FUSION_MOUNT']}/s3/{bucket}/big.bin", str(expected), env=env)
    assert done.returncode == 0, done.stdout + done.stderr


def test_fusion_mount_serves_in_the_foreground_until_sigterm(s3rver, env, tmp_path):
    bucket = s3rver.new_bucket("fg")
    s3rver.boto3_client().put_object(Bucket=bucket, Key="hello.txt", Body=b"hi\n")
    directory = tmp_path / "host-mount"
    proc = subprocess.Popen([*FUSION, "mount", str(directory)], env=env, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: (directory / "s3").exists(), 30, "the mount")
        assert (directory / "s3" / bucket / "hello.txt").read_bytes() == b"hi\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait()
    assert not (directory / "s3").exists()


def test_the_command_starts_with_default_signal_dispositions(env):
    done = fusion("grep", "SigIgn", "/proc/self/status", env=env)
    ignored = int(done.stdout.split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    assert not ignored & (1 << (signal.SIGXFSZ - 1))


def test_as_pid_1_it_reaps_orphaned_processes(env):
    unshare = need_binary("unshare")
    script = '(sh -c "sleep 0.1" &); sleep 1; cat /proc/[0-9]*/stat'
    done = subprocess.run(
        [unshare, "--pid", "--fork", "--mount-proc", *FUSION, "sh", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    states = [line.rsplit(")", 1)[1].split()[0] for line in done.stdout.splitlines()]
    assert len(states) >= 2, "the launcher and the shell at least"
    assert "Z" not in states


def test_a_log_file_inside_the_mount_is_saved_there_at_exit(s3rver, env):
    bucket = s3rver.new_bucket("log")
    s3rver.boto3_client().put_object(Bucket=bucket, Key="work/", Body=b"")
    log = f"{env['FUSION_MOUNT']}/s3/{bucket}/work/.fusion.log"
    done = fusion("true", env={**env, "FUSION_LOG_OUTPUT": log})
    assert done.returncode == 0, done.stderr
    saved = s3rver.boto3_client().get_object(Bucket=bucket, Key="work/.fusion.log")
    assert b"summary: fetched" in saved["Body"].read()


def test_the_read_cache_yields_its_disk_space_to_files_being_written(s3rver, env, small_tmpfs):
    bucket = s3rver.new_bucket("yield")
    s3rver.boto3_client().put_object(Bucket=bucket, Key="in.bin", Body=os.urandom(3 * 2**20))
    root = f"{env['FUSION_MOUNT']}/s3/{bucket}"
    script = f"cat {root}/in.bin > /dev/null && head -c 3145728 /dev/urandom > {root}/out.bin"
    done = fusion("sh", "-c", script, env={**env, "FUSION_CACHE_LOCATION": str(small_tmpfs)})
    assert done.returncode == 0, done.stderr
    head = s3rver.boto3_client().head_object(Bucket=bucket, Key="out.bin")
    assert head["ContentLength"] == 3 * 2**20


def test_a_file_that_cannot_be_executed_exits_126_with_the_cause(env, tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x7fELF not really")
    junk.chmod(0o755)
    done = fusion(str(junk), env=env)
    assert done.returncode == 126
    assert "Exec format error" in done.stderr
