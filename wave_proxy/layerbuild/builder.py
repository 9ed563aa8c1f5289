"""Build the Fusion layer for each architecture: the entry point of this package."""

from __future__ import annotations

import contextlib
import hashlib
import json
import tarfile
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
# The launcher's default mountpoint, present so that a container running as a non-root user,
# which cannot create /fusion itself, can still mount there.
MOUNTPOINT = "/fusion"
BUILD_INFO = f"{runtime.PREFIX.lstrip('/')}/layer.json"


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
        unpacked = {a.name: _unpack(lock, a, cache_dir, work) for a in {native, *arches}}
        root = unpacked[native.name][0]
        modules = runtime.select_modules(root, native, inputs.client_root, work)
        return [
            _build_one(arch, *unpacked[arch.name], modules, lock, inputs, out_dir, work)
            for arch in arches
        ]


def ensure_layers(
    arches: list[Arch], out_dir: Path, cache_dir: Path, inputs: LayerInputs | None = None
) -> list[BuiltLayer]:
    """The layers in out_dir, building only those missing or made from other inputs.

    For a server's first start: a layer built earlier from the same lock file, shim, builder
    and client sources is reused; any change to them triggers a rebuild.
    """
    inputs = inputs or LayerInputs.from_repo()
    fingerprint = inputs_fingerprint(inputs)
    ready = {arch: _current(arch, out_dir, fingerprint) for arch in arches}
    stale = [arch for arch, layer in ready.items() if layer is None]
    if stale:
        ready.update(zip(stale, build_layers(stale, out_dir, cache_dir, inputs), strict=True))
    return [layer for layer in ready.values() if layer is not None]


def inputs_fingerprint(inputs: LayerInputs) -> str:
    """sha256 over everything a layer is made from (besides the host's compilers)."""
    named = [
        ("lock", inputs.lock_path),
        ("shim", inputs.shim_source),
        *((f"builder/{p.name}", p) for p in sorted(Path(__file__).parent.glob("*.py"))),
        *(
            (p.relative_to(inputs.client_root).as_posix(), p)
            for p in sorted((inputs.client_root / "fusion_client").rglob("*.py"))
        ),
    ]
    digest = hashlib.sha256(__version__.encode())
    for name, path in named:
        data = path.read_bytes()
        digest.update(f"\0{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def _current(arch: Arch, out_dir: Path, fingerprint: str) -> BuiltLayer | None:
    """The layer already in out_dir if it is whole and was built from these inputs."""
    name = layer_name(arch)
    built = None
    with contextlib.suppress(OSError, ValueError, KeyError, tarfile.TarError, EOFError):
        (entry,) = json.loads((out_dir / f"{name}.json").read_text())["layers"]
        tarball = out_dir / f"{name}.tar.gz"
        if tarball.stat().st_size == entry["gzipSize"] and _fingerprint_of(tarball) == fingerprint:
            built = BuiltLayer(
                arch=arch,
                tarball=tarball,
                descriptor=out_dir / f"{name}.json",
                gzip_digest=entry["gzipDigest"],
                gzip_size=entry["gzipSize"],
                tar_digest=entry["tarDigest"],
            )
    return built


def _fingerprint_of(tarball: Path) -> str | None:
    with tarfile.open(tarball, "r|gz") as tar:
        for member in tar:
            if member.name == BUILD_INFO:
                return json.loads(tar.extractfile(member).read())["inputs"]
    return None


def _unpack(
    lock: Lock, arch: Arch, cache_dir: Path, work: Path
) -> tuple[Path, list[debs.FetchedDeb]]:
    root = work / f"root-{arch.name}"
    fetched = debs.fetch_with_fallback(lock.for_arch(arch), cache_dir)
    debs.unpack([deb.path for deb in fetched], root)
    return root, fetched


def _build_one(
    arch: Arch,
    root: Path,
    fetched: list[debs.FetchedDeb],
    modules: runtime.Modules,
    lock: Lock,
    inputs: LayerInputs,
    out_dir: Path,
    work: Path,
) -> BuiltLayer:
    tree = LayerTree()
    runtime.add_runtime(tree, root, arch, modules, work)
    tree.add_file(LAUNCHER, shim.compile_shim(inputs.shim_source, arch), 0o755)
    tree.add_dir(MOUNTPOINT)
    packages = _packages(fetched)
    tree.add_file(BUILD_INFO, _build_info(arch, lock, inputs_fingerprint(inputs), packages))
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
    used = out_dir / f"{name}.packages.json"
    used.write_text(json.dumps(packages, indent=2, sort_keys=True) + "\n")
    return built


def _packages(fetched: list[debs.FetchedDeb]) -> dict[str, dict[str, str]]:
    """What each package was built from; `pinned` too where the mirror lacked that version."""
    return {
        deb.pinned.package: {"version": deb.version}
        | ({"pinned": deb.pinned.version} if deb.substituted else {})
        for deb in fetched
    }


def _build_info(
    arch: Arch, lock: Lock, fingerprint: str, packages: dict[str, dict[str, str]]
) -> bytes:
    """What this layer is, readable inside a container: /.fusion/layer.json."""
    info = {
        "inputs": fingerprint,
        "version": __version__,
        "architecture": arch.name,
        "distribution": lock.distribution,
        "packages": {name: used["version"] for name, used in packages.items()},
    }
    substituted = {name: used for name, used in packages.items() if "pinned" in used}
    if substituted:
        info["substituted"] = substituted
    return (json.dumps(info, indent=2, sort_keys=True) + "\n").encode()
