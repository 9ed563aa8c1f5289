"""The Fusion layers of both architectures, built once per test session for every suite.

Built from a snapshot of fusion_client taken at first use (helpers editing the client while
tests run cannot make two suites see different layers), into .tools/fusion-layers through
ensure_layers: a later session reuses them while the inputs' fingerprint is unchanged. A file
lock keeps concurrent sessions on one checkout from building into the directory at once.
Downloaded .debs are kept in .tools/debian-cache.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import REPO, need_binary
from wave_proxy.fusion_default import build_lock
from wave_proxy.layerbuild import ARCHES, BuiltLayer, LayerInputs, ensure_layers

DEB_CACHE = REPO / ".tools" / "debian-cache"
LAYER_CACHE = REPO / ".tools" / "fusion-layers"
BUILD_TOOLS = ("apt-get", "dpkg-deb", "patchelf", "gcc", "aarch64-linux-gnu-gcc")


@dataclass(frozen=True)
class FusionBuild:
    inputs: LayerInputs  # with the session's client snapshot
    layers: dict[str, BuiltLayer]  # by architecture name

    def copy_to(self, directory: Path) -> Path:
        """The tarballs and descriptors in a directory of one's own (e.g. a proxy's
        --fusion-layers, which it may rebuild into), so nobody changes the shared ones."""
        directory.mkdir(parents=True, exist_ok=True)
        for layer in self.layers.values():
            shutil.copy2(layer.tarball, directory / layer.tarball.name)
            shutil.copy2(layer.descriptor, directory / layer.descriptor.name)
        return directory


def snapshot_inputs(directory: Path) -> LayerInputs:
    shutil.copytree(
        REPO / "fusion_client",
        directory / "fusion_client",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return dataclasses.replace(LayerInputs.from_repo(), client_root=directory)


def build_once(snapshot_dir: Path) -> FusionBuild:
    for tool in BUILD_TOOLS:
        need_binary(tool)
    inputs = snapshot_inputs(snapshot_dir)
    with build_lock(LAYER_CACHE):
        built = ensure_layers(list(ARCHES.values()), LAYER_CACHE, DEB_CACHE, inputs)
    return FusionBuild(inputs, {layer.arch.name: layer for layer in built})


@pytest.fixture(scope="session")
def fusion_build(tmp_path_factory: pytest.TempPathFactory) -> FusionBuild:
    """Both architectures' Fusion layers (this module is a plugin tests/conftest.py loads)."""
    return build_once(tmp_path_factory.mktemp("fusion-client"))
