"""FUSE clients mounted as their own processes, and what the bench samples of them.

Shared by the suites that drive a mount (bench/fusion.py, bench/fio.py, bench/clouds.py): our
`fusion mount`, `s3fs` (Debian s3fs-fuse) and `rclone mount --vfs-cache-mode full`, each started
on a fresh mount and cache directory against one store (an S3 server for the peers; Fusion also
on the GCS and Azure emulators), with its CPU time and peak anonymous memory recorded per
workload.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import REPO, need_binary, wait_until
from tests.support.cloudservers import AzureServer, GcsServer
from tests.support.s3servers import S3Server, start_s3rver

MiB = 2**20
PEERS = ("s3fs", "rclone")
ObjectServer = S3Server | GcsServer | AzureServer  # an emulator Fusion mounts


# -- memory sampling ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_anon_kib(pid: int) -> int:
    """RssAnon of a process, all its threads included (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


class PeakMemory:
    """Samples RssAnon of watched processes every 20 ms; keeps the peak per client and workload."""

    def __init__(self) -> None:
        self.peak_kib: dict[tuple[str, str], int] = {}
        self._watched: dict[int, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def watching(self, client: str, workload: str, pid: int) -> Iterator[None]:
        with self._lock:
            self._watched[pid] = (client, workload)
        try:
            yield
        finally:
            self._record(pid, (client, workload))
            with self._lock:
                del self._watched[pid]

    def peak_mib(self, client: str) -> float:
        return max(kib for (name, _), kib in self.peak_kib.items() if name == client) / 1024

    def peaks_mib(self, client: str) -> dict[str, float]:
        """The client's peak during each workload."""
        return {work: kib / 1024 for (name, work), kib in self.peak_kib.items() if name == client}

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            with self._lock:
                watched = list(self._watched.items())
            for pid, key in watched:
                self._record(pid, key)

    def _record(self, pid: int, key: tuple[str, str]) -> None:
        kib = rss_anon_kib(pid)
        if kib > self.peak_kib.get(key, 0):
            self.peak_kib[key] = kib


# -- the workspace ----------------------------------------------------------------------------


@dataclass
class Workspace:
    """One store and a scratch directory (the store's data in `workdir/data_dir`), with the CPU
    time and memory of every client measured there."""

    server: ObjectServer
    workdir: Path
    data_dir: str = "s3rver"
    memory: PeakMemory = field(default_factory=PeakMemory)
    cpu: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # seconds per run
    _runs: int = 0

    def fresh_dir(self, name: str) -> Path:
        self._runs += 1
        path = self.workdir / f"{name}-{self._runs}"
        path.mkdir()
        return path

    def cold_start(self, warm: tuple[str, ...]) -> None:
        """Drop the page cache, so no client starts warm, then read back the server's files for
        the objects of the next measurement (and the local `warm` ones): S3 does not slow down
        when our page cache is empty, and a cold disk under s3rver would measure the disk."""
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        data = self.workdir / self.data_dir
        for name in warm:
            paths = (data / name).rglob("*") if (data / name).is_dir() else data.glob(f"{name}.*")
            for path in [*paths, *self.workdir.glob(name)]:
                if path.is_file():
                    with path.open("rb") as file:
                        while file.read(8 * MiB):
                            pass

    def cpu_table(self, clients: tuple[str, ...], workloads: tuple[str, ...]) -> str:
        """CPU seconds each client process spent per workload (medians): steadier than wall
        time on a busy machine, and what a task pays on a small instance."""
        lines = [
            "\nCPU seconds (user+sys) of the client process, medians:\n",
            f"| workload | {' | '.join(clients)} |",
            f"| --- | {' | '.join('---:' for _ in clients)} |",
        ]
        for workload in workloads:
            cells = " | ".join(
                f"{statistics.median(self.cpu[(client, workload)]):.2f}" for client in clients
            )
            lines.append(f"| {workload} | {cells} |")
        return "\n".join(lines)


@contextlib.contextmanager
def s3rver_workdir(suite: str) -> Iterator[tuple[S3Server, Path]]:
    """A scratch directory on disk (not tmpfs) with an s3rver keeping its data in it; mounting
    and dropping the page cache need root."""
    if os.geteuid() != 0:
        raise SystemExit(f"bench {suite}: needs root (mounts, drop_caches)")
    with tempfile.TemporaryDirectory(prefix=f"bench-{suite}-", dir="/var/tmp") as tmp:
        workdir = Path(tmp)
        (workdir / "s3rver").mkdir()
        server = start_s3rver(workdir, workdir / "s3rver")
        try:
            yield server, workdir
        finally:
            assert server.service is not None
            server.service.stop()


def wait_durable(server: S3Server, bucket: str, key: str, size: int) -> None:
    """Wait until S3 holds the complete object (rclone uploads only after close)."""
    s3 = server.boto3_client()

    def complete() -> bool:  # errors (404 until the upload lands) count as "not yet"
        return s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == size

    wait_until(complete, 600, f"{key} to reach S3")


# -- the clients -------------------------------------------------------------------------------


class MountedClient:
    """A FUSE client process serving a bucket at `root` until stopped."""

    name: str

    def __init__(self, space: Workspace, bucket: str) -> None:
        self.space, self.bucket = space, bucket
        self.mountpoint = space.fresh_dir(f"{self.name}-mnt")
        self.cache = space.fresh_dir(f"{self.name}-cache")
        self.log = (space.workdir / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(
            self.argv(),
            env=self.environment(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        deadline = time.monotonic() + 30
        while not os.path.ismount(self.mountpoint):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not mount; see {self.log.name}")
            time.sleep(0.05)

    @property
    def root(self) -> Path:
        return self.mountpoint

    def argv(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if os.path.ismount(self.mountpoint):
            subprocess.run(["umount", "-l", str(self.mountpoint)], check=False)
        self.log.close()
        shutil.rmtree(self.cache, ignore_errors=True)


class Fusion(MountedClient):
    name = "fusion"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "fusion_client", "mount", str(self.mountpoint)]

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.space.server.env(),
            "FUSION_CACHE_LOCATION": str(self.cache),
            "FUSION_LOG_LEVEL": "warning",
            "PYTHONPATH": str(REPO),
        }

    @property
    def root(self) -> Path:
        return self.mountpoint / self.space.server.scheme / self.bucket


class S3fs(MountedClient):
    name = "s3fs"

    def argv(self) -> list[str]:
        server = self.space.server
        passwd = self.cache / "passwd"
        passwd.write_text(f"{server.access_key}:{server.secret_key}\n")
        passwd.chmod(0o600)
        return [
            need_binary("s3fs"),
            self.bucket,
            str(self.mountpoint),
            "-f",
            "-o",
            f"url={server.endpoint}",
            "-o",
            "use_path_request_style",
            "-o",
            f"passwd_file={passwd}",
            "-o",
            f"tmpdir={self.cache}",
        ]


class Rclone(MountedClient):
    name = "rclone"

    def argv(self) -> list[str]:
        return [
            need_binary("rclone"),
            "mount",
            f"bench:{self.bucket}",
            str(self.mountpoint),
            "--vfs-cache-mode",
            "full",
            "--cache-dir",
            str(self.cache),
            "--vfs-write-back",
            "0s",  # upload as soon as a file is closed (default: 5 s later)
        ]

    def environment(self) -> dict[str, str]:
        server = self.space.server
        env = {name: value for name, value in os.environ.items() if name != "AWS_CA_BUNDLE"}
        return env | {
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ENDPOINT": server.endpoint,
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": server.access_key,
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": server.secret_key,
            "RCLONE_CONFIG_BENCH_REGION": server.region,
            "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
        }


MOUNTS: tuple[type[MountedClient], ...] = (Fusion, S3fs, Rclone)


def timed_on_fresh_mount(
    space: Workspace,
    kind: type[MountedClient],
    workload: str,
    warm: tuple[str, ...],
    action: Callable[[Path], None],
    bucket: str,
) -> float:
    """Seconds `action(bucket_root)` takes on a fresh mount with an empty cache."""
    client = kind(space, bucket)
    try:
        space.cold_start(warm)
        with space.memory.watching(client.name, workload, client.process.pid):
            start, cpu = time.perf_counter(), cpu_seconds(client.process.pid)
            action(client.root)
            seconds = time.perf_counter() - start
            cpu = cpu_seconds(client.process.pid) - cpu
    finally:
        client.stop()
    space.cpu.setdefault((client.name, workload), []).append(cpu)
    print(f"  {workload:6} {client.name:7} {seconds:7.2f} s, cpu {cpu:6.2f} s", flush=True)
    return seconds
