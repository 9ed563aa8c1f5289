"""Builds the prebuilt Fusion layer: a self-contained Python runtime, the client, and the
static /usr/bin/fusion launcher, as reproducible gzip tarballs with Wave-style descriptors.

Start at builder.build_layers (always builds) or builder.ensure_layers (reuses current ones);
layers/README.md explains the inputs.
"""

from wave_proxy.layerbuild.arch import ARCHES, Arch, parse_arches
from wave_proxy.layerbuild.builder import (
    BuiltLayer,
    LayerInputs,
    build_layers,
    ensure_layers,
    layer_name,
)
from wave_proxy.layerbuild.errors import LayerBuildError

__all__ = [
    "ARCHES",
    "Arch",
    "BuiltLayer",
    "LayerBuildError",
    "LayerInputs",
    "build_layers",
    "ensure_layers",
    "layer_name",
    "parse_arches",
]
