"""Fusion on each cloud against that cloud's own Python SDK, on the same emulator in one run.

Stores: S3 on s3rver, GCS on fake-gcs-server, Azure Blob on Azurite (the emulators of
tests/support). On each, our `fusion mount` against the stage-in / stage-out a pipeline does
without Fusion (bench/sdk.py: boto3, google-cloud-storage, azure-storage-blob, default settings):
- sequential read of SIZE (the SDK: download it);
- random 1 MiB reads over 5% of a 2*SIZE object (the SDK: download it, then read);
- writing SIZE until durable (close returned and the store holds the complete object).
Medians of `repeat` runs; each run gets a fresh mount and cache directory after the page cache
is dropped and the emulator's files are read back (bench/mounts.py), so nothing is served warm
but the emulator's disk stays out of the numbers.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fusion import random_offsets, read_at, read_sequentially, write_file
from bench.mounts import Fusion, MiB, ObjectServer, Workspace, timed_on_fresh_mount
from bench.report import Comparison
from bench.sdk import NAMES, timed_sdk_job
from tests.support import wait_until
from tests.support.cloudservers import start_azurite, start_fake_gcs
from tests.support.s3servers import start_s3rver

STORES = ("s3", "gs", "az")
WORKLOADS = ("seq", "random", "write")


@dataclass(frozen=True)
class Store:
    """How the bench starts, reaches and inspects one emulator."""

    scheme: str
    start: Callable[[Path], ObjectServer]  # with its data in workdir / data_dir
    data_dir: str
    objects_dir: Callable[[str], str]  # where in data_dir a bucket's objects are (to warm them)
    sdk_endpoint: Callable[[Any], dict[str, str]]  # the SDK job's endpoint (and credentials)
    stored_size: Callable[[Any, str, str], int]  # bytes of a complete object
    delete: Callable[[Any, str, str], None]


STORE = {
    "s3": Store(
        "s3",
        lambda workdir: start_s3rver(workdir, workdir / "s3rver"),
        "s3rver",
        lambda bucket: bucket,
        lambda s: {"endpoint": s.endpoint, "key": s.access_key, "secret": s.secret_key},
        lambda s, b, k: s.boto3_client().head_object(Bucket=b, Key=k)["ContentLength"],
        lambda s, b, k: s.boto3_client().delete_object(Bucket=b, Key=k),
    ),
    "gs": Store(
        "gs",
        start_fake_gcs,
        "data",
        lambda bucket: bucket,
        lambda s: {"endpoint": s.endpoint},
        lambda s, b, k: s.sdk().bucket(b).get_blob(k).size,
        lambda s, b, k: s.sdk().bucket(b).blob(k).delete(),
    ),
    "az": Store(
        "az",
        start_azurite,
        "data",
        lambda bucket: "__blobstorage__",  # Azurite keeps every blob's bytes in extent files
        lambda s: {"endpoint": s.connection_string},
        lambda s, b, k: s.sdk().get_blob_client(b, k).get_blob_properties().size,
        lambda s, b, k: s.sdk().get_blob_client(b, k).delete_blob(),
    ),
}


@contextlib.contextmanager
def store_workdir(store: Store) -> Iterator[Workspace]:
    """A scratch directory on disk (not tmpfs) with the store's emulator keeping its data in it;
    mounting and dropping the page cache need root."""
    if os.geteuid() != 0:
        raise SystemExit("bench clouds: needs root (mounts, drop_caches)")
    with tempfile.TemporaryDirectory(prefix=f"bench-{store.scheme}-", dir="/var/tmp") as tmp:
        workdir = Path(tmp)
        (workdir / store.data_dir).mkdir()
        server = store.start(workdir)
        try:
            yield Workspace(server, workdir, data_dir=store.data_dir)
        finally:
            assert server.service is not None
            server.service.stop()


def run(repeat: int, size_mib: int = 256, stores: tuple[str, ...] = STORES) -> list[Comparison]:
    medians: dict[str, dict[str, dict[str, float]]] = {}
    for scheme in stores:
        print(f"bench.clouds: {scheme}, {size_mib} MiB", flush=True)
        with store_workdir(STORE[scheme]) as space:
            try:
                medians[scheme] = measure(space, STORE[scheme], repeat, size_mib * MiB)
            finally:
                space.memory.close()
        print(cpu_line(space, scheme), flush=True)
    comparisons = [c for scheme in stores for c in compare(scheme, medians[scheme], size_mib)]
    print(side_by_side(comparisons, size_mib, repeat), flush=True)
    return comparisons


def measure(space: Workspace, store: Store, repeat: int, size: int) -> dict[str, dict[str, float]]:
    """Median seconds per workload, for "fusion" and the store's SDK."""
    server, sdk = space.server, NAMES[store.scheme]
    bucket = server.new_bucket("bench")
    block = os.urandom(MiB)
    for key, nbytes in (("seq.bin", size), ("random.bin", 2 * size)):
        server.put(bucket, key, block * (nbytes // MiB))
    upload_source = space.workdir / "upload.bin"
    upload_source.write_bytes(block * (size // MiB))
    offsets = random_offsets(size)
    staged = space.workdir / "staged.bin"
    warm = (store.objects_dir(bucket),)
    samples: dict[str, dict[str, list[float]]] = {w: {"fusion": [], sdk: []} for w in WORKLOADS}

    def sdk_job(workload: str, local: tuple[str, ...] = (), **job: object) -> float:
        """`local`: files in the workdir to have in the page cache too (a task's fresh output)."""
        endpoint = store.sdk_endpoint(server)
        return timed_sdk_job(
            space, store.scheme, workload, warm + local, bucket=bucket, **endpoint, **job
        )

    def durable(key: str) -> None:
        wait_until(lambda: store.stored_size(server, bucket, key) == size, 600, f"{key} stored")

    for run_number in range(repeat):
        print(f"bench.clouds: {store.scheme} run {run_number + 1} of {repeat}", flush=True)
        download = {"op": "download", "path": str(staged)}
        samples["seq"][sdk].append(sdk_job("seq", object="seq.bin", **download))
        staged.unlink()
        samples["random"][sdk].append(
            sdk_job("random", object="random.bin", reads=offsets, **download)
        )
        staged.unlink()
        key = f"written-{sdk}-{run_number}.bin"
        samples["write"][sdk].append(
            sdk_job(
                "write", (upload_source.name,), op="upload", path=str(upload_source), object=key
            )
        )
        store.delete(server, bucket, key)
        key = f"written-fusion-{run_number}.bin"

        def write(root: Path, key: str = key) -> None:
            write_file(root / key, size, block)
            durable(key)

        on_fusion = {
            "seq": lambda root: read_sequentially(root / "seq.bin"),
            "random": lambda root: read_at(root / "random.bin", offsets),
            "write": write,
        }
        for workload, action in on_fusion.items():
            samples[workload]["fusion"].append(
                timed_on_fresh_mount(space, Fusion, workload, warm, action, bucket)
            )
        store.delete(server, bucket, key)
    return {
        workload: {client: statistics.median(values) for client, values in by.items()}
        for workload, by in samples.items()
    }


def compare(scheme: str, medians: dict[str, dict[str, float]], size_mib: int) -> list[Comparison]:
    """Fusion against the SDK, with the targets of the S3 suite (bench/fusion.py)."""
    sdk = NAMES[scheme]
    seq = {client: size_mib * MiB / 1e6 / seconds for client, seconds in medians["seq"].items()}
    random_reads, write = medians["random"], medians["write"]
    rows = (
        (f"sequential read {size_mib} MiB", "MB/s", seq, "higher", 1.0),
        (f"random 1 MiB reads, 5% of {2 * size_mib} MiB", "s", random_reads, "lower", 0.1),
        (f"write {size_mib} MiB until durable", "s", write, "lower", 1.1),
    )
    return [
        Comparison(f"fusion {scheme}: {metric}", unit, by["fusion"], by[sdk], sdk, better, target)
        for metric, unit, by, better, target in rows
    ]


def cpu_line(space: Workspace, scheme: str) -> str:
    clients = ("fusion", NAMES[scheme])
    cells = ", ".join(
        f"{workload} {client} {statistics.median(space.cpu[(client, workload)]):.2f}"
        for workload in WORKLOADS
        for client in clients
    )
    return f"bench.clouds: {scheme} CPU seconds (user+sys), medians: {cells}"


def side_by_side(comparisons: list[Comparison], size_mib: int, repeat: int) -> str:
    lines = [
        f"\nFusion against each store's SDK, {size_mib} MiB, medians of {repeat} run(s):\n",
        "| store: metric | fusion | SDK | ratio | target | met |",
        "| --- | ---: | ---: | ---: | ---: | :---: |",
    ]
    for c in comparisons:
        bound = "<=" if c.better == "lower" else ">="
        lines.append(
            f"| {c.name.removeprefix('fusion ')} | {c.ours:.2f} {c.unit} | "
            f"{c.theirs:.2f} {c.unit} ({c.peer}) | {c.ratio:.2f}x | {bound} {c.target}x | "
            f"{'yes' if c.meets_target else 'NO'} |"
        )
    return "\n".join(lines)
