"""After `kill -9` of the fusion launcher: its command dies with it, and the next start at the
same place clears the dead mount and removes the cache left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fusion_client.conftest import FAST_RETRIES
from tests.support import wait_until
from tests.support.s3servers import S3Server

FUSION = [sys.executable, "-m", "fusion_client"]


@pytest.fixture
def env(s3rver: S3Server, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        **s3rver.env(**FAST_RETRIES),
        "FUSION_MOUNT": str(tmp_path / "fusion"),
        "FUSION_CACHE_LOCATION": str(tmp_path / "cache"),
    }


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def killed_launcher(env, tmp_path):
    """A launcher killed with SIGKILL while its command runs; yields the command's pid."""
    pidfile = tmp_path / "child.pid"
    launcher = subprocess.Popen(
        [*FUSION, "sh", "-c", f"echo $$ > {pidfile}; exec sleep 300"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, "the command")
    child = int(pidfile.read_text())
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    try:
        yield child
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
        subprocess.run(["umount", "-l", env["FUSION_MOUNT"]], capture_output=True)


def test_the_command_dies_with_a_killed_launcher(killed_launcher):
    wait_until(lambda: not alive(killed_launcher), 10, "the orphaned command to die")


def test_the_next_start_clears_the_dead_mount_and_works(killed_launcher, env):
    with pytest.raises(OSError):
        os.stat(env["FUSION_MOUNT"])  # "Transport endpoint is not connected"
    done = subprocess.run(
        [*FUSION, "ls", f"{env['FUSION_MOUNT']}/s3"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "cleared a dead mount" in done.stderr


def test_the_next_start_removes_the_cache_left_by_the_killed_launcher(killed_launcher, env):
    cache = Path(env["FUSION_CACHE_LOCATION"])
    left = [p.name for p in cache.iterdir()]
    assert len(left) == 1
    done = subprocess.run([*FUSION, "ls", str(cache)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert left[0] not in done.stdout
    assert [p.name for p in cache.iterdir()] == []
