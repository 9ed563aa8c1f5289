"""Deterministic test images, built in Python and pushed to a registry with plain HTTP.

Layers are gzip tars with fixed mtimes and owners, so the same call gives the same digests on
every run. `seed_shapes` pushes one image of every shape the proxy must augment and returns
their descriptors so tests can assert on digests, diff_ids and configs.

Manifests are serialised with `indent=3` (as Docker does) rather than compactly, so a proxy that
re-serialises an upstream manifest instead of keeping its exact bytes is caught at once.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import random
import shutil
import subprocess
import tarfile
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.support.registry import Registry

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
IN_TOTO = "application/vnd.in-toto+json"

CREATED = "2024-01-01T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# A config field no spec defines: the proxy must keep it byte for byte.
UNKNOWN_CONFIG_FIELD = "x-wave-proxy-test"

# What shapes.entrypoint_and_cmd prints when run as is: Entrypoint, Cmd and WorkingDir all count.
IMAGE_COMMAND_OUTPUT = "image command ran in /opt"

MARKER_PATH = "etc/wave-proxy-test"
MARKER_TEXT = "appended by wave-proxy\n"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Symlink:
    target: str


@dataclass(frozen=True)
class Layer:
    """A gzip tar layer: `digest` is over the gzip bytes, `diff_id` over the plain tar."""

    compressed: bytes
    diff_id: str

    @property
    def digest(self) -> str:
        return sha256(self.compressed)

    @property
    def size(self) -> int:
        return len(self.compressed)


def tar_layer(files: Mapping[str, bytes | Symlink], compresslevel: int = 6) -> Layer:
    """A reproducible layer holding `files` (path -> content or Symlink), parents included."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        written: set[str] = set()
        for path in sorted(files):
            parts = path.strip("/").split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in written:
                    written.add(directory)
                    tar.addfile(_tar_info(directory + "/", tarfile.DIRTYPE, 0o755))
            content = files[path]
            name = "/".join(parts)
            if isinstance(content, Symlink):
                info = _tar_info(name, tarfile.SYMTYPE, 0o777)
                info.linkname = content.target
                tar.addfile(info)
            else:
                info = _tar_info(name, tarfile.REGTYPE, 0o755)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    raw = buffer.getvalue()
    return Layer(gzip.compress(raw, compresslevel=compresslevel, mtime=0), sha256(raw))


def raw_layer(*members: tuple[tarfile.TarInfo, bytes]) -> Layer:
    """A layer whose entries are written exactly as given (hostile names and links too)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, content in members:
            info.size = len(content) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(content))
    raw = buffer.getvalue()
    return Layer(gzip.compress(raw, mtime=0), sha256(raw))


def _tar_info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def write_marker_layer(path: Path, text: str = MARKER_TEXT) -> Layer:
    """The layer tests append through `--layer`: /etc/wave-proxy-test holding `text`."""
    layer = tar_layer({MARKER_PATH: text.encode()})
    path.write_bytes(layer.compressed)
    return layer


@dataclass(frozen=True)
class PushedImage:
    """What was pushed: exact manifest bytes and digest, and for an index its children."""

    repository: str
    tag: str
    media_type: str
    manifest: bytes
    config: bytes = b""
    layers: tuple[Layer, ...] = ()
    children: tuple[PushedImage, ...] = ()
    subject: str = ""  # for an attestation manifest: the digest of the image it describes

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"

    def manifest_json(self) -> dict:
        return json.loads(self.manifest)

    def config_json(self) -> dict:
        return json.loads(self.config)


@dataclass(frozen=True)
class ImageSpec:
    """An image to build: its layers and the `config` section (Entrypoint, Cmd, Env, ...)."""

    layers: tuple[Layer, ...]
    runtime: dict = field(default_factory=dict)
    family: str = "docker"  # "docker" (schema2) or "oci"
    architecture: str = "amd64"
    extra_config: dict = field(default_factory=dict)


class Pusher:
    """Monolithic blob uploads (POST then PUT ?digest=) and manifest PUTs to one registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.session = requests.Session()

    def _headers(self, repository: str) -> dict[str, str]:
        return self.registry.auth_headers(repository, "pull,push")

    def blob(self, repository: str, data: bytes) -> str:
        digest = sha256(data)
        url = f"{self.registry.url}/v2/{repository}/blobs/{digest}"
        headers = self._headers(repository)
        if self.session.head(url, headers=headers, timeout=30).status_code == 200:
            return digest
        start = self.session.post(
            f"{self.registry.url}/v2/{repository}/blobs/uploads/", headers=headers, timeout=30
        )
        _check(start, "start blob upload")
        location = urllib.parse.urljoin(self.registry.url, start.headers["Location"])
        separator = "&" if "?" in location else "?"
        done = self.session.put(
            f"{location}{separator}digest={digest}",
            data=data,
            headers={**headers, "Content-Type": "application/octet-stream"},
            timeout=300,
        )
        _check(done, f"upload blob {digest}")
        return digest

    def manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        response = self.session.put(
            f"{self.registry.url}/v2/{repository}/manifests/{reference}",
            data=body,
            headers={**self._headers(repository), "Content-Type": media_type},
            timeout=30,
        )
        _check(response, f"put manifest {repository}:{reference}")
        return response.headers["Docker-Content-Digest"]

    def image(
        self, repository: str, tag: str, spec: ImageSpec, push_tag: bool = True
    ) -> PushedImage:
        """Push `spec` as a single-platform image; `push_tag=False` pushes it by digest only."""
        oci = spec.family == "oci"
        config = {
            "architecture": spec.architecture,
            "os": "linux",
            "created": CREATED,
            "config": spec.runtime,
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in spec.layers]},
            "history": [
                {"created": CREATED, "created_by": f"test layer {i}"}
                for i in range(len(spec.layers))
            ],
            **spec.extra_config,
        }
        config_bytes = json.dumps(config, indent=3).encode()
        for layer in spec.layers:
            self.blob(repository, layer.compressed)
        self.blob(repository, config_bytes)
        media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
        manifest = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
                "size": len(config_bytes),
                "digest": sha256(config_bytes),
            },
            "layers": [
                {
                    "mediaType": OCI_LAYER if oci else DOCKER_LAYER,
                    "size": layer.size,
                    "digest": layer.digest,
                }
                for layer in spec.layers
            ],
        }
        if oci:
            manifest["annotations"] = {"org.opencontainers.image.title": repository}
        body = json.dumps(manifest, indent=3).encode()
        self.manifest(repository, tag if push_tag else sha256(body), body, media_type)
        return PushedImage(repository, tag, media_type, body, config_bytes, spec.layers)

    def attestation(self, repository: str, subject: PushedImage) -> PushedImage:
        """An in-toto attestation manifest, as buildx attaches to each platform image."""
        statement = json.dumps(
            {"_type": "https://in-toto.io/Statement/v0.1", "subject": [{"name": subject.digest}]}
        ).encode()
        config_bytes = json.dumps({"architecture": "unknown", "os": "unknown"}).encode()
        self.blob(repository, statement)
        self.blob(repository, config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": sha256(config_bytes),
                "size": len(config_bytes),
            },
            "layers": [
                {
                    "mediaType": IN_TOTO,
                    "digest": sha256(statement),
                    "size": len(statement),
                    "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"},
                }
            ],
        }
        body = json.dumps(manifest, indent=3).encode()
        self.manifest(repository, sha256(body), body, OCI_MANIFEST)
        return PushedImage(repository, "", OCI_MANIFEST, body, config_bytes, subject=subject.digest)

    def index(
        self, repository: str, tag: str, children: list[PushedImage], media_type: str
    ) -> PushedImage:
        """An index or list over `children`; attestations get buildx's unknown/unknown entry."""
        entries = []
        for child in children:
            entry: dict = {
                "mediaType": child.media_type,
                "digest": child.digest,
                "size": len(child.manifest),
            }
            if child.subject:
                entry["annotations"] = {
                    "vnd.docker.reference.digest": child.subject,
                    "vnd.docker.reference.type": "attestation-manifest",
                }
                entry["platform"] = {"architecture": "unknown", "os": "unknown"}
            else:
                architecture = child.config_json()["architecture"]
                entry["platform"] = {"architecture": architecture, "os": "linux"}
            entries.append(entry)
        body = json.dumps(
            {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}, indent=3
        ).encode()
        self.manifest(repository, tag, body, media_type)
        return PushedImage(repository, tag, media_type, body, children=tuple(children))


def _check(response: requests.Response, what: str) -> None:
    if response.status_code >= 300:
        raise RuntimeError(f"{what}: HTTP {response.status_code} {response.text[:500]}")


@dataclass(frozen=True)
class Shapes:
    """One pushed image per shape the proxy must handle (all in the same registry)."""

    schema2: PushedImage
    oci: PushedImage
    oci_index: PushedImage
    manifest_list: PushedImage
    no_entrypoint: PushedImage
    entrypoint_and_cmd: PushedImage
    busybox: PushedImage

    def named(self, name: str) -> PushedImage:
        return getattr(self, name)


SHAPE_NAMES = tuple(Shapes.__dataclass_fields__)


def _content_layer(name: str, architecture: str = "amd64") -> Layer:
    return tar_layer({f"opt/{name}/{architecture}.txt": f"{name} for {architecture}\n".encode()})


@functools.cache
def busybox_layer(binary: str = "/bin/busybox") -> Layer:
    """A runnable rootfs: the static busybox plus a symlink per applet, like the real image."""
    path = shutil.which(binary) or binary
    applets = subprocess.run([path, "--list"], check=True, capture_output=True, text=True).stdout
    files: dict[str, bytes | Symlink] = {"bin/busybox": Path(path).read_bytes()}
    for applet in applets.split():
        if applet != "busybox":
            files[f"bin/{applet}"] = Symlink("busybox")
    files["tmp/.keep"] = b""
    return tar_layer(files)


def push_busybox(
    pusher: Pusher, repository: str = "library/busybox", tag: str = "1"
) -> PushedImage:
    spec = ImageSpec((busybox_layer(),), runtime={"Env": [PATH_ENV], "Cmd": ["sh"]})
    return pusher.image(repository, tag, spec)


def seed_shapes(registry: Registry) -> Shapes:
    """Push every shape to `registry` (idempotent: blobs that exist are skipped)."""
    pusher = Pusher(registry)
    base = _content_layer("base")
    arm = pusher.image(
        "shapes/multiarch",
        "arm64",
        ImageSpec((_content_layer("multi", "arm64"),), {"Cmd": ["sh"]}, "oci", "arm64"),
        push_tag=False,
    )
    amd = pusher.image(
        "shapes/multiarch",
        "amd64",
        ImageSpec((_content_layer("multi", "amd64"),), {"Cmd": ["sh"]}, "oci"),
        push_tag=False,
    )
    attestation = pusher.attestation("shapes/multiarch", amd)
    list_children = [
        pusher.image(
            "shapes/manifestlist",
            arch,
            ImageSpec((_content_layer("list", arch),), {"Cmd": ["sh"]}, "docker", arch),
            push_tag=False,
        )
        for arch in ("amd64", "arm64")
    ]
    return Shapes(
        schema2=pusher.image(
            "shapes/schema2",
            "1",
            ImageSpec(
                (base, _content_layer("schema2")),
                {"Env": [PATH_ENV], "Cmd": ["sh"], "Labels": {"shape": "schema2"}},
                extra_config={UNKNOWN_CONFIG_FIELD: {"kept": [1, "two", None]}},
            ),
        ),
        oci=pusher.image(
            "shapes/oci",
            "1",
            ImageSpec((base, _content_layer("oci")), {"Env": [PATH_ENV], "Cmd": ["sh"]}, "oci"),
        ),
        oci_index=pusher.index("shapes/multiarch", "1", [amd, arm, attestation], OCI_INDEX),
        manifest_list=pusher.index("shapes/manifestlist", "1", list_children, DOCKER_MANIFEST_LIST),
        no_entrypoint=pusher.image(
            "shapes/noentrypoint", "1", ImageSpec((_content_layer("noentry"),), {})
        ),
        entrypoint_and_cmd=pusher.image(
            "shapes/entrypointcmd",
            "1",
            ImageSpec(
                (busybox_layer(), _content_layer("both")),
                {
                    "Env": [PATH_ENV],
                    "Entrypoint": ["/bin/sh", "-c"],
                    "Cmd": ["echo image command ran in $(pwd)"],
                    "WorkingDir": "/opt",
                },
            ),
        ),
        busybox=push_busybox(pusher),
    )


def push_big_image(
    registry: Registry,
    repository: str = "bench/big",
    tag: str = "1",
    total_mb: int = 200,
    layer_count: int = 4,
) -> PushedImage:
    """A ~`total_mb` image of incompressible data in `layer_count` layers, for the benchmark."""
    rng = random.Random(total_mb * 1000 + layer_count)
    per_layer = total_mb * 1024 * 1024 // layer_count
    layers = tuple(
        tar_layer({f"data/blob-{i}.bin": rng.randbytes(per_layer)}, compresslevel=1)
        for i in range(layer_count)
    )
    return Pusher(registry).image(repository, tag, ImageSpec(layers, {"Cmd": ["true"]}))
