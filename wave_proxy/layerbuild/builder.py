"""Build the Fusion layer for each architecture: the entry point of this package."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from wave_proxy import __version__
from wave_proxy.layerbuild import debs, lockfile, runtime, shim, tarball
from wave_proxy.layerbuild.arch import Arch, host_arch
from wave_proxy.layerbuild.lockfile import Lock
from wave_proxy.layerbuild.tarball import LayerTree

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = "/usr/bin/fusion"


@dataclass(frozen=True, slots=True)
class LayerInputs:
    """Everything a layer is made from; the same inputs give byte-identical layers."""

    lock_path: Path
    shim_source: Path
    client_root: Path  # the directory holding the fusion_client package

    @classmethod
    def from_repo(cls, repo: Path = REPO) -> LayerInputs:
        return cls(repo / "layers/debian.lock.json", repo / "layers/shim.c", repo)


@dataclass(frozen=True, slots=True)
class BuiltLayer:
    arch: Arch
    tarball: Path
    descriptor: Path
    gzip_digest: str
    gzip_size: int
    tar_digest: str


def layer_name(arch: Arch, version: str = __version__) -> str:
    """File name stem of a layer: fusion-<version>-<arch>(.tar.gz|.json)."""
    return f"fusion-{version}-{arch.name}"


def build_layers(
    arches: list[Arch], out_dir: Path, cache_dir: Path, inputs: LayerInputs | None = None
) -> list[BuiltLayer]:
    """Build `fusion-<version>-<arch>.tar.gz` and its `.json` descriptor per arch in out_dir.

    Downloads the pinned .debs into cache_dir when missing. The build host must be amd64 or
    arm64: its own architecture's interpreter runs the module analysis and the compilation.
    """
    inputs = inputs or LayerInputs.from_repo()
    lock = lockfile.load(inputs.lock_path)
    native = host_arch()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fusion-layer-") as tmp:
        work = Path(tmp)
        roots = {a.name: _unpack(lock, a, cache_dir, work) for a in {native, *arches}}
        modules = runtime.select_modules(roots[native.name], native, inputs.client_root, work)
        return [
            _build_one(arch, roots[arch.name], modules, lock, inputs, out_dir, work)
            for arch in arches
        ]


def _unpack(lock: Lock, arch: Arch, cache_dir: Path, work: Path) -> Path:
    root = work / f"root-{arch.name}"
    debs.unpack(debs.fetch(lock.for_arch(arch), cache_dir), root)
    return root


def _build_one(
    arch: Arch,
    root: Path,
    modules: runtime.Modules,
    lock: Lock,
    inputs: LayerInputs,
    out_dir: Path,
    work: Path,
) -> BuiltLayer:
    tree = LayerTree()
    runtime.add_runtime(tree, root, arch, modules, work)
    tree.add_file(LAUNCHER, shim.compile_shim(inputs.shim_source, arch), 0o755)
    tree.add_file(f"{runtime.PREFIX}/layer.json", _build_info(arch, lock))
    blob = tarball.write_layer(tree, lock.source_date_epoch)
    name = layer_name(arch)
    doc = tarball.descriptor(blob, f"{name}.tar.gz", entrypoint=[LAUNCHER])
    built = BuiltLayer(
        arch=arch,
        tarball=out_dir / f"{name}.tar.gz",
        descriptor=out_dir / f"{name}.json",
        gzip_digest=blob.gzip_digest,
        gzip_size=len(blob.gzip_bytes),
        tar_digest=blob.tar_digest,
    )
    tarball.save(blob, doc, built.tarball, built.descriptor)
    return built


def _build_info(arch: Arch, lock: Lock) -> bytes:
    """What this layer is, readable inside a container: /.fusion/layer.json."""
    info = {
        "version": __version__,
        "architecture": arch.name,
        "distribution": lock.distribution,
        "packages": {d.package: d.version for d in lock.for_arch(arch)},
    }
    return (json.dumps(info, indent=2, sort_keys=True) + "\n").encode()
