"""Fixtures for the Fusion layer: one build per session, and root file systems of every kind of
image the layer must work in, each with the native layer unpacked into it.

The build uses a snapshot of fusion_client taken at session start, so helpers editing the client
while tests run cannot make two builds differ. Downloaded .debs are kept in .tools/debian-cache.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.layer import rootfs
from tests.layer.rootfs import RootFs
from tests.support import REPO, need_binary
from wave_proxy.layerbuild import ARCHES, BuiltLayer, LayerInputs, build_layers
from wave_proxy.layerbuild.arch import Arch, host_arch

DEB_CACHE = REPO / ".tools" / "debian-cache"
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
def layer_inputs(tmp_path_factory: pytest.TempPathFactory) -> LayerInputs:
    snapshot = tmp_path_factory.mktemp("client")
    shutil.copytree(
        REPO / "fusion_client",
        snapshot / "fusion_client",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return dataclasses.replace(LayerInputs.from_repo(), client_root=snapshot)


def _build(inputs: LayerInputs, out: Path) -> dict[str, BuiltLayer]:
    for tool in ("apt-get", "dpkg-deb", "patchelf", "gcc", "aarch64-linux-gnu-gcc"):
        need_binary(tool)
    return {b.arch.name: b for b in build_layers(list(ARCHES.values()), out, DEB_CACHE, inputs)}


@pytest.fixture(scope="session")
def layers(layer_inputs: LayerInputs, tmp_path_factory: pytest.TempPathFactory):
    """Both architectures' layers, built once per session."""
    return _build(layer_inputs, tmp_path_factory.mktemp("layers"))


@pytest.fixture(scope="session")
def rebuilt_layers(layer_inputs: LayerInputs, tmp_path_factory: pytest.TempPathFactory, layers):
    """A second, independent build from the same inputs (after the first: .debs are cached)."""
    return _build(layer_inputs, tmp_path_factory.mktemp("layers-again"))


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
