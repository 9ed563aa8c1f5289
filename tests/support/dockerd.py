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
from collections.abc import Iterator, Sequence
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
    ) -> None:
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
        self.service = Service("dockerd", argv, self.root)
        self._client: docker.DockerClient | None = None
        try:
            wait_until(self._ready, timeout=60, what="dockerd to answer ping")
        except BaseException:
            self.stop()
            raise

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


@contextlib.contextmanager
def dockerd_running(
    mirrors: Sequence[str] = (), insecure: Sequence[str] = (), config_file: Path | None = None
) -> Iterator[Dockerd]:
    daemon = Dockerd(mirrors, insecure, config_file)
    try:
        yield daemon
    finally:
        daemon.stop()
