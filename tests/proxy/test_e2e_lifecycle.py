"""SIGTERM as Kubernetes and systemd send it: readiness fails at once, no new connections,
the blob stream in flight finishes whole, and the process exits 0."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import requests

from tests.support import free_port, port_open, wait_until
from tests.support.images import ImageSpec, Pusher, tar_layer
from tests.support.proxy import proxy_running, upstream_args
from tests.support.registry import Registry


def test_sigterm_drains_then_exits_0_with_the_stream_in_flight_whole(
    tmp_path: Path, upstream: Registry
):
    big = tar_layer({"data.bin": os.urandom(24 << 20)}, compresslevel=1)
    Pusher(upstream).image("lifecycle/big", "1", ImageSpec((big,), {"Cmd": ["sh"]}))
    metrics_port = free_port()
    args = [*upstream_args({"docker.io": upstream}), "--shutdown-grace", "60s"]
    args += ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
    with proxy_running(tmp_path, args) as proxy:
        assert proxy.service is not None
        process = proxy.service.proc
        response = requests.get(
            f"{proxy.url}/v2/lifecycle/big/blobs/{big.digest}", stream=True, timeout=60
        )
        assert response.status_code == 200
        chunks = response.iter_content(256 << 10)
        digest = hashlib.sha256(next(chunks))
        received: dict[str, str] = {}

        def read_slowly() -> None:
            for chunk in chunks:
                digest.update(chunk)
                time.sleep(0.02)
            received["digest"] = "sha256:" + digest.hexdigest()

        reader = threading.Thread(target=read_slowly)
        reader.start()
        process.send_signal(signal.SIGTERM)

        ready = requests.get(f"http://127.0.0.1:{metrics_port}/readyz", timeout=5)
        assert ready.status_code == 503 and "draining" in ready.text
        wait_until(lambda: not port_open(proxy.port), 5, "the listener to close")
        assert process.poll() is None, "still streaming the blob in flight"

        reader.join(timeout=60)
        assert received.get("digest") == big.digest, "the stream in flight finished whole"
        assert process.wait(timeout=30) == 0
        assert "stopped" in proxy.log()
