"""What the default Fusion layer costs a container: start-up time and layer size.

- docker run -> the user's command starts: the command (busybox `nc`) connects to a socket the
  bench listens on, so the time is taken when the command really runs, not when docker returns.
  The augmented image (pulled through `wavectl serve`, Fusion on, `--device /dev/fuse`: the
  launcher mounts /fusion first) vs the same image pulled straight from the registry. Target:
  under 300 ms added, expressed as a ratio of the plain time measured in the same run.
- docker run --rm IMAGE true, whole wall time (start, run, unmount, wait for uploads, remove).
- the layer's compressed size per architecture vs the incumbent's Fusion package (36,067,881
  bytes, wave-api.md 5.3); target <= 15 MiB.
Both images are pulled before timing; each sample is a fresh container.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.report import Comparison
from tests.support import need_binary
from tests.support.dockerd import Dockerd, dockerd_running
from tests.support.fusion_layers import build_once
from tests.support.images import Pusher, push_busybox
from tests.support.proxy import Proxy, upstream_args
from tests.support.registry import registry_running
from tests.support.s3servers import start_s3rver

ADDED_MS_TARGET = 300.0
INCUMBENT_LAYER_BYTES = 36_067_881
SIZE_TARGET_BYTES = 15 << 20
FUSE = ("--device", "/dev/fuse", "--cap-add", "SYS_ADMIN")


def run(repeat: int) -> list[Comparison]:
    samples = max(5, 3 * repeat)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        workdir = Path(tmp)
        print("bench.startup: providing the Fusion layers ...", flush=True)
        build = build_once(workdir / "client")
        results = [_size(arch, layer.gzip_size) for arch, layer in sorted(build.layers.items())]
        for directory in ("s3", "s3data"):
            (workdir / directory).mkdir()
        s3 = start_s3rver(workdir / "s3", workdir / "s3data")
        try:
            with registry_running(workdir / "registry") as registry:
                push_busybox(Pusher(registry), "bench/busybox", "1")
                layers = build.copy_to(workdir / "fusion-layers")
                args = [*upstream_args({"docker.io": registry}), "--fusion-layers", str(layers)]
                proxy = Proxy(workdir / "proxy", args, fusion=True)
                proxy.start()
                try:
                    with dockerd_running([proxy.url], [registry.host]) as daemon:
                        env = [a for item in s3.env().items() for a in ("-e", "=".join(item))]
                        plain = f"{registry.host}/bench/busybox:1"
                        augmented = "bench/busybox:1"  # docker.io: through the mirror
                        for image in (plain, augmented):
                            daemon.cli("pull", image)
                        results += _startups(daemon, env, augmented, plain, samples)
                finally:
                    proxy.stop()
        finally:
            if s3.service:
                s3.service.stop()
    return results


def _size(arch: str, size: int) -> Comparison:
    return Comparison(
        f"Fusion layer size, linux/{arch} (gzip)",
        "MB",
        size / 1e6,
        INCUMBENT_LAYER_BYTES / 1e6,
        "Seqera Fusion 2.5 package",
        "lower",
        SIZE_TARGET_BYTES / INCUMBENT_LAYER_BYTES,
    )


def _startups(
    daemon: Dockerd, env: list[str], augmented: str, plain: str, samples: int
) -> list[Comparison]:
    ours = [_until_command(daemon, env, augmented) for _ in range(samples)]
    theirs = [_until_command(daemon, env, plain) for _ in range(samples)]
    until_command = _added_at_most(
        "docker run -> command starts (/dev/fuse, /fusion mounted)", ours, theirs
    )
    ours = [_whole_run(daemon, env, augmented) for _ in range(samples)]
    theirs = [_whole_run(daemon, env, plain) for _ in range(samples)]
    whole = _added_at_most("docker run --rm IMAGE true, wall time", ours, theirs)
    return [until_command, whole]


def _added_at_most(name: str, ours: list[float], theirs: list[float]) -> Comparison:
    """Medians in ms; the target ratio encodes 'at most ADDED_MS_TARGET more than plain'."""
    mine, peer = statistics.median(ours) * 1e3, statistics.median(theirs) * 1e3
    print(f"bench.startup: {name}: {mine:.0f} ms vs plain {peer:.0f} ms", flush=True)
    target = (peer + ADDED_MS_TARGET) / peer
    return Comparison(name, "ms", mine, peer, "same image, plain", "lower", target)


def _until_command(daemon: Dockerd, env: list[str], image: str) -> float:
    """Seconds from `docker run` until the container's command connects to us."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        server.settimeout(120)
        argv = ["run", "--rm", "--network", "host", *FUSE, *env, image]
        argv += ["sh", "-c", f"nc 127.0.0.1 {port} </dev/null"]
        started = time.perf_counter()
        process = subprocess.Popen(
            [need_binary("docker"), "-H", daemon.host, *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        connection, _ = server.accept()
        elapsed = time.perf_counter() - started
        connection.close()
        process.wait(timeout=120)
    return elapsed


def _whole_run(daemon: Dockerd, env: list[str], image: str) -> float:
    started = time.perf_counter()
    daemon.cli("run", "--rm", "--network", "host", *FUSE, *env, image, "true")
    return time.perf_counter() - started
