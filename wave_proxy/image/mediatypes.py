"""Media types of the Docker and OCI manifest families, and what the proxy can do with each."""

from __future__ import annotations

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

IMAGE_MANIFESTS = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEXES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
SCHEMA1 = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
IMAGE_CONFIGS = frozenset({DOCKER_CONFIG, OCI_CONFIG})
MANIFESTS = IMAGE_MANIFESTS | INDEXES | SCHEMA1

# What we ask upstream for when the client sends no usable Accept: every modern type, so a
# registry never downgrades to schema1.
DEFAULT_ACCEPT = (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX)


def layer_type_for(manifest_type: str) -> str:
    """The gzip layer media type of the manifest's family (Docker v2 or OCI)."""
    if manifest_type in (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST):
        return DOCKER_LAYER_GZIP
    return OCI_LAYER_GZIP


def strip_parameters(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def parse_accept(values: list[str]) -> list[str]:
    """All media types named by one or more Accept headers (comma-joined or repeated), q ignored."""
    types: list[str] = []
    for value in values:
        for part in value.split(","):
            media_type = strip_parameters(part)
            if media_type and media_type not in types:
                types.append(media_type)
    return types


def accepts(accepted: list[str], media_type: str) -> bool:
    """Whether a client that sent `accepted` may be given `media_type`, by distribution's rule.

    Only OCI manifests and indexes are refused, and only to clients that named types without
    this one or a wildcard: Docker types predate negotiation and every client takes them.
    """
    if not accepted or media_type not in (OCI_MANIFEST, OCI_INDEX):
        return True
    return any(a in (media_type, "*/*", "application/*") for a in accepted)
