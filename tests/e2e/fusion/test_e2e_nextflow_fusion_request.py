"""Nextflow's Fusion request end to end: a real Docker daemon pulls the targetImage and runs it,
and /fusion reads and writes a real S3 server (s3rver) through our Fusion layer.

The proxy serves the Fusion layer `wavectl layer build` makes (the session's build, shared with
the other suites) in place of the incumbent's package URL the request names.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.dockerd import Dockerd, dockerd_running
from tests.support.fusion_layers import FusionBuild
from tests.support.images import Shapes
from tests.support.layers import WaveLayer
from tests.support.proxy import Proxy, proxy_running, upstream_args
from tests.support.registry import Registry
from tests.support.s3servers import S3Server
from tests.wave_proxy.api.nfwave import nf_wave_request

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def real_fusion_dir(tmp_path_factory: pytest.TempPathFactory, fusion_build: FusionBuild) -> Path:
    """The session's Fusion layers (tests/support/fusion_layers.py)."""
    return fusion_build.copy_to(tmp_path_factory.mktemp("real-fusion"))


@pytest.fixture(scope="module")
def fusion_proxy(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: Registry,
    shapes: Shapes,
    real_fusion_dir: Path,
) -> Iterator[Proxy]:
    args = [*upstream_args({"docker.io": upstream}), "--fusion-layers", str(real_fusion_dir)]
    with proxy_running(tmp_path_factory.mktemp("fusion-proxy"), args) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def docker_daemon(fusion_proxy: Proxy) -> Iterator[Dockerd]:
    with dockerd_running(insecure=[fusion_proxy.host]) as daemon:
        yield daemon


def test_nextflow_fusion_request_runs_in_docker_with_fusion_on_s3(
    fusion_proxy: Proxy,
    docker_daemon: Dockerd,
    s3rver: S3Server,
    bundle_layer: WaveLayer,
) -> None:
    bucket = s3rver.new_bucket("fusion")
    s3 = s3rver.boto3_client()
    s3.put_object(Bucket=bucket, Key="work/input.txt", Body=b"from s3\n")
    request = nf_wave_request("busybox:1", [bundle_layer.entry()])
    response = requests.post(f"{fusion_proxy.url}/v1alpha2/container", json=request, timeout=120)
    assert response.status_code == 200, response.text
    target = response.json()["targetImage"]

    docker_daemon.cli("pull", target)
    work = f"/fusion/s3/{bucket}/work"
    script = f"cat {work}/input.txt && hello.sh && echo written > {work}/output.txt"
    env_args = [arg for item in s3rver.env().items() for arg in ("-e", "=".join(item))]
    run = docker_daemon.cli(
        "run", "--rm", "--network", "host", "--device", "/dev/fuse", "--cap-add", "SYS_ADMIN",
        *env_args, target, "sh", "-c", script,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[:2] == ["from s3", "hello from the bundle"]
    written = s3.get_object(Bucket=bucket, Key="work/output.txt")["Body"].read()
    assert written == b"written\n"
