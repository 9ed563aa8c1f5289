"""Parse and validate Wave container requests as real clients send them (pure, no I/O).

Nextflow's nf-wave serialises every field of SubmitContainerTokenRequest, null ones included, so
null and false mean "not used". Fields we do not know are ignored (newer clients add some).
Features this proxy does not offer are refused with a message naming the field: a silent
success would hand the client an image that is not what it asked for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wave_proxy.image.digest import DigestError, parse_digest
from wave_proxy.image.layer import Platform
from wave_proxy.image.mutate import ConfigChanges
from wave_proxy.image.reference import ImageName, InvalidName, route_name, validate_tag

DEFAULT_PLATFORM = "linux/amd64"
SUPPORTED_ARCHES = ("amd64", "arm64")
# nf-wave's default Fusion package: replaced by our own Fusion layer of the same architecture.
FUSION_PACKAGE = re.compile(
    r"^https://fusionfs\.seqera\.io/.*/fusion-(?P<arch>amd64|arm64)\.tar\.gz$"
)

# (field, why it is refused). A field is "used" when it is neither null, false nor empty.
UNSUPPORTED = (
    (
        "containerFile",
        "container builds are not offered by this proxy; build the image "
        "elsewhere and send it as containerImage",
    ),
    ("packages", "conda/CRAN package builds are not offered by this proxy"),
    ("condaFile", "conda builds are not offered by this proxy"),
    ("containerIncludes", "merging other images (containerIncludes) is not offered"),
    ("buildContext", "container builds are not offered by this proxy"),
    ("buildRepository", "builds and freeze are not offered, so there is no build repository"),
    ("cacheRepository", "builds are not offered, so there is no cache repository"),
    ("freeze", "freeze (pushing a durable image) is not offered; use the targetImage"),
    ("mirror", "mirroring to another registry is not offered"),
    ("dryRun", "dryRun is not offered; requests are cheap and side-effect free anyway"),
)


class RequestError(ValueError):
    """A request this proxy refuses (HTTP 400); the message names the field."""


@dataclass(frozen=True)
class ImageReference:
    """`[registry/]repository[:tag][@digest]` resolved against the configured registries."""

    name: ImageName
    tag: str | None
    digest: str | None

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        return f"{self.name}@{self.digest}" if self.digest else f"{self.name}:{self.tag}"


@dataclass(frozen=True)
class LayerRequest:
    """One containerConfig.layers entry, as the client describes it."""

    location: str
    gzip_digest: str
    gzip_size: int
    tar_digest: str

    @property
    def fusion_arch(self) -> str | None:
        """The architecture when this is the incumbent's Fusion package, else None."""
        match = FUSION_PACKAGE.match(self.location)
        return match["arch"] if match else None


@dataclass(frozen=True)
class ContainerRequest:
    image: ImageReference
    platforms: tuple[Platform, ...]
    changes: ConfigChanges
    layers: tuple[LayerRequest, ...]
    # Echoed by GET /container-token/{token}; never interpreted.
    info: Mapping[str, Any]


def parse_container_request(body: Any) -> ContainerRequest:
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    for field, reason in UNSUPPORTED:
        if body.get(field) not in (None, False, "", [], {}):
            raise RequestError(f"{field}: {reason}")
    scan_mode = body.get("scanMode")
    if scan_mode not in (None, "none", "NONE"):
        raise RequestError(f"scanMode: security scans are not offered (got {scan_mode!r})")
    if body.get("format") not in (None, "docker", "DOCKER"):
        raise RequestError("format: only Docker/OCI images are served; Singularity (sif) is not")
    image = body.get("containerImage")
    if not isinstance(image, str) or not image:
        raise RequestError("containerImage: required, e.g. docker.io/library/alpine:3.20")
    config = body.get("containerConfig")
    if config is not None and not isinstance(config, dict):
        raise RequestError("containerConfig: must be an object")
    changes, layers = parse_container_config(config or {})
    info_keys = ("towerEndpoint", "towerWorkspaceId", "workflowId", "fingerprint", "timestamp")
    return ContainerRequest(
        image=parse_image_reference(image),
        platforms=parse_platforms(body.get("containerPlatform")),
        changes=changes,
        layers=layers,
        info={key: body[key] for key in info_keys if body.get(key) is not None},
    )


def parse_image_reference(text: str) -> ImageReference:
    """Split `quay.io/org/tool:1.0@sha256:...`; Docker Hub names get docker.io and library/."""
    field = "containerImage"
    rest, _, digest = text.partition("@")
    if digest:
        try:
            parse_digest(digest)
        except DigestError as exc:
            raise RequestError(f"{field}: {exc}") from None
    name, tag = rest, None
    slash, colon = rest.rfind("/"), rest.rfind(":")
    if colon > slash:
        name, tag = rest[:colon], rest[colon + 1 :]
    try:
        if tag is not None:
            validate_tag(tag)
        image_name = route_name(name)
    except InvalidName as exc:
        raise RequestError(f"{field}: {exc}") from None
    if not digest and tag is None:
        tag = "latest"
    return ImageReference(image_name, tag, digest or None)


def parse_platforms(value: Any) -> tuple[Platform, ...]:
    """`linux/amd64`, `linux/arm64`, the `x86_64`/`aarch64` spellings, or a comma list."""
    if value is None or value == "":
        value = DEFAULT_PLATFORM
    if not isinstance(value, str):
        raise RequestError("containerPlatform: must be a string such as linux/amd64")
    platforms: list[Platform] = []
    for item in value.split(","):
        text = item.strip().lower()
        try:
            platform = Platform.parse(text if "/" in text else f"linux/{text}")
        except ValueError:
            platform = None
        if (
            platform is None
            or platform.os != "linux"
            or platform.architecture not in (SUPPORTED_ARCHES)
        ):
            raise RequestError(
                f"containerPlatform: unsupported platform {item.strip()!r}; use linux/amd64, "
                "linux/arm64 (or x86_64, aarch64), or both separated by a comma"
            )
        if platform not in platforms:
            platforms.append(platform)
    return tuple(platforms)


def parse_container_config(
    config: Mapping[str, Any],
) -> tuple[ConfigChanges, tuple[LayerRequest, ...]]:
    entrypoint = _string_list(config, "entrypoint")
    cmd = _string_list(config, "cmd")
    env = _string_list(config, "env") or ()
    for i, entry in enumerate(env):
        if "=" not in entry or entry.startswith("="):
            raise RequestError(f"containerConfig.env[{i}]: expected NAME=value, got {entry!r}")
    working_dir = config.get("workingDir")
    if working_dir is not None and not isinstance(working_dir, str):
        raise RequestError("containerConfig.workingDir: must be a string")
    layers = config.get("layers") or []
    if not isinstance(layers, list):
        raise RequestError("containerConfig.layers: must be a list")
    changes = ConfigChanges(
        entrypoint=entrypoint or None,
        cmd=cmd or None,
        working_dir=working_dir or None,
        env=env,
    )
    return changes, tuple(_layer(layer, i) for i, layer in enumerate(layers))


def _string_list(config: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RequestError(f"containerConfig.{key}: must be a list of strings")
    return tuple(value)


def _layer(layer: Any, index: int) -> LayerRequest:
    where = f"containerConfig.layers[{index}]"
    if not isinstance(layer, dict):
        raise RequestError(f"{where}: must be an object")
    location = layer.get("location")
    if not isinstance(location, str) or not location.startswith(("data:", "http://", "https://")):
        raise RequestError(f"{where}.location: must be a data: payload or an http(s):// URL")
    digests = {}
    for key in ("gzipDigest", "tarDigest"):
        value = layer.get(key)
        if not isinstance(value, str) or not value.startswith("sha256:"):
            raise RequestError(f"{where}.{key}: required, sha256:<64 hex>")
        try:
            parse_digest(value)
        except DigestError as exc:
            raise RequestError(f"{where}.{key}: {exc}") from None
        digests[key] = value
    size = layer.get("gzipSize")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise RequestError(f"{where}.gzipSize: required, the size in bytes of the .tar.gz")
    return LayerRequest(location, digests["gzipDigest"], size, digests["tarDigest"])
