"""A real Docker daemon using the proxy as its docker.io registry mirror (issue 3, real clients).

The mirror is the only way to reach docker.io here (no network), so an image that pulls at all
came through the proxy; the assertions check it came augmented.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.dockerd import Dockerd
from tests.support.images import IMAGE_COMMAND_OUTPUT, MARKER_TEXT, Layer, Shapes
from tests.support.proxy import Proxy

pytestmark = pytest.mark.timeout(600)


def test_docker_pull_of_a_short_name_gets_the_augmented_image(
    dockerd: Dockerd, shapes: Shapes, marker_layer: tuple[Path, Layer]
) -> None:
    image = dockerd.client.images.pull("busybox", tag="1")
    upstream_diff_ids = shapes.busybox.config_json()["rootfs"]["diff_ids"]
    assert image.attrs["RootFS"]["Layers"] == [*upstream_diff_ids, marker_layer[1].diff_id]
    [repo_digest] = image.attrs["RepoDigests"]
    assert repo_digest.startswith("busybox@sha256:")
    assert repo_digest != f"busybox@{shapes.busybox.digest}"


def test_docker_run_sees_the_appended_layer_file(dockerd: Dockerd, shapes: Shapes) -> None:
    dockerd.client.images.pull("busybox", tag="1")
    output = dockerd.client.containers.run(
        "busybox:1", ["cat", "/etc/wave-proxy-test"], network_mode="host", remove=True
    )
    assert output.decode() == MARKER_TEXT


def test_docker_run_keeps_the_image_entrypoint_cmd_and_workdir(
    dockerd: Dockerd, shapes: Shapes
) -> None:
    repository, tag = shapes.entrypoint_and_cmd.reference.split(":")
    dockerd.client.images.pull(repository, tag=tag)
    output = dockerd.client.containers.run(
        shapes.entrypoint_and_cmd.reference, network_mode="host", remove=True
    )
    assert output.decode() == IMAGE_COMMAND_OUTPUT + "\n"


def test_pull_by_augmented_digest_works_after_proxy_restart(
    dockerd: Dockerd, proxy: Proxy, shapes: Shapes
) -> None:
    """What the ECS agent does: resolve the tag, later pull `image@digest`."""
    image = dockerd.client.images.pull("busybox", tag="1")
    digest = image.attrs["RepoDigests"][0].split("@")[1]
    dockerd.remove_all_images()
    proxy.restart()
    pulled = dockerd.cli("pull", f"{proxy.host}/library/busybox@{digest}", check=False)
    assert pulled.returncode == 0, pulled.stderr + proxy.log()[-3000:]
    run = dockerd.cli(
        "run", "--rm", "--network", "host", f"{proxy.host}/library/busybox@{digest}",
        "cat", "/etc/wave-proxy-test",
    )  # fmt: skip
    assert run.stdout == MARKER_TEXT
