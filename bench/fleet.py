"""A fleet against the registry it fronts: four clients cold-pulling one ~200 MB image at once
(skopeo copies, which verify every digest), straight from the registry vs through 1 replica vs
through 3 replicas with --blob-redirect (clients spread over them), the replicas sharing one
redis-server and one s3rver. Reports aggregate throughput and the upstream's blob bytes divided
by the image size (1.0: each blob fetched once, whatever the number of replicas and clients).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.report import Comparison
from tests.support import need_binary
from tests.support.images import PushedImage, push_big_image
from tests.support.proxy import Proxy, upstream_args
from tests.support.redis import redis_running
from tests.support.registry import Registry, registry_running
from tests.support.s3servers import S3Server, start_s3rver

IMAGE_MB = 200
CLIENTS = 4


def run(repeat: int) -> list[Comparison]:
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        work = Path(tmp)
        for name in ("registry", "redis", "s3", "s3/data"):
            (work / name).mkdir(parents=True, exist_ok=True)
        s3 = start_s3rver(work / "s3", work / "s3" / "data")
        try:
            with redis_running(work / "redis") as redis, registry_running(work / "registry") as reg:
                image = push_big_image(reg, total_mb=IMAGE_MB)
                size = sum(layer["size"] for layer in image.manifest_json()["layers"])
                rounds = []
                for round_number in range(repeat):
                    rounds.append(
                        _round(work / f"round-{round_number}", reg, redis.url(0), s3, image)
                    )
        finally:
            assert s3.service is not None
            s3.service.stop()
    direct, single, fleet = (sorted(r[i] for r in rounds)[len(rounds) // 2] for i in range(3))
    aggregate_mb = CLIENTS * size / 2**20
    return [
        Comparison(
            f"{CLIENTS} cold pulls of {IMAGE_MB} MB at once, 1 replica",
            "MB/s",
            aggregate_mb / single[0],
            aggregate_mb / direct[0],
            "direct",
            "higher",
            0.9,
        ),
        Comparison(
            f"{CLIENTS} cold pulls of {IMAGE_MB} MB at once, 3 replicas + redirect",
            "MB/s",
            aggregate_mb / fleet[0],
            aggregate_mb / direct[0],
            "direct",
            "higher",
            0.9,
        ),
        Comparison(
            "upstream blob bytes / image size, 3 replicas",
            "x",
            fleet[1] / size,
            direct[1] / size / CLIENTS,
            "one client direct",
            "lower",
            1.0,
        ),
    ]


def _round(
    work: Path, registry: Registry, redis_url: str, s3: S3Server, image: PushedImage
) -> tuple[tuple[float, int], tuple[float, int], tuple[float, int]]:
    """(seconds, upstream blob bytes) for direct, 1 replica, 3 replicas with redirect."""
    direct = _measure(work / "direct", registry, [registry.host] * CLIENTS, image)
    results = [direct]
    for count, extra in ((1, []), (3, ["--blob-redirect"])):
        bucket = s3.new_bucket("bench")
        args = [*upstream_args({"docker.io": registry}), "--store", redis_url]
        args += ["--blob-store", f"s3://{bucket}/fleet", *extra]
        replicas = [Proxy(work / f"fleet{count}-{i}", args, env=s3.env()) for i in range(count)]
        for replica in replicas:
            replica.start()
        try:
            hosts = [replicas[i % count].host for i in range(CLIENTS)]
            results.append(_measure(work / f"fleet{count}", registry, hosts, image))
        finally:
            for replica in replicas:
                replica.stop()
        subprocess.run(["redis-cli", "-u", redis_url, "flushdb"], check=True, capture_output=True)
    return results[0], results[1], results[2]


def _measure(
    work: Path, registry: Registry, hosts: list[str], image: PushedImage
) -> tuple[float, int]:
    skopeo = need_binary("skopeo")
    work.mkdir(parents=True, exist_ok=True)
    before = _upstream_blob_bytes(registry)

    def copy(index: int) -> None:
        source = f"docker://{hosts[index]}/{image.repository}:{image.tag}"
        done = subprocess.run(
            [skopeo, "copy", "--src-tls-verify=false", source, f"oci:{work}/client-{index}"],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(f"skopeo copy from {hosts[index]} failed: {done.stderr.strip()}")

    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(copy, range(CLIENTS)))
    return time.perf_counter() - start, _upstream_blob_bytes(registry) - before


def _upstream_blob_bytes(registry: Registry) -> int:
    """Bytes of layer blobs the registry sent (its access log: GET .../blobs/... 200 BYTES)."""
    pattern = re.compile(r'"GET /v2/[^ ]+/blobs/sha256:[0-9a-f]{64} HTTP/[0-9.]+" 200 (\d+)')
    return sum(int(n) for n in pattern.findall(registry.service.log()) if int(n) > 1 << 20)
