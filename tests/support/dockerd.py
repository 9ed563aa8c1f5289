"""A private Docker daemon for tests and benchmarks, with registry mirrors configured at start.

Everything it owns (data root, exec root, pidfile, socket, its managed containerd) lives under
one short temp dir, so it never touches a system Docker. dockerd reads `--registry-mirror` only
at start: start the proxy first, on a port that survives proxy restarts.

Teardown removes containers through the API, stops dockerd's process group, then ends the
containerd shims that belong to this daemon (found by our temp dir in their command line) and
unmounts whatever is left under the temp dir.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import docker

from tests.support import PeerExited, Service, need_binary, wait_until


class Dockerd:
    """A running dockerd; `client` is the docker SDK bound to its socket, `host` its -H URL."""

    def __init__(
        self,
        mirrors: Sequence[str] = (),
        insecure: Sequence[str] = (),
        config_file: Path | None = None,
        hosts: Mapping[str, str] | None = None,
    ) -> None:
        """`hosts`: NAME -> ADDRESS lines this daemon alone sees in its /etc/hosts."""
        binary = need_binary("dockerd")
        # Short path: unix socket paths (ours and containerd's) must stay under 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="wpd-", dir="/tmp"))
        self.host = f"unix://{self.root}/docker.sock"
        argv = [
            binary,
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.root / "docker.pid"),
            "-H", self.host,
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
        ]  # fmt: skip
        for mirror in mirrors:
            argv += ["--registry-mirror", mirror]
        for registry in insecure:
            argv += ["--insecure-registry", registry]
        if config_file:  # a daemon.json; dockerd refuses options given both ways
            argv += ["--config-file", str(config_file)]
        self.etc_hosts: Path | None = None
        if hosts:
            lines = "".join(f"{address} {name}\n" for name, address in hosts.items())
            self.etc_hosts = self.root / "hosts"
            self.etc_hosts.write_text(Path("/etc/hosts").read_text() + lines)
        argv = self.resolving(argv)
        self.service = Service("dockerd", argv, self.root)
        self._client: docker.DockerClient | None = None
        try:
            wait_until(self._ready, timeout=60, what="dockerd to answer ping")
        except BaseException:
            self.stop()
            raise

    def resolving(self, argv: list[str]) -> list[str]:
        """`argv` run in a mount namespace of its own, with this daemon's `hosts` bound over
        /etc/hosts (a client such as ctr resolves registry names itself)."""
        if not self.etc_hosts:
            return argv
        bind = 'mount --bind "$0" /etc/hosts && exec "$@"'
        unshare = [need_binary("unshare"), "--mount", "--propagation", "private"]
        return [*unshare, "sh", "-c", bind, str(self.etc_hosts), *argv]

    def _ready(self) -> bool:
        if self.service.proc.poll() is not None:
            raise PeerExited(f"dockerd exited early:\n{self.service.log()[-4000:]}")
        if not (self.root / "docker.sock").exists():
            return False
        # The SDK asks the daemon for its API version on construction, so build it once up.
        self._client = docker.DockerClient(base_url=self.host, timeout=600)
        return bool(self._client.ping())

    @property
    def containerd_address(self) -> str:
        """The socket of the containerd this dockerd manages (for `ctr -a`)."""
        return f"{self.root}/exec/containerd/containerd.sock"

    @property
    def client(self) -> docker.DockerClient:
        assert self._client, "dockerd is not up"
        return self._client

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the `docker` CLI against this daemon (what an operator would type)."""
        return subprocess.run(
            [need_binary("docker"), "-H", self.host, *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=900,
        )

    def remove_all_images(self) -> None:
        """Forget every image and layer, so the next pull is cold."""
        for container in self.client.containers.list(all=True):
            container.remove(force=True)
        for image in self.client.images.list(all=True):
            with contextlib.suppress(docker.errors.NotFound):
                self.client.images.remove(image.id, force=True)

    def stop(self) -> None:
        if self._client:
            with contextlib.suppress(Exception):
                for container in self._client.containers.list(all=True):
                    container.remove(force=True)
            self._client.close()
        self.service.stop(timeout=30)
        self._end_own_shims()
        self._unmount_leftovers()
        shutil.rmtree(self.root, ignore_errors=True)

    def _end_own_shims(self) -> None:
        """containerd-shims start their own sessions; find ours by our root in their argv."""
        marker = str(self.root).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)

    def _unmount_leftovers(self) -> None:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(str(self.root))]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)


CERTS_D = Path("/etc/docker/certs.d")


@contextlib.contextmanager
def trusted_ca(registry: str, ca_cert: Path) -> Iterator[Path]:
    """Trust `ca_cert` for `registry` (HOST:PORT) in every dockerd on this machine.

    dockerd has no option for its certs dir: it reads /etc/docker/certs.d/HOST:PORT/ca.crt
    (in rootless mode $XDG_CONFIG_HOME/docker/certs.d) at each connection, also with its own
    --data-root. The directory is named by our unique port, so no other daemon is affected.
    Only registries outside 127.0.0.0/8 are checked at all: dockerd always counts that range
    as insecure registries (TLS without verification). Serve on ::1 under a name (a bracketed
    [::1] is not a valid image reference for dockerd): see Dockerd's `hosts`.
    """
    directory = CERTS_D / registry
    directory.mkdir(parents=True)
    shutil.copy(ca_cert, directory / "ca.crt")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def dockerd_running(
    mirrors: Sequence[str] = (),
    insecure: Sequence[str] = (),
    config_file: Path | None = None,
    hosts: Mapping[str, str] | None = None,
) -> Iterator[Dockerd]:
    daemon = Dockerd(mirrors, insecure, config_file, hosts)
    try:
        yield daemon
    finally:
        daemon.stop()
