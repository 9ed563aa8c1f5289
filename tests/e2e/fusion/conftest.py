"""One peer set for the whole suite: the upstream registry seeded with the image kinds, s3rver,
`wavectl serve` started WITHOUT --layer (so the default Fusion layer applies, from the session's
build), and a private dockerd using that proxy as its registry mirror."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.fusion.images import FusionImages, seed_images
from tests.support.dockerd import Dockerd, dockerd_running
from tests.support.fusion_layers import FusionBuild
from tests.support.proxy import Proxy, proxy_running, upstream_args
from tests.support.registry import Registry
from wave_proxy.layerbuild.arch import host_arch


@pytest.fixture(scope="session")
def images(upstream: Registry, tmp_path_factory: pytest.TempPathFactory) -> FusionImages:
    arch = host_arch(strict=False)
    if arch is None:
        pytest.skip("the Fusion layer is built for amd64 and arm64 hosts only")
    return seed_images(upstream, arch, tmp_path_factory.mktemp("fusion-images"))


@pytest.fixture(scope="session")
def fusion_proxy(
    tmp_path_factory: pytest.TempPathFactory, upstream: Registry, fusion_build: FusionBuild
) -> Iterator[Proxy]:
    workdir = tmp_path_factory.mktemp("fusion-default-proxy")
    layers = fusion_build.copy_to(workdir / "fusion-layers")
    args = [*upstream_args({"docker.io": upstream}), "--fusion-layers", str(layers)]
    with proxy_running(workdir, args, fusion=True) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def docker(fusion_proxy: Proxy, images: FusionImages) -> Iterator[Dockerd]:
    with dockerd_running(mirrors=[fusion_proxy.url], insecure=[fusion_proxy.host]) as daemon:
        yield daemon
