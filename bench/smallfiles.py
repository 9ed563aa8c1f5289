"""Many small files (issue 13): a shell loop writing 8 KiB files, and `cat dir/*` of them.

One s3rver, one run, every contender taking turns within each round:
- write: `mkdir DIR; for i in $(seq N); do cat SRC > DIR/f$i; done`. Fusion runs it under its
  launcher (`fusion sh -c ...`), timed until the launcher exits, i.e. every file durable; s3fs
  and `rclone mount --vfs-cache-mode full` run it on a fresh mount, timed until the last object
  is in S3; boto3 puts the N objects from 16 threads.
- read: `cat DIR/* > /dev/null` of N seeded objects on a fresh mount after the page cache is
  dropped; boto3 gets them from 16 threads.
- fusion's write loop again with 20,000 files in one directory: time per file against 2,000.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.mounts import MOUNTS, MountedClient, Workspace, s3rver_workdir, timed_on_fresh_mount
from bench.report import Comparison
from tests.support import REPO, wait_until

BUCKET = "small"
FILES, MANY_FILES, SIZE = 2_000, 20_000, 8 * 1024
THREADS = 16
PEER_NAMES = tuple(kind.name for kind in MOUNTS if kind.name != "fusion")


def run(repeat: int) -> list[Comparison]:
    with s3rver_workdir("smallfiles") as (server, workdir):
        space = Workspace(server, workdir)
        try:
            return measure(space, repeat)
        finally:
            space.memory.close()


def measure(space: Workspace, repeat: int) -> list[Comparison]:
    s3 = space.server.boto3_client(max_pool_connections=THREADS * 2)
    s3.create_bucket(Bucket=BUCKET)
    source = space.workdir / "source.bin"
    source.write_bytes(os.urandom(SIZE))
    body = source.read_bytes()
    print(f"bench.smallfiles: seeding {FILES} objects of {SIZE} B", flush=True)
    put_all(s3, "read", FILES, body)
    writes: dict[str, list[float]] = {"boto3": [], **{kind.name: [] for kind in MOUNTS}}
    reads: dict[str, list[float]] = {name: [] for name in writes}
    for round_number in range(repeat):
        print(f"bench.smallfiles: round {round_number + 1} of {repeat}", flush=True)
        writes["boto3"].append(timed(lambda: put_all(s3, "boto3", FILES, body)))
        delete_prefix(s3, "boto3/")
        reads["boto3"].append(timed(lambda: get_all(s3, "read", FILES)))
        print(
            f"  boto3 put {writes['boto3'][-1]:.2f} s, get {reads['boto3'][-1]:.2f} s", flush=True
        )
        for kind in MOUNTS:
            folder = f"{kind.name}-{round_number}"
            writes[kind.name].append(write_loop(space, kind, folder, FILES, source))
            delete_prefix(s3, folder + "/")
            reads[kind.name].append(timed_on_fresh_mount(space, kind, "cat", (), cat_all, BUCKET))
    print(f"bench.smallfiles: fusion writing {MANY_FILES} files into one directory", flush=True)
    many = write_loop(space, MOUNTS[0], "many", MANY_FILES, source)  # s3rver deletes slowly
    write, read = median(writes), median(reads)
    print_table(write, read, many)
    print(space.cpu_table(tuple(reads)[1:], ("cat",)), flush=True)
    return comparisons(write, read, many)


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def put_all(s3, prefix: str, count: int, body: bytes) -> None:
    with ThreadPoolExecutor(THREADS) as pool:
        list(
            pool.map(
                lambda n: s3.put_object(Bucket=BUCKET, Key=f"{prefix}/f{n}", Body=body),
                range(1, count + 1),
            )
        )


def get_all(s3, prefix: str, count: int) -> None:
    with ThreadPoolExecutor(THREADS) as pool:
        list(
            pool.map(
                lambda n: s3.get_object(Bucket=BUCKET, Key=f"{prefix}/f{n}")["Body"].read(),
                range(1, count + 1),
            )
        )


def delete_prefix(s3, prefix: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})


def loop_script(root: Path | str, folder: str, count: int, source: Path) -> str:
    return (
        f"mkdir {root}/{folder} && for i in $(seq {count}); do "
        f"cat {source} > {root}/{folder}/f$i; done"
    )


def write_loop(
    space: Workspace, kind: type[MountedClient], folder: str, count: int, source: Path
) -> float:
    """Seconds until `count` files written by a shell loop are all in S3."""
    space.cold_start(())
    if kind.name == "fusion":  # under the launcher: it exits once every upload is durable
        mount = space.fresh_dir("fusion-launcher-mnt")
        env = {
            **os.environ,
            **space.server.env(),
            "FUSION_MOUNT": str(mount),
            "FUSION_CACHE_LOCATION": str(space.fresh_dir("fusion-launcher-cache")),
            "FUSION_LOG_LEVEL": "warning",
            "PYTHONPATH": str(REPO),
        }
        script = loop_script(f"{mount}/s3/{BUCKET}", folder, count, source)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "fusion_client", "sh", "-ec", script], env=env, check=True
        )
        seconds = time.perf_counter() - start
    else:
        client = kind(space, BUCKET)
        try:
            start = time.perf_counter()
            script = loop_script(client.root, folder, count, source)
            subprocess.run(["sh", "-ec", script], check=True)
            wait_for_objects(space, folder + "/", count)
            seconds = time.perf_counter() - start
        finally:
            client.stop()
    print(f"  write  {kind.name:7} {count} files {seconds:7.2f} s", flush=True)
    return seconds


def wait_for_objects(space: Workspace, prefix: str, count: int) -> None:
    s3 = space.server.boto3_client()

    def present() -> int:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sum(page.get("KeyCount", 0) for page in pages)

    wait_until(lambda: present() >= count, 900, f"{count} objects under {prefix}")


def cat_all(root: Path) -> None:
    subprocess.run(["sh", "-ec", f"cat {root}/read/* > /dev/null"], check=True)


def median(samples: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in samples.items()}


def print_table(write: dict[str, float], read: dict[str, float], many: float) -> None:
    lines = [
        f"\n| {FILES} files of 8 KiB, seconds | {' | '.join(write)} |",
        f"| --- | {' | '.join('---:' for _ in write)} |",
        f"| shell loop writes, until durable | {' | '.join(f'{v:.2f}' for v in write.values())} |",
        f"| `cat dir/*` | {' | '.join(f'{v:.2f}' for v in read.values())} |",
        f"\nfusion per file: {1000 * write['fusion'] / FILES:.2f} ms at {FILES}, "
        f"{1000 * many / MANY_FILES:.2f} ms at {MANY_FILES}",
    ]
    print("\n".join(lines), flush=True)


def comparisons(write: dict[str, float], read: dict[str, float], many: float) -> list[Comparison]:
    rows = [
        Comparison(
            f"{FILES} x 8 KiB shell loop write",
            "s",
            write["fusion"],
            write["boto3"],
            "boto3 16 threads",
            "lower",
            1.5,
        ),
        Comparison(
            f"cat of {FILES} x 8 KiB",
            "s",
            read["fusion"],
            read["boto3"],
            "boto3 16 threads",
            "lower",
            1.5,
        ),
    ]
    for peer in PEER_NAMES:
        rows.append(
            Comparison(
                f"{FILES} x 8 KiB shell loop write",
                "s",
                write["fusion"],
                write[peer],
                peer,
                "lower",
                1.0,
            )
        )
        rows.append(
            Comparison(
                f"cat of {FILES} x 8 KiB", "s", read["fusion"], read[peer], peer, "lower", 1.0
            )
        )
    rows.append(
        Comparison(
            f"write time per file, {MANY_FILES} files",
            "ms",
            1000 * many / MANY_FILES,
            1000 * write["fusion"] / FILES,
            f"fusion at {FILES} files",
            "lower",
            1.2,
        )
    )
    return rows
