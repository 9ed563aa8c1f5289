"""`wavectl serve` as a real subprocess on a loopback port, restartable on the same data dir.

The port and data dir stay fixed across `restart()`, so a client that learned a digest before
the restart can ask for it again afterwards (what the ECS agent does).

Start with `proxy_running(workdir, args)`; it stops when the block ends (Service.stop: SIGTERM to
the process group, SIGKILL after 15 s); the data dir stays for inspection.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import requests

from tests.support import Service, free_port, wait_until
from tests.support.registry import Registry

WAVECTL = Path(sys.executable).with_name("wavectl")
# Registry names the session proxy (tests/e2e/conftest.py) gives the private upstreams: host
# names, as users would type them in an image reference.
HTPASSWD_NAME = "basic.registry.test"
LOOPBACK = "127.0.0.0/8"
TOKEN_NAME = "token.registry.test"


def upstream_args(registries: Mapping[str, Registry], with_credentials: bool = True) -> list[str]:
    """`--registry NAME=URL` per registry, plus `--registry-auth` for those that need it; a
    proxy holding credentials admits loopback clients only (it refuses to start open)."""
    args: list[str] = []
    for name, registry in registries.items():
        args += ["--registry", f"{name}={registry.url}"]
        if with_credentials and registry.credentials:
            creds = registry.credentials
            args += ["--registry-auth", f"{name}={creds.username}:{creds.password}"]
    if "--registry-auth" in args:
        args += ["--allow-cidr", LOOPBACK]
    return args


class Proxy:
    """One `wavectl serve` process; `args` come after `serve --listen .. --data-dir ..`.

    Without `fusion`, it runs with --no-fusion: images come back with only the layers a test
    names, and no start waits for a Fusion layer build. `address` "::1" serves on IPv6 loopback
    (dockerd checks TLS there: it treats 127.0.0.0/8 registries as insecure, skipping the CA).
    """

    def __init__(
        self,
        workdir: Path,
        args: Sequence[str],
        data_dir: Path | None = None,
        fusion: bool = False,
        env: Mapping[str, str] | None = None,
        address: str = "127.0.0.1",
    ) -> None:
        self.workdir = workdir
        self.env = dict(env or {})
        self.args = list(args) if fusion else [*args, "--no-fusion"]
        # With Fusion, a start may rebuild the layers (when fusion_client changed meanwhile).
        self.start_timeout = 180.0 if fusion else 30.0
        self.data_dir = data_dir or workdir / "data"
        self.address = address
        self.port = free_port()
        self.service: Service | None = None
        self.starts = 0
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def host(self) -> str:
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{address}:{self.port}"

    @property
    def url(self) -> str:
        scheme = "https" if "--tls-cert" in self.args else "http"
        return f"{scheme}://{self.host}"

    def start(self) -> None:
        argv = [str(WAVECTL), "serve", "--listen", self.host, "--data-dir", str(self.data_dir)]
        self.starts += 1
        name = f"wavectl-{self.port}-{self.starts}"
        self.service = Service(name, argv + self.args, self.workdir, self.env)
        try:
            self.service.wait_port(self.port, timeout=self.start_timeout, host=self.address)
            wait_until(
                # 401: the proxy asks its clients to log in (--htpasswd)
                lambda: (
                    requests.get(f"{self.url}/v2/", timeout=2, verify=False).status_code
                    in (200, 401)
                ),
                timeout=30,
                what=f"wavectl serve to answer {self.url}/v2/",
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.service:
            self.service.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.service.log() if self.service else ""


@contextlib.contextmanager
def proxy_running(
    workdir: Path,
    args: Sequence[str],
    data_dir: Path | None = None,
    fusion: bool = False,
    env: Mapping[str, str] | None = None,
    address: str = "127.0.0.1",
) -> Iterator[Proxy]:
    proxy = Proxy(workdir, args, data_dir, fusion, env, address)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
