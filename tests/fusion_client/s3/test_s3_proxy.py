"""S3 traffic through an HTTP proxy (CONNECT tunnels), as behind a corporate or HPC proxy."""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from fusion_client.s3 import S3Client
from fusion_client.s3.config import Endpoint, Proxy, S3Config
from tests.support.s3servers import S3Server


class ConnectProxy:
    """A minimal CONNECT proxy on loopback that records the tunnels it opened. Every tunnel
    ends at 127.0.0.1, whatever host was asked for (the tests use a made-up S3 host name,
    since loopback endpoints never go through a proxy)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.tunnels: list[tuple[str, str | None]] = []  # (target, Proxy-Authorization)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = client.recv(4096)
            if not data:
                return
            head += data
        lines = head.split(b"\r\n")
        method, target, _ = lines[0].decode().split(" ", 2)
        if method != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        auth = next(
            (
                line.split(b":", 1)[1].strip().decode()
                for line in lines
                if line.lower().startswith(b"proxy-authorization:")
            ),
            None,
        )
        self.tunnels.append((target, auth))
        port = target.rsplit(":", 1)[1]
        upstream = socket.create_connection(("127.0.0.1", int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        _pipe(client, upstream)

    def close(self) -> None:
        self._listener.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(1 << 16):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def connect_proxy() -> Iterator[ConnectProxy]:
    proxy = ConnectProxy()
    yield proxy
    proxy.close()


def test_requests_tunnel_through_the_proxy_with_credentials(s3rver: S3Server, connect_proxy):
    bucket = s3rver.new_bucket("proxy")
    port = s3rver.endpoint.rsplit(":", 1)[1]
    env = s3rver.env(
        AWS_ENDPOINT_URL=f"http://s3.example.test:{port}",
        HTTP_PROXY=f"http://alice:s%40cret@127.0.0.1:{connect_proxy.port}",
    )
    client = S3Client.from_env(env)
    client.put_object(bucket, "via-proxy", b"tunnelled")
    assert client.head_object(bucket, "via-proxy").size == 9
    assert connect_proxy.tunnels[0] == (
        f"s3.example.test:{port}",
        "Basic " + base64.b64encode(b"alice:s@cret").decode(),
    )
    assert len(connect_proxy.tunnels) == 1  # the tunnelled connection is kept alive


def test_loopback_endpoints_bypass_the_proxy(s3rver: S3Server, connect_proxy):
    bucket = s3rver.new_bucket("proxy")
    env = s3rver.env(HTTP_PROXY=f"127.0.0.1:{connect_proxy.port}")
    S3Client.from_env(env).put_object(bucket, "direct", b"x")
    assert connect_proxy.tunnels == []


@pytest.mark.parametrize(
    ("no_proxy", "host", "proxied"),
    [
        ("", "s3.eu-west-1.amazonaws.com", True),
        ("*", "s3.eu-west-1.amazonaws.com", False),
        (".amazonaws.com", "b.s3.eu-west-1.amazonaws.com", False),
        ("amazonaws.com", "s3.eu-west-1.amazonaws.com", False),
        ("notamazonaws.com", "s3.eu-west-1.amazonaws.com", True),
        ("minio:9000,other", "minio", False),
        ("", "127.0.0.1", False),
        ("", "localhost", False),
    ],
)
def test_no_proxy_matching(no_proxy, host, proxied):
    config = S3Config.from_env({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": no_proxy})
    proxy = config.proxy_for(Endpoint("https", host, 443))
    assert (proxy == Proxy("proxy", 3128)) is proxied
    assert config.proxy_for(Endpoint("http", host, 80)) is None  # no HTTP_PROXY set
