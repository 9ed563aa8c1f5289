"""A fault-injecting HTTP/1.1 proxy on loopback, in front of an S3 server.

Tests switch faults on at run time:
    proxy.fail_next(3)                          # next 3 requests get HTTP 500 InternalError
    proxy.fail_next(2, status=503, code="SlowDown", match="partNumber=")
    proxy.drop_next_requests(1, match="partNumber=")   # cut mid-request-body
    proxy.drop_next_responses(1, method="GET")         # cut mid-response-body
    proxy.down = True       # S3 is down: new connections are refused, open ones are reset

It relays one upstream connection per client connection, request by request (keep-alive kept),
parsing just enough HTTP (Content-Length and chunked bodies) to know where messages end. It runs
in threads of the test process; `close()` shuts its listener and every relayed connection.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

_ERROR_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
    "<Message>injected by the fault proxy</Message><RequestId>FAULT{n}</RequestId></Error>"
)


@dataclass
class _Fault:
    kind: str  # "status", "drop_request", "drop_response"
    remaining: int
    method: str | None
    match: str | None
    status: int = 500
    code: str = "InternalError"
    headers: dict[str, str] = field(default_factory=dict)
    then: Callable[[], None] | None = None  # run when the fault fires, before the cut

    def applies(self, method: str, target: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.match is None or self.match in target
        )


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._down = False
        self.requests = 0
        self.last_request_head = b""
        self.connections = 0
        self.injected = 0
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._start_accepting()

    # -- switches ------------------------------------------------------------------------

    @property
    def down(self) -> bool:
        return self._down

    @down.setter
    def down(self, value: bool) -> None:
        """Stop listening (connection refused) and reset open connections, or listen again
        on the same port."""
        if value == self._down:
            return
        self._down = value
        if value:
            with self._lock:
                sockets = [self._listener, *self._sockets]
            for s in sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        else:
            self._listener = socket.create_server(("127.0.0.1", self.port))
            self._start_accepting()

    def fail_next(
        self,
        n: int,
        *,
        status: int = 500,
        code: str = "InternalError",
        method: str | None = None,
        match: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `n` matching requests with an S3 error (`headers` added to it)."""
        self._add(_Fault("status", n, method, match, status, code, dict(headers or {})))

    def drop_next_requests(
        self,
        n: int,
        *,
        method: str | None = None,
        match: str | None = None,
        then: Callable[[], None] | None = None,
    ):
        """Forward half of the request body upstream, run `then`, cut both connections."""
        self._add(_Fault("drop_request", n, method, match, then=then))

    def drop_next_responses(
        self,
        n: int,
        *,
        method: str | None = None,
        match: str | None = None,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Relay the response head and half of its body, run `then`, cut both connections."""
        self._add(_Fault("drop_response", n, method, match, then=then))

    def cut_open_connections(self) -> None:
        """Reset every open connection, as a server closing idle keep-alive connections does."""
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
        self.down = False

    def pending_faults(self) -> int:
        with self._lock:
            return sum(f.remaining for f in self._faults)

    def close(self) -> None:
        self._stopping = True
        with self._lock:
            sockets = [self._listener, *self._sockets]
        for s in sockets:  # shutdown() wakes threads blocked in accept()/recv() on them
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        for t in self._threads:
            t.join(5)

    # -- relay ---------------------------------------------------------------------------

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take(self, method: str, target: str) -> _Fault | None:
        with self._lock:
            self.requests += 1
            for fault in self._faults:
                if fault.remaining > 0 and fault.applies(method, target):
                    fault.remaining -= 1
                    self.injected += 1
                    return fault
            return None

    def _start_accepting(self) -> None:
        thread = threading.Thread(target=self._accept_loop, args=(self._listener,), daemon=True)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self.down:
                _reset(client)
                continue
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _track(self, s: socket.socket, on: bool) -> None:
        with self._lock:
            if on:
                self._sockets.add(s)
            else:
                self._sockets.discard(s)

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        self._track(client, True)
        reader = _Reader(client)
        graceful = False  # FIN when the exchange ends normally, RST for faults and errors
        try:
            while not self._stopping:
                head = reader.head()
                if head is None or self.down:
                    graceful = head is None
                    return
                self.last_request_head = head
                method, target = head.split(b" ", 2)[:2]
                method_s, target_s = method.decode(), target.decode()
                fault = self._take(method_s, target_s)
                if fault is not None and fault.kind == "status":
                    for _ in reader.body(head, request_method=None):
                        pass
                    body = _ERROR_BODY.format(code=fault.code, n=self.injected).encode()
                    extra = "".join(f"{k}: {v}\r\n" for k, v in fault.headers.items())
                    response = (
                        f"HTTP/1.1 {fault.status} Injected\r\nContent-Type: application/xml\r\n"
                        f"Content-Length: {len(body)}\r\nx-amz-request-id: FAULT\r\n{extra}\r\n"
                    )
                    client.sendall(response.encode() + (b"" if method_s == "HEAD" else body))
                    continue
                if upstream is None:
                    upstream = socket.create_connection(self.upstream)
                    self._track(upstream, True)
                    up_reader = _Reader(upstream)
                upstream.sendall(head)
                if fault is not None and fault.kind == "drop_request":
                    length = _content_length(head) or 0
                    sent = 0
                    for chunk in reader.body(head, request_method=None):
                        if sent + len(chunk) >= length // 2:
                            upstream.sendall(chunk[: max(0, length // 2 - sent)])
                            break
                        upstream.sendall(chunk)
                        sent += len(chunk)
                    if fault.then is not None:
                        fault.then()
                    return
                for chunk in reader.body(head, request_method=None):
                    upstream.sendall(chunk)
                response = up_reader.head()
                while response is not None and response[9:10] == b"1":  # HTTP/1.1 1xx
                    client.sendall(response)  # interim (100 Continue): the final answer follows
                    response = up_reader.head()
                if response is None:
                    return
                client.sendall(response)
                length = _content_length(response) or 0
                sent = 0
                cut = fault is not None and fault.kind == "drop_response"
                for chunk in up_reader.body(response, request_method=method_s):
                    if cut and sent + len(chunk) >= length // 2:
                        client.sendall(chunk[: max(0, length // 2 - sent)])
                        if fault is not None and fault.then is not None:
                            fault.then()
                        graceful = True  # the client reads the half body, then EOF
                        return
                    client.sendall(chunk)
                    sent += len(chunk)
                if b"connection: close" in response.lower():
                    graceful = True
                    return
        except OSError:
            return
        finally:
            for s in (client, upstream):
                if s is not None:
                    self._track(s, False)
                    if graceful:
                        _close(s)
                    else:
                        _reset(s)


class _Reader:
    """Buffered reads of HTTP message heads and bodies from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(1 << 18)
        if not data:
            return False
        self.buf += data
        return True

    def head(self) -> bytes | None:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                return None
        end = self.buf.index(b"\r\n\r\n") + 4
        head, self.buf = self.buf[:end], self.buf[end:]
        return head

    def _exactly(self, n: int) -> Iterator[bytes]:
        while n > 0:
            if not self.buf and not self._fill():
                raise ConnectionError("peer closed mid-body")
            chunk, self.buf = self.buf[:n], self.buf[n:]
            n -= len(chunk)
            yield chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError("peer closed mid-chunk")
        end = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:end], self.buf[end:]
        return line

    def body(self, head: bytes, request_method: str | None) -> Iterator[bytes]:
        """Yield the raw bytes of the message body that follows `head` (for a response,
        `request_method` tells whether a body can follow at all)."""
        if request_method is not None:
            status = int(head.split(b" ", 2)[1])
            if request_method == "HEAD" or status in (204, 304) or status < 200:
                return
        lower = head.lower()
        if b"transfer-encoding: chunked" in lower:
            while True:
                line = self._line()
                yield line
                size = int(line.split(b";")[0], 16)
                yield from self._exactly(size + 2)
                if size == 0:
                    return
        length = _content_length(head)
        if length is not None:
            yield from self._exactly(length)
        elif request_method is not None:  # response without length: until close
            if self.buf:
                yield self.buf
                self.buf = b""
            while self._fill():
                yield self.buf
                self.buf = b""


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return None


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    with contextlib.suppress(OSError):
        sock.close()


def _reset(sock: socket.socket) -> None:
    """Close with RST, as a crashed or unreachable server would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
