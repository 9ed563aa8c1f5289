"""An augmented image run by a real Docker daemon reads and writes Google Cloud Storage at
/fusion/gs and Azure Blob at /fusion/az (fake-gcs-server and Azurite on loopback), checked with
the clouds' own SDKs."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.fusion_layer.images import FusionImages
from tests.fusion_layer.test_docker_fusion import copy_command, docker_run
from tests.support.cloudservers import azurite, fake_gcs  # noqa: F401
from tests.support.dockerd import Dockerd

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(params=["fake_gcs", "azurite"])
def cloud(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


def test_a_file_copied_inside_fusion_arrives_in_the_cloud_byte_identical(
    cloud: Any, docker: Dockerd, images: FusionImages
) -> None:
    bucket = cloud.new_bucket("docker")
    data = os.urandom(3 << 20)
    cloud.put(bucket, "in.bin", data)
    fusion = f"/fusion/{cloud.scheme}/{bucket}"
    command = copy_command("busybox", f"{fusion}/in.bin", f"{fusion}/out.bin")
    run = docker_run(docker, cloud, images.busybox, *command)
    assert run.returncode == 0, run.stdout + run.stderr
    assert cloud.get(bucket, "out.bin") == data
