"""Builds that must fail, with a message that says what to do."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from tests.layer.conftest import DEB_CACHE
from wave_proxy.layerbuild import LayerBuildError, build_layers


def test_a_client_import_outside_the_shipped_stdlib_fails_the_build(
    layers, layer_inputs, native, tmp_path
):
    client = tmp_path / "client"
    shutil.copytree(layer_inputs.client_root, client)
    (client / "fusion_client/extra.py").write_text(
        "import json\nimport requests\nfrom unittest import mock\n"
    )
    inputs = dataclasses.replace(layer_inputs, client_root=client)
    with pytest.raises(LayerBuildError, match=r"imports requests, unittest, .*stdlib-only"):
        build_layers([native], tmp_path / "out", DEB_CACHE, inputs)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_tampered_cached_deb_is_fetched_again_and_verified(
    layers, layer_inputs, native, tmp_path
):
    cache = tmp_path / "cache"
    shutil.copytree(DEB_CACHE, cache)
    victim = next(cache.glob(f"libffi8_*_{native.name}.deb"))
    victim.write_bytes(b"tampered")
    (built,) = build_layers([native], tmp_path / "out", cache, layer_inputs)
    assert built.tarball.read_bytes() == layers[native.name].tarball.read_bytes()
    assert victim.read_bytes() != b"tampered"
