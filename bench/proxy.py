"""The registry proxy against the loopback registry it fronts, measured in the same run.

- docker pull of a ~200 MB image through the mirror (proxy cold: empty data dir; warm: data dir
  kept) vs pulling the same image straight from the registry; images are removed from dockerd
  before every pull, so each pull downloads every layer.
- manifest GET requests/s at concurrency 32 (wrk) through the proxy vs the registry itself.
- large-blob throughput (every layer of the image, read sequentially) through the proxy vs direct.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.report import Comparison, Timed, interleaved_medians
from tests.support import need_binary
from tests.support.dockerd import Dockerd, dockerd_running
from tests.support.images import DOCKER_MANIFEST, PushedImage, push_big_image, write_marker_layer
from tests.support.proxy import Proxy, upstream_args
from tests.support.registry import Registry, registry_running

IMAGE_MB = 200
WRK_SECONDS = 10


def run(repeat: int) -> list[Comparison]:
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
        workdir = Path(tmp)
        with registry_running(workdir / "registry") as registry:
            print(f"bench.proxy: pushing a {IMAGE_MB} MB image ...", flush=True)
            image = push_big_image(registry, total_mb=IMAGE_MB)
            layer = workdir / "marker.tar.gz"
            write_marker_layer(layer)
            args = [*upstream_args({"docker.io": registry}), "--layer", str(layer)]
            proxy = Proxy(workdir / "proxy", args)
            proxy.start()
            try:
                with dockerd_running([proxy.url], [proxy.host, registry.host]) as daemon:
                    results = _pulls(daemon, proxy, registry, image, repeat)
                results += _manifest_rates(proxy, registry, image)
                results.append(_blob_throughput(proxy, registry, image, repeat))
            finally:
                proxy.stop()
    return results


def _pulls(
    daemon: Dockerd, proxy: Proxy, registry: Registry, image: PushedImage, repeat: int
) -> list[Comparison]:
    def cold_proxy() -> None:
        daemon.remove_all_images()
        proxy.stop()
        shutil.rmtree(proxy.data_dir, ignore_errors=True)
        proxy.start()

    def pull(reference: str) -> None:
        daemon.cli("pull", "-q", reference)

    medians = interleaved_medians(
        {
            "direct": Timed(
                lambda: pull(f"{registry.host}/{image.reference}"), daemon.remove_all_images
            ),
            "cold": Timed(lambda: pull(image.reference), cold_proxy),
            "warm": Timed(lambda: pull(image.reference), daemon.remove_all_images),
        },
        repeat,
    )
    cold, warm, direct = medians["cold"], medians["warm"], medians["direct"]
    return [
        Comparison(
            f"docker pull {IMAGE_MB} MB, proxy cold", "s", cold, direct, "direct", "lower", 1.05
        ),
        Comparison(
            f"docker pull {IMAGE_MB} MB, proxy warm", "s", warm, direct, "direct", "lower", 1.0
        ),
    ]


def _manifest_rates(proxy: Proxy, registry: Registry, image: PushedImage) -> list[Comparison]:
    repository, tag = image.repository, image.tag
    path = f"/v2/{repository}/manifests/{tag}"
    _get(proxy.port, path)  # warm the proxy's store before measuring
    ours = _wrk(f"{proxy.url}{path}")
    theirs = _wrk(f"{registry.url}{path}")
    return [
        Comparison("manifest GET by tag, c=32", "req/s", ours, theirs, "registry", "higher", 3.0)
    ]


def _wrk(url: str) -> float:
    output = subprocess.run(
        [
            need_binary("wrk"),
            "-t2",
            "-c32",
            f"-d{WRK_SECONDS}s",
            "-H",
            f"Accept: {DOCKER_MANIFEST}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise RuntimeError(f"wrk saw {non_2xx.group(1)} error responses from {url}:\n{output}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))


def _get(port: int, path: str, sink: bytearray | None = None) -> int:
    """GET `path` from loopback `port`, discarding the body; returns its length."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        connection.request("GET", path, headers={"Accept": DOCKER_MANIFEST})
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status} {response.read()[:300]!r}")
        buffer = memoryview(sink or bytearray(1 << 20))
        total = 0
        while count := response.readinto(buffer):
            total += count
        return total
    finally:
        connection.close()


def _blob_throughput(
    proxy: Proxy, registry: Registry, image: PushedImage, repeat: int
) -> Comparison:
    paths = [f"/v2/{image.repository}/blobs/{layer.digest}" for layer in image.layers]
    total_mb = sum(layer.size for layer in image.layers) / 2**20
    sink = bytearray(1 << 20)

    def read_all(port: int) -> None:
        for path in paths:
            _get(port, path, sink)

    read_all(proxy.port)  # first pass caches nothing blob-wise, but warms page cache and tokens
    medians = interleaved_medians(
        {
            "proxy": Timed(lambda: read_all(proxy.port)),
            "direct": Timed(lambda: read_all(registry.port)),
        },
        repeat,
    )
    ours, theirs = total_mb / medians["proxy"], total_mb / medians["direct"]
    return Comparison("blob GET throughput", "MB/s", ours, theirs, "direct", "higher", 0.9)
