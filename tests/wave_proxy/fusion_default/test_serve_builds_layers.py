"""A first `wavectl serve` on an empty data dir builds the Fusion layers; restarts reuse them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests

from tests.support import need_binary
from tests.support.fusion_layers import BUILD_TOOLS, DEB_CACHE, FusionBuild
from tests.support.proxy import proxy_running, upstream_args
from tests.support.registry import Registry

pytestmark = pytest.mark.timeout(900)


def test_first_start_builds_the_layers_into_the_data_dir_and_restarts_reuse_them(
    tmp_path: Path, upstream: Registry, fusion_build: FusionBuild
) -> None:
    """(fusion_build: the session's build has filled the .deb cache this test copies.)"""
    for tool in BUILD_TOOLS:
        need_binary(tool)
    data = tmp_path / "data"
    shutil.copytree(DEB_CACHE, data / "fusion-build-cache")  # spare the .deb downloads
    args = upstream_args({"docker.io": upstream})
    with proxy_running(tmp_path, args, data_dir=data, fusion=True) as proxy:
        tarballs = sorted((data / "fusion-layers").glob("fusion-*.tar.gz"))
        assert [p.name.rsplit("-", 1)[1] for p in tarballs] == ["amd64.tar.gz", "arm64.tar.gz"]
        built = {p: p.stat().st_mtime_ns for p in tarballs}
        assert "Fusion layer for linux/arm64" in proxy.log()
        assert requests.get(f"{proxy.url}/fusion/latest-amd64.json", timeout=10).ok
        proxy.restart()
        assert {p: p.stat().st_mtime_ns for p in tarballs} == built
