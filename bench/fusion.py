"""The Fusion client against the stage-in/stage-out a pipeline does today and two FUSE peers.

One s3rver, one run, four clients side by side:
- boto3's TransferManager (download_file / upload_file): staging whole files;
- `s3fs` (Debian s3fs-fuse) and `rclone mount --vfs-cache-mode full` (Debian rclone);
- our `fusion mount DIR`, run as its own process like the peers.

Measured (median of `repeat` runs): sequential read of SIZE; random 1 MiB reads over 5% of a
2*SIZE object, by one reader and by READERS at once (boto3: the same ranged GETs one by one on a
keep-alive connection, and from READERS threads: the limit the server sets); writing SIZE until
durable (close returned and the complete object is visible in S3); `ls -l` of 10,000 objects
(boto3: a bare ListObjectsV2 walk); every client's CPU seconds per GiB read and peak anonymous
memory (RssAnon, sampled while it works).
Each run gets a fresh mount and cache directory, after the page cache is dropped, so nothing is
served warm. Every client is a separate process, so none of them shares our GIL.
"""

from __future__ import annotations

import io
import os
import random
import statistics
import subprocess
from concurrent.futures import ThreadPoolExecutor
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
from bench.sdk import timed_sdk_job

BUCKET = "bench"
LIST_BUCKET = "bench-listing"  # apart: s3rver's HeadBucket slows down with the bucket's size
LIST_OBJECTS = 10_000
RANDOM_SHARE = 0.05
READERS = 4  # parallel random readers (boto3: threads)
MEMORY_TARGET_MIB = 64
CLIENTS = ("fusion", "boto3", *PEERS)  # column order of the tables
WORKLOADS = ("seq", "random", f"random{READERS}", "write", "ls")
# s3rver files to read back before a measurement (see Workspace.cold_start)
SEQ, RANDOM, LISTED = ("bench/seq.bin",), ("bench/random.bin",), (f"{LIST_BUCKET}/many",)

# -- the clients -------------------------------------------------------------------------------


@dataclass
class Bench(Workspace):
    size: int = 0  # bytes of the sequential file and of each write; the random-read object is 2x

    @property
    def upload_source(self) -> Path:
        """The local file boto3 stages out (a task's output, still in the page cache)."""
        return self.workdir / "upload.bin"

    def boto3(
        self, workload: str, warm: tuple[str, ...], bucket: str = BUCKET, **job: object
    ) -> float:
        """Run one boto3 job in its own process; the seconds its transfer took."""
        server = self.server
        job |= {"endpoint": server.endpoint, "key": server.access_key, "secret": server.secret_key}
        return timed_sdk_job(self, "s3", workload, warm, bucket=bucket, **job)


# -- the workloads -----------------------------------------------------------------------------


def read_sequentially(path: Path) -> None:
    buffer = bytearray(MiB)
    with path.open("rb", buffering=0) as file:
        while file.readinto(buffer):
            pass


def random_offsets(size: int) -> list[int]:
    """Where the random 1 MiB reads of a 2*size object go: RANDOM_SHARE of it, always alike."""
    chunks = 2 * size // MiB
    return [n * MiB for n in random.Random(5).sample(range(chunks), round(chunks * RANDOM_SHARE))]


def read_at(path: Path, offsets: list[int], readers: int = 1) -> None:
    """1 MiB preads at `offsets`, split between `readers` threads, each with its own fd."""

    def read_share(share: list[int]) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            for offset in share:
                if len(os.pread(fd, MiB, offset)) != MiB:
                    raise RuntimeError(f"short read at {offset} of {path}")
        finally:
            os.close(fd)

    with ThreadPoolExecutor(readers) as pool:
        list(pool.map(read_share, [offsets[n::readers] for n in range(readers)]))


def write_file(path: Path, size: int, block: bytes) -> None:
    with path.open("wb", buffering=0) as file:
        for _ in range(size // MiB):
            file.write(block)


def list_long(directory: Path) -> None:
    done = subprocess.run(["ls", "-l", str(directory)], capture_output=True, text=True)
    if done.returncode or done.stdout.count("\n") < LIST_OBJECTS:
        raise RuntimeError(f"ls -l {directory} failed: {done.stderr[-500:]}")


# -- the suite ---------------------------------------------------------------------------------


@dataclass
class Row:
    metric: str
    unit: str
    better: str  # "lower" or "higher"
    values: dict[str, float]
    target: str  # in words, for the side-by-side table
    met: bool
    boto3_target: float | None = None  # the ratio fusion/boto3 we aim for, if boto3 is a peer


def run(repeat: int, size_mib: int = 1024) -> list[Comparison]:
    with s3rver_workdir("fusion") as (server, workdir):
        bench = Bench(server, workdir, size=size_mib * MiB)
        try:
            seed(bench)
            rows = measure(bench, repeat)
        finally:
            bench.memory.close()
    print(side_by_side(rows, size_mib, repeat), flush=True)
    peaks = ", ".join(
        f"{work} {mib:.1f}" for work, mib in sorted(bench.memory.peaks_mib("fusion").items())
    )
    print(f"\nfusion peak RssAnon by workload (MiB): {peaks}", flush=True)
    print(bench.cpu_table(CLIENTS, WORKLOADS), flush=True)
    return comparisons(rows)


def seed(bench: Bench) -> None:
    s3 = bench.server.boto3_client(max_pool_connections=32)
    s3.create_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket=LIST_BUCKET)
    block = os.urandom(MiB)
    print(
        f"bench.fusion: seeding {bench.size * 3 >> 20} MiB and {LIST_OBJECTS} objects", flush=True
    )
    for key, size in (("seq.bin", bench.size), ("random.bin", 2 * bench.size)):
        s3.upload_fileobj(io.BytesIO(block * (size // MiB)), BUCKET, key)
    with ThreadPoolExecutor(32) as pool:
        list(
            pool.map(
                lambda n: s3.put_object(
                    Bucket=LIST_BUCKET, Key=f"many/{n:05d}.txt", Body=b"x" * 100
                ),
                range(LIST_OBJECTS),
            )
        )
    bench.upload_source.write_bytes(block * (bench.size // MiB))


def measure(bench: Bench, repeat: int) -> list[Row]:
    size = bench.size
    clients = ["boto3", *(kind.name for kind in MOUNTS)]
    samples: dict[str, dict[str, list[float]]] = {
        metric: {client: [] for client in clients} for metric in WORKLOADS
    }
    offsets = random_offsets(size)
    block = os.urandom(MiB)
    s3 = bench.server.boto3_client()
    staged = bench.workdir / "staged.bin"
    for run_number in range(repeat):
        print(f"bench.fusion: run {run_number + 1} of {repeat}", flush=True)
        by_boto3 = {metric: samples[metric]["boto3"] for metric in samples}
        download = {"op": "download", "path": str(staged)}
        by_boto3["seq"].append(bench.boto3("seq", SEQ, object="seq.bin", **download))
        staged.unlink()
        for readers, workload in ((1, "random"), (READERS, f"random{READERS}")):
            gets = {"op": "gets", "object": "random.bin", "reads": offsets, "threads": readers}
            by_boto3[workload].append(bench.boto3(workload, RANDOM, **gets))
        key = f"written/boto3-{run_number}.bin"
        upload = {"op": "upload", "path": str(bench.upload_source)}
        by_boto3["write"].append(bench.boto3("write", ("upload.bin",), object=key, **upload))
        s3.delete_object(Bucket=BUCKET, Key=key)
        by_boto3["ls"].append(bench.boto3("ls", LISTED, LIST_BUCKET, op="list", prefix="many/"))
        for kind in MOUNTS:
            by_client = {metric: samples[metric][kind.name] for metric in samples}
            key = f"written/{kind.name}-{run_number}.bin"

            def write(root: Path, key: str = key) -> None:
                (root / "written").mkdir(exist_ok=True)
                write_file(root / key, size, block)
                wait_durable(bench.server, BUCKET, key, size)

            def read_randomly(root: Path, readers: int = 1) -> None:
                read_at(root / "random.bin", offsets, readers)

            by_client["seq"].append(
                timed_on_fresh_mount(
                    bench, kind, "seq", SEQ, lambda r: read_sequentially(r / "seq.bin"), BUCKET
                )
            )
            by_client["random"].append(
                timed_on_fresh_mount(bench, kind, "random", RANDOM, read_randomly, BUCKET)
            )
            by_client[f"random{READERS}"].append(
                timed_on_fresh_mount(
                    bench,
                    kind,
                    f"random{READERS}",
                    RANDOM,
                    lambda r: read_randomly(r, READERS),
                    BUCKET,
                )
            )
            by_client["write"].append(timed_on_fresh_mount(bench, kind, "write", (), write, BUCKET))
            s3.delete_object(Bucket=BUCKET, Key=key)
            by_client["ls"].append(
                timed_on_fresh_mount(
                    bench, kind, "ls", LISTED, lambda r: list_long(r / "many"), LIST_BUCKET
                )
            )
    medians = {
        metric: {client: statistics.median(values) for client, values in by.items()}
        for metric, by in samples.items()
    }
    return rows_from(medians, bench)


def rows_from(medians: dict[str, dict[str, float]], bench: Bench) -> list[Row]:
    mib = bench.size / MiB
    seq = {client: mib / seconds for client, seconds in medians["seq"].items()}
    random_reads, write, ls = medians["random"], medians["write"], medians["ls"]
    parallel = medians[f"random{READERS}"]
    memory = {client: bench.memory.peak_mib(client) for client in ("boto3", *PEERS, "fusion")}
    random_gib = round(2 * mib * RANDOM_SHARE) / 1024  # 1 MiB per read

    def cpu_per_gib(workload: str, gib: float) -> dict[str, float]:
        return {
            client: statistics.median(bench.cpu[(client, workload)]) / gib for client in CLIENTS
        }

    def ahead(values: dict[str, float], better: str) -> bool:
        ours = values["fusion"]
        peers = [values[peer] for peer in PEERS]
        return ours >= max(peers) if better == "higher" else ours <= min(peers)

    return [
        Row(
            f"sequential read {mib:.0f} MiB",
            "MB/s",
            "higher",
            {client: rate * MiB / 1e6 for client, rate in seq.items()},
            ">= 1.2x boto3, ahead of peers",
            seq["fusion"] >= 1.2 * seq["boto3"] and ahead(seq, "higher"),
            boto3_target=1.2,
        ),
        Row(
            f"random 1 MiB reads, 5% of {2 * mib:.0f} MiB (boto3: ranged GETs one by one)",
            "s",
            "lower",
            random_reads,
            "<= 1.0x boto3, ahead of peers",
            random_reads["fusion"] <= random_reads["boto3"] and ahead(random_reads, "lower"),
            boto3_target=1.0,
        ),
        Row(
            f"random 1 MiB reads, {READERS} readers (boto3: {READERS} threads of ranged GETs)",
            "s",
            "lower",
            parallel,
            "<= 1.0x boto3, ahead of peers",
            parallel["fusion"] <= parallel["boto3"] and ahead(parallel, "lower"),
            boto3_target=1.0,
        ),
        Row(
            f"write {mib:.0f} MiB until durable",
            "s",
            "lower",
            write,
            "<= 1.0x boto3, ahead of peers",
            write["fusion"] <= write["boto3"] and ahead(write, "lower"),
            boto3_target=1.0,
        ),
        Row(
            f"ls -l of {LIST_OBJECTS} objects (boto3: bare ListObjectsV2)",
            "s",
            "lower",
            ls,
            "<= 1.1x boto3, ahead of peers",
            ls["fusion"] <= 1.1 * ls["boto3"] and ahead(ls, "lower"),
            boto3_target=1.1,
        ),
        *(
            Row(
                f"client CPU per GiB read, {what}",
                "s",
                "lower",
                per_gib,
                "<= s3fs",
                per_gib["fusion"] <= per_gib["s3fs"],
            )
            for what, per_gib in (
                ("sequential", cpu_per_gib("seq", mib / 1024)),
                ("random", cpu_per_gib("random", random_gib)),
            )
        ),
        Row(
            "peak RssAnon",
            "MiB",
            "lower",
            memory,
            f"<= {MEMORY_TARGET_MIB} MiB, ahead of peers",
            memory["fusion"] <= MEMORY_TARGET_MIB and ahead(memory, "lower"),
        ),
    ]


def side_by_side(rows: list[Row], size_mib: int, repeat: int) -> str:
    clients = CLIENTS
    lines = [
        f"\nFusion client, size {size_mib} MiB, medians of {repeat} run(s):\n",
        f"| metric | {' | '.join(clients)} | target | met |",
        f"| --- | {' | '.join('---:' for _ in clients)} | --- | :---: |",
    ]
    for row in rows:
        cells = " | ".join(f"{row.values[client]:.2f} {row.unit}" for client in clients)
        lines.append(f"| {row.metric} | {cells} | {row.target} | {'yes' if row.met else 'NO'} |")
    return "\n".join(lines)


def comparisons(rows: list[Row]) -> list[Comparison]:
    """Fusion against each peer, as ratios for the runner's table."""
    result = []
    for row in rows:
        targets = {peer: 1.0 for peer in PEERS}
        if row.boto3_target is not None:
            targets = {"boto3": row.boto3_target} | targets
        for peer, target in targets.items():
            result.append(
                Comparison(
                    f"fusion: {row.metric}",
                    row.unit,
                    row.values["fusion"],
                    row.values[peer],
                    peer,
                    row.better,
                    target,
                )
            )
    return result
