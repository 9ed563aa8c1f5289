"""Connections to a real `wavectl serve`: idle sockets time out, their number is bounded, and a
client leaving mid-blob is not an error."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support import wait_until
from tests.support.images import Shapes
from tests.support.proxy import Proxy, proxy_running, upstream_args
from tests.support.registry import Registry

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def bounded_proxy(tmp_path: Path, upstream: Registry, shapes: Shapes) -> Iterator[Proxy]:
    args = [*upstream_args({"docker.io": upstream}), "--idle-timeout", "2s"]
    args += ["--max-connections", "16"]
    with proxy_running(tmp_path, args) as proxy:
        yield proxy


def connect(proxy: Proxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=20)


def closed_by_server(sock: socket.socket) -> bool:
    try:
        while sock.recv(4096):
            pass  # a 503 before the close is fine
    except (ConnectionResetError, TimeoutError):
        return False
    return True


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(bounded_proxy):
    with connect(bounded_proxy) as idle, connect(bounded_proxy) as half:
        half.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        started = time.monotonic()
        assert closed_by_server(idle)
        assert closed_by_server(half)
        assert time.monotonic() - started < 15


def test_connections_beyond_the_bound_are_closed_and_the_proxy_keeps_serving(bounded_proxy):
    idle = [connect(bounded_proxy) for _ in range(40)]
    try:
        refused = 0
        for sock in idle[16:]:
            sock.settimeout(1.0)
            refused += closed_by_server(sock)
        assert refused >= 20
    finally:
        for sock in idle:
            sock.close()
    wait_until(
        lambda: requests.get(f"{bounded_proxy.url}/v2/", timeout=5).status_code == 200,
        timeout=20,
        what="the proxy to serve again",
    )
    assert bounded_proxy.log().count("connection limit") <= 2


def test_a_client_leaving_mid_blob_is_not_logged_as_an_error(bounded_proxy, shapes: Shapes):
    layer = shapes.busybox.layers[0]
    path = f"/v2/library/busybox/blobs/{layer.digest}"
    assert requests.get(f"{bounded_proxy.url}{path}", timeout=30).content == layer.compressed
    for _ in range(5):  # from the cache now: sendfile to a socket that goes away
        with connect(bounded_proxy) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            sock.recv(1024)
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
    time.sleep(1)
    log = bounded_proxy.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
