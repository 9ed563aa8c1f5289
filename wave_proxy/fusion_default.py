"""The proxy's default augmentation: every image gains the Fusion layer of its architecture.

`wavectl serve` without `--layer` (Settings.fusion) appends the layers found in
Settings.fusion_layers (`--fusion-layers DIR`, else `<data dir>/fusion-layers`), building them
there at start when absent or made from other inputs (ensure_layers compares the inputs'
fingerprint): the first start of a new version takes some seconds more, later starts reuse them.
An installed copy without the layer sources (layers/debian.lock.json, layers/shim.c) uses the
tarballs it finds as they are. The Wave API serves the same layers for Nextflow's requests.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from wave_proxy.config import DEFAULT_FUSION_LAYERS, LayerSpec, Settings
from wave_proxy.image.layer import Platform
from wave_proxy.layerbuild import ARCHES, LayerBuildError, LayerInputs, ensure_layers, layer_name

log = logging.getLogger(__name__)

LAUNCHER = "/usr/bin/fusion"  # in the layer; mounts /fusion, then runs what follows `--`
# The image's Entrypoint and Cmd, or the user's command, even one that begins with `-`.
LAUNCHER_PREFIX = (LAUNCHER, "--")
BUILD_CACHE = "fusion-build-cache"  # in the data dir: downloaded .debs a rebuild reuses


def fusion_layer_specs(settings: Settings) -> list[LayerSpec]:
    """One platform-specific layer per architecture; none when Fusion is off.

    Raises LayerBuildError, whose message says what to do, when they cannot be had.
    """
    if not settings.fusion:
        return []
    directory = fusion_directory(settings)
    started = time.monotonic()
    tarballs = provide_layers(directory, settings.data_dir / BUILD_CACHE)
    for arch, path in tarballs.items():
        log.info("Fusion layer for linux/%s: %s (%d bytes)", arch, path, path.stat().st_size)
    log.info(
        "Fusion on: %s wraps every image's Entrypoint (layers ready in %.1fs; "
        "--no-fusion turns this off)",
        LAUNCHER,
        time.monotonic() - started,
    )
    return [LayerSpec(path, Platform.of("linux", arch)) for arch, path in tarballs.items()]


def fusion_directory(settings: Settings) -> Path:
    """Where the Fusion layers are (built): --fusion-layers, else DATA_DIR/fusion-layers. The
    augmenter appends the current ones and the Wave API serves every version found there."""
    return settings.fusion_layers or settings.data_dir / DEFAULT_FUSION_LAYERS


@contextlib.contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    """Held while layers are built into `directory`: one builder at a time (flock)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def provide_layers(directory: Path, cache_dir: Path) -> dict[str, Path]:
    """Architecture -> tarball of the current version, building what is missing or stale."""
    inputs = LayerInputs.from_repo()
    if inputs.lock_path.is_file() and inputs.shim_source.is_file():
        log.info("Fusion layers in %s: building any missing or out of date (~30s)", directory)
        with build_lock(directory):  # replicas sharing the directory build it once
            built = ensure_layers(list(ARCHES.values()), directory, cache_dir, inputs)
        return {layer.arch.name: layer.tarball for layer in built}
    tarballs = {arch.name: directory / f"{layer_name(arch)}.tar.gz" for arch in ARCHES.values()}
    missing = [str(path) for path in tarballs.values() if not path.is_file()]
    if missing:
        raise LayerBuildError(
            f"no Fusion layer {', '.join(missing)}, and this installation has no layer sources "
            "to build it: run `wavectl layer build --out DIR` in a source checkout and pass "
            "--fusion-layers DIR"
        )
    return tarballs
