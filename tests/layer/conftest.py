"""Fixtures for the Fusion layer: the session's build (tests/support/fusion_layers.py), an
independent second build, and root file systems of every kind of image the layer must work in,
each with the native layer unpacked into it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.layer import rootfs
from tests.layer.rootfs import RootFs
from tests.support import need_binary
from tests.support.fusion_layers import BUILD_TOOLS, DEB_CACHE, FusionBuild
from wave_proxy.layerbuild import ARCHES, BuiltLayer, LayerInputs, build_layers
from wave_proxy.layerbuild.arch import Arch, host_arch

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def native() -> Arch:
    arch = host_arch(strict=False)
    if arch is None:
        pytest.skip("the layer tests need an amd64 or arm64 host")
    return arch


@pytest.fixture(scope="session")
def foreign(native: Arch) -> Arch:
    return next(a for a in ARCHES.values() if a != native)


@pytest.fixture(scope="session")
def layer_inputs(fusion_build: FusionBuild) -> LayerInputs:
    """The inputs of the session's build (with its fusion_client snapshot)."""
    return fusion_build.inputs


@pytest.fixture(scope="session")
def layers(fusion_build: FusionBuild) -> dict[str, BuiltLayer]:
    """Both architectures' layers, built once per session for every suite."""
    return fusion_build.layers


@pytest.fixture(scope="session")
def rebuilt_layers(
    layer_inputs: LayerInputs, tmp_path_factory: pytest.TempPathFactory, layers
) -> dict[str, BuiltLayer]:
    """A second, independent build from the same inputs (after the first: .debs are cached)."""
    for tool in BUILD_TOOLS:
        need_binary(tool)
    out = tmp_path_factory.mktemp("layers-again")
    built = build_layers(list(ARCHES.values()), out, DEB_CACHE, layer_inputs)
    return {layer.arch.name: layer for layer in built}


@pytest.fixture(scope="session")
def showenv(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """showenv.c compiled by a given compiler ("gcc -static", "musl-gcc"), once each."""
    out = tmp_path_factory.mktemp("showenv")
    built: dict[str, Path] = {}

    def compiled(compiler: str) -> Path:
        if compiler not in built:
            argv = compiler.split()
            need_binary(argv[0])
            target = out / f"showenv-{len(built)}"
            subprocess.run([*argv, "-O2", "-o", str(target), str(HERE / "showenv.c")], check=True)
            built[compiler] = target
        return built[compiler]

    return compiled


IMAGE_KINDS = ("busybox", "scratch", "musl", "debian")


@pytest.fixture(scope="session", params=IMAGE_KINDS)
def image(request, layers, native: Arch, showenv, tmp_path_factory) -> RootFs:
    """A root file system of each kind of image, with the native layer added."""
    probes = {"static": showenv("gcc -static")}
    if request.param == "musl":
        probes["musl"] = showenv("musl-gcc")
    path = tmp_path_factory.mktemp("rootfs") / request.param
    return rootfs.make(request.param, path, layers[native.name].tarball, native, probes, DEB_CACHE)
