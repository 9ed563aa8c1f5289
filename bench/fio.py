"""fio, the field's standard, through the mount: fusion against s3fs and rclone in one run.

The job files live in bench/fio/ (anyone can rerun them by hand with the same environment
variables). One s3rver holds a SIZE object for the sequential reads and a 2*SIZE one for the
random reads. Every measurement gets a fresh mount and cache directory after the page cache is
dropped (bench/mounts.py), and the clients take turns within each round:
- sequential read of SIZE, 1 job, and 4 jobs each reading a quarter of it at once;
- random 1 MiB reads over the 2*SIZE object, 5% of it in all, 1 job and 4 jobs;
- sequential write of SIZE with end_fsync=1, until S3 holds the whole object.
Rates are fio's own: bytes over the time its jobs ran (fio's process start-up, ~0.7 s here, and
the first open stay out); the write's time runs on until the object is in S3.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.mounts import (
    MOUNTS,
    PEERS,
    MiB,
    Workspace,
    s3rver_workdir,
    timed_on_fresh_mount,
    wait_durable,
)
from bench.report import Comparison
from tests.support import need_binary

JOBS_DIR = Path(__file__).with_name("fio")
BUCKET = "fio"
RANDOM_SHARE = 0.05
CLIENTS = ("fusion", *PEERS)


@dataclass(frozen=True)
class Workload:
    """One fio job file run with one set of variables."""

    name: str  # short, for the log and the CPU table
    title: str  # for the results table
    job: str  # bench/fio/<job>.fio
    nbytes: int  # bytes read or written in all
    variables: dict[str, str]
    written: str | None = None  # the object a write job creates


def workloads(size: int) -> list[Workload]:
    mib = size // MiB
    random_total = max(1, round(2 * mib * RANDOM_SHARE / 4)) * 4 * MiB  # whole MiB per job
    result = []
    for jobs in (1, 4):
        result.append(
            Workload(
                f"seq{jobs}",
                f"fio sequential read {mib} MiB, {jobs} job(s)",
                "seq-read",
                size,
                {"FILE": "seq.bin", "JOBS": str(jobs), "SHARE": str(size // jobs)},
            )
        )
    for jobs in (1, 4):
        result.append(
            Workload(
                f"rand{jobs}",
                f"fio random 1 MiB reads over {2 * mib} MiB, {jobs} job(s)",
                "rand-read",
                random_total,
                {
                    "FILE": "random.bin",
                    "JOBS": str(jobs),
                    "READS_PER_JOB": str(random_total // jobs),
                },
            )
        )
    result.append(
        Workload(
            "write",
            f"fio sequential write {mib} MiB, end_fsync=1, until in S3",
            "seq-write",
            size,
            {"FILE": "written.bin", "SIZE": str(size)},
            written="written.bin",
        )
    )
    return result


def run(repeat: int, size_mib: int = 1024) -> list[Comparison]:
    need_binary("fio")
    size = size_mib * MiB
    with s3rver_workdir("fio") as (server, workdir):
        space = Workspace(server, workdir)
        try:
            seed(space, size)
            rates = measure(space, workloads(size), repeat)
        finally:
            space.memory.close()
    print(side_by_side(rates, repeat), flush=True)
    print(space.cpu_table(CLIENTS, tuple(w.name for w in workloads(size))), flush=True)
    return [
        Comparison(title, "MB/s", by_client["fusion"], by_client[peer], peer, "higher", 1.0)
        for title, by_client in rates.items()
        for peer in PEERS
    ]


def seed(space: Workspace, size: int) -> None:
    s3 = space.server.boto3_client()
    s3.create_bucket(Bucket=BUCKET)
    block = os.urandom(MiB)
    print(f"bench.fio: seeding {3 * size >> 20} MiB", flush=True)
    for key, nbytes in (("seq.bin", size), ("random.bin", 2 * size)):
        s3.upload_fileobj(io.BytesIO(block * (nbytes // MiB)), BUCKET, key)


def measure(space: Workspace, jobs: list[Workload], repeat: int) -> dict[str, dict[str, float]]:
    """Median MB/s per workload title and client."""
    s3 = space.server.boto3_client()
    seconds: dict[str, dict[str, list[float]]] = {w.title: {c: [] for c in CLIENTS} for w in jobs}
    for run_number in range(repeat):
        print(f"bench.fio: run {run_number + 1} of {repeat}", flush=True)
        for workload in jobs:
            warm = (f"{BUCKET}/{workload.variables['FILE']}",) if not workload.written else ()
            for kind in MOUNTS:
                samples = seconds[workload.title][kind.name]

                def action(
                    root: Path, workload: Workload = workload, samples: list[float] = samples
                ) -> None:
                    ran = fio(workload, root)
                    if workload.written:
                        start = time.perf_counter()
                        wait_durable(space.server, BUCKET, workload.written, workload.nbytes)
                        ran += time.perf_counter() - start
                    samples.append(ran)

                timed_on_fresh_mount(space, kind, workload.name, warm, action, BUCKET)
                if workload.written:
                    s3.delete_object(Bucket=BUCKET, Key=workload.written)
    nbytes = {w.title: w.nbytes for w in jobs}
    return {
        title: {c: nbytes[title] / statistics.median(s) / 1e6 for c, s in by_client.items()}
        for title, by_client in seconds.items()
    }


def fio(workload: Workload, root: Path) -> float:
    """Run one job file in the mounted bucket `root`; the seconds its jobs ran, by fio."""
    env = {**os.environ, **workload.variables, "DIR": str(root)}
    done = subprocess.run(
        [need_binary("fio"), "--output-format=json", str(JOBS_DIR / f"{workload.job}.fio")],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(
            f"fio {workload.job} in {root} failed ({done.returncode}): "
            f"{(done.stderr or done.stdout)[-800:]}"
        )
    (job,) = json.loads(done.stdout)["jobs"]  # group_reporting: one entry for all jobs
    direction = job["write" if workload.written else "read"]
    if direction["io_bytes"] != workload.nbytes:
        raise RuntimeError(
            f"fio {workload.job} moved {direction['io_bytes']} bytes, not {workload.nbytes}"
        )
    return max(direction["runtime"], 1) / 1000  # milliseconds, the slowest job's


def side_by_side(rates: dict[str, dict[str, float]], repeat: int) -> str:
    lines = [
        f"\nfio through the mount, MB/s, medians of {repeat} run(s):\n",
        f"| workload | {' | '.join(CLIENTS)} |",
        f"| --- | {' | '.join('---:' for _ in CLIENTS)} |",
    ]
    for title, by_client in rates.items():
        lines.append(f"| {title} | {' | '.join(f'{by_client[c]:.1f}' for c in CLIENTS)} |")
    return "\n".join(lines)
