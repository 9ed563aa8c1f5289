"""A gzip bomb in a `data:` layer: a real `wavectl serve` stays small and keeps serving.

The bomb is half a MiB of gzip expanding to 512 MiB of tar. The proxy must decompress and hash
it as a stream in a worker thread: its peak memory stays far below the expanded size, and other
clients are answered while it works.
"""

from __future__ import annotations

import base64
import hashlib
import tarfile
import threading
import time
import zlib
from pathlib import Path

import pytest
import requests

from tests.support.proxy import proxy_running, upstream_args
from tests.support.registry import Registry

pytestmark = pytest.mark.timeout(300)

EXPANDED = 512 << 20


def bomb_entry() -> dict:
    """A layer entry whose gzipDigest and gzipSize are right, and whose tarDigest is not."""
    header = tarfile.TarInfo("zeros")
    header.size = EXPANDED
    compressor = zlib.compressobj(9, wbits=31)
    parts = [compressor.compress(header.tobuf(format=tarfile.PAX_FORMAT))]
    zeros = bytes(1 << 20)
    parts += [compressor.compress(zeros) for _ in range(EXPANDED >> 20)]
    parts.append(compressor.flush())
    body = b"".join(parts)
    return {
        "location": "data:" + base64.b64encode(body).decode(),
        "gzipDigest": "sha256:" + hashlib.sha256(body).hexdigest(),
        "gzipSize": len(body),
        "tarDigest": "sha256:" + "0" * 64,
    }


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def test_a_gzip_bomb_is_checked_in_bounded_memory_while_other_clients_are_served(
    tmp_path: Path, upstream: Registry
) -> None:
    entry = bomb_entry()
    with proxy_running(tmp_path, upstream_args({"docker.io": upstream})) as proxy:
        assert proxy.service is not None
        pid = proxy.service.proc.pid
        before = memory_kib(pid, "VmRSS")
        answered_meanwhile = 0
        done = threading.Event()

        def other_client() -> None:
            nonlocal answered_meanwhile
            while not done.is_set():
                if requests.get(f"{proxy.url}/v2/", timeout=30).status_code == 200:
                    answered_meanwhile += not done.is_set()
                time.sleep(0.05)

        poller = threading.Thread(target=other_client)
        poller.start()
        try:
            request = {"containerImage": "busybox:1", "containerConfig": {"layers": [entry]}}
            response = requests.post(f"{proxy.url}/v1alpha2/container", json=request, timeout=240)
        finally:
            done.set()
            poller.join()
        assert response.status_code == 400
        assert "tarDigest: the request says" in response.json()["message"]
        grown_mib = (memory_kib(pid, "VmHWM") - before) >> 10
        assert grown_mib < 150, f"peak memory grew by {grown_mib} MiB for a 512 MiB bomb"
        assert answered_meanwhile >= 3
