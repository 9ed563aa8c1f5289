"""Reusing a current layer (the proxy's first start), and `wavectl layer` user errors."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from tests.layer.conftest import DEB_CACHE
from wave_proxy.cli import main
from wave_proxy.layerbuild import ensure_layers


@pytest.fixture
def out_dir(tmp_path, layers, native):
    """An output directory holding the session's native layer."""
    for path in (layers[native.name].tarball, layers[native.name].descriptor):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_ensure_reuses_a_layer_built_from_the_same_inputs(out_dir, layers, native, layer_inputs):
    before = (out_dir / layers[native.name].tarball.name).stat().st_mtime_ns
    (layer,) = ensure_layers([native], out_dir, DEB_CACHE, layer_inputs)
    assert layer.tarball.stat().st_mtime_ns == before
    assert layer.gzip_digest == layers[native.name].gzip_digest


def test_ensure_rebuilds_when_the_client_changed(out_dir, layers, native, layer_inputs, tmp_path):
    changed = tmp_path / "changed-client"
    shutil.copytree(layer_inputs.client_root, changed)
    with (changed / "fusion_client/__init__.py").open("a") as f:
        f.write("\n# changed\n")
    inputs = dataclasses.replace(layer_inputs, client_root=changed)
    (layer,) = ensure_layers([native], out_dir, DEB_CACHE, inputs)
    assert layer.gzip_digest != layers[native.name].gzip_digest
    doc = json.loads(layer.descriptor.read_text())
    assert doc["layers"][0]["gzipDigest"] == layer.gzip_digest


def test_ensure_rebuilds_a_truncated_tarball(out_dir, layers, native, layer_inputs):
    tarball = out_dir / layers[native.name].tarball.name
    tarball.write_bytes(tarball.read_bytes()[:1000])
    (layer,) = ensure_layers([native], out_dir, DEB_CACHE, layer_inputs)
    assert layer.tarball.read_bytes() == layers[native.name].tarball.read_bytes()


def test_cli_rejects_an_unknown_architecture_in_one_line(capsys):
    assert main(["layer", "build", "--arch", "amd64,riscv64"]) == 1
    err = capsys.readouterr().err
    assert err == "wavectl: error: unknown architecture riscv64; choose from amd64, arm64\n"
