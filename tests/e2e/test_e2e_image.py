"""deploy/Dockerfile, built by a real dockerd on a Debian base made with debootstrap: the image
runs as a non-root user with the Fusion layers prebuilt, and the same dockerd pulls an augmented
image through a container started from it (as its registry mirror) and runs it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests

from tests.support import REPO, free_port, wait_until
from tests.support.debian_base import base_tarball
from tests.support.dockerd import dockerd_running
from tests.support.fusion_layers import FusionBuild
from tests.support.images import Shapes
from tests.support.registry import Registry

pytestmark = pytest.mark.timeout(2400)

IMAGE = "wave-proxy:test"


@pytest.fixture(scope="module")
def build_context(tmp_path_factory: pytest.TempPathFactory, fusion_build: FusionBuild) -> Path:
    """What `make image` would send: the sources and the prebuilt layers in layers/out."""
    context = tmp_path_factory.mktemp("image-context")
    for name in ("pyproject.toml", "README.md", ".dockerignore"):
        shutil.copy2(REPO / name, context / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "wheels")
    for name in ("wave_proxy", "fusion_client", "deploy"):
        shutil.copytree(REPO / name, context / name, ignore=ignore)
    fusion_build.copy_to(context / "layers" / "out")
    return context


def add_wheels(client: docker.DockerClient, base: str, context: Path, workdir: Path) -> None:
    """deploy/wheels for the image, fetched with the host's package index so the build needs
    none. The image's interpreter decides what it needs (markers such as python_full_version
    differ from the host's): a dry run there names what is still missing, until nothing is."""
    source = workdir / "source"
    shutil.copytree(context, source, ignore=shutil.ignore_patterns("layers"))
    wheels = context / "deploy" / "wheels"
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "-q", "-w", str(wheels), str(source)], check=True, timeout=900)
    dry_run = "python3 -m venv /v && /v/bin/pip install --no-index -f /w --dry-run wave-proxy"
    for _ in range(5):
        output = client.containers.run(
            base,
            ["sh", "-c", f"{dry_run} 2>&1; true"],
            volumes={str(wheels): {"bind": "/w", "mode": "ro"}},
            remove=True,
        ).decode()
        missing = re.findall(r"No matching distribution found for ([^;\s]+)", output)
        if not missing:
            return
        subprocess.run(
            [*pip, "download", "-q", "--only-binary=:all:", "-d", str(wheels), *missing],
            check=True,
            timeout=900,
        )
    pytest.fail(f"the image's pip still lacks wheels:\n{output}")


@pytest.fixture(scope="module")
def mirror_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def built(
    build_context: Path, mirror_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[docker.DockerClient]:
    """A dockerd whose docker.io mirror is the port the image's container will serve on,
    with the image built."""
    with dockerd_running(mirrors=[f"http://127.0.0.1:{mirror_port}"]) as daemon:
        client = daemon.client
        base = base_tarball()
        client.api.import_image_from_file(str(base), repository="debian-base", tag=base.stem)
        base_image = f"debian-base:{base.stem}"
        add_wheels(client, base_image, build_context, tmp_path_factory.mktemp("wheels"))
        try:
            client.images.build(
                path=str(build_context),
                dockerfile="deploy/Dockerfile",
                tag=IMAGE,
                buildargs={"BASE": base_image},
                network_mode="host",
                rm=True,
            )
        except docker.errors.BuildError as exc:
            log = "".join(str(entry.get("stream", entry)) for entry in exc.build_log)
            pytest.fail(f"docker build failed: {exc}\n{log[-6000:]}")
        yield client


def test_the_image_runs_as_a_non_root_user_with_the_fusion_layers_inside(
    built: docker.DockerClient, fusion_build: FusionBuild
):
    assert built.images.get(IMAGE).attrs["Config"]["User"] == "10001:10001"
    listing = built.containers.run(
        IMAGE,
        entrypoint=["sh", "-c", "id -u; ls /usr/share/wave-proxy/fusion-layers"],
        remove=True,
    ).decode()
    uid, *files = listing.split()
    assert uid == "10001"
    expected = {layer.tarball.name for layer in fusion_build.layers.values()}
    assert {name for name in files if name.endswith(".tar.gz")} == expected


def test_dockerd_pulls_an_augmented_image_through_a_container_of_the_image(
    built: docker.DockerClient, mirror_port: int, upstream: Registry, shapes: Shapes
):
    proxy = built.containers.run(
        IMAGE,
        ["--listen", f"127.0.0.1:{mirror_port}", "--registry", f"docker.io={upstream.url}"],
        network_mode="host",
        detach=True,
    )
    url = f"http://127.0.0.1:{mirror_port}"

    def ready() -> bool:
        proxy.reload()
        assert proxy.status != "exited", proxy.logs().decode()
        try:
            return requests.get(f"{url}/readyz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(ready, 120, "the wave-proxy container to be ready")
    image = shapes.busybox
    pulled = built.images.pull(image.repository, tag=image.tag)
    assert len(pulled.attrs["RootFS"]["Layers"]) == len(image.layers) + 1, "the Fusion layer"
    assert pulled.attrs["Config"]["Entrypoint"][:2] == ["/usr/bin/fusion", "--"]
    output = built.containers.run(
        pulled.id, ["echo", "hello through the image"], network_mode="host", remove=True
    )
    assert b"hello through the image" in output
    assert b'"GET /v2/' in proxy.logs(), "the pull went through the proxy container"
