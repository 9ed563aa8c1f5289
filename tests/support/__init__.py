"""Shared helpers for tests that drive real peers (registries, dockerd, S3 servers, redis).

Every peer runs as a subprocess on a free loopback port and is stopped afterwards. Missing
binaries skip locally but fail in CI (CI=true), so a green CI never hides an untested feature.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() == "true"

# The node id of the `unit` test running now, if any (set by tests/conftest.py); see markers.py.
unit_test: str | None = None


def refuse_in_unit_test(what: str) -> None:
    """Fail a test marked `unit` that reaches for a peer or a system binary."""
    if unit_test:
        pytest.fail(f"{unit_test} is a unit test but needs {what}: mark it e2e", pytrace=False)


def need_binary(name: str) -> str:
    """Return the path of `name`, or skip (fail in CI) when it is not installed."""
    refuse_in_unit_test(f"the {name} binary")
    path = shutil.which(name) or _tool_path(name)
    if path:
        return path
    message = f"{name} is not installed; run `make test` to install the test peers"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def _tool_path(name: str) -> str | None:
    candidate = REPO / ".tools" / "node_modules" / ".bin" / name
    return str(candidate) if candidate.exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PeerExited(RuntimeError):
    """Raised by a wait_until check when waiting longer is pointless (the peer died)."""


def wait_until(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll `check` until it returns true; fail the test with `what` after `timeout` seconds.

    Errors from `check` count as "not yet" (a peer still starting refuses connections), except
    PeerExited, which ends the wait at once with its cause."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except PeerExited:
            raise
        except Exception:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


class Service:
    """A subprocess peer with its log file; stop() terminates its whole process group."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_dir: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        refuse_in_unit_test(f"the peer {name}")
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_port(self, port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise PeerExited(f"{self.name} exited early:\n{self.log()[-4000:]}")
            return port_open(port, host)

        wait_until(ready, timeout, f"{self.name} on port {port}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


@contextlib.contextmanager
def running(service: Service) -> Iterator[Service]:
    try:
        yield service
    finally:
        service.stop()


class _Served(Protocol):
    service: Service | None


ServerT = TypeVar("ServerT", bound=_Served)


def serving(server: ServerT) -> Iterator[ServerT]:
    """Yield a started server (one that holds its Service) and stop it afterwards: the body
    of a session fixture (`yield from serving(start_x(...))`)."""
    assert server.service is not None
    with running(server.service):
        yield server
