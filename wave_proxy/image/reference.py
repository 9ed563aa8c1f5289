"""Repository names and tags (distribution grammar) and how a request path picks its registry."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_NAME_LENGTH = 255
DEFAULT_REGISTRY = "docker.io"

# Used with fullmatch: `$` would also match before a trailing newline.
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?")


class InvalidName(ValueError):
    """A repository name or tag that the distribution grammar rejects."""


def validate_repository(name: str) -> str:
    """Check a repository path (without registry host); return it unchanged."""
    if not name:
        raise InvalidName("empty repository name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"repository name is longer than {MAX_NAME_LENGTH} characters")
    for component in name.split("/"):
        if not _COMPONENT.fullmatch(component):
            raise InvalidName(
                f"invalid repository name component {component[:64]!r}: use lowercase letters, "
                "digits and single separators (. _ __ -)"
            )
    return name


def validate_tag(tag: str) -> str:
    if not _TAG.fullmatch(tag):
        raise InvalidName(
            f"invalid tag {tag[:64]!r}: use up to 128 of A-Z a-z 0-9 _ . - (not starting . or -)"
        )
    return tag


def is_host(component: str) -> bool:
    """Docker's rule: a first path component with `.` or `:`, or `localhost`, names a registry."""
    return ("." in component or ":" in component or component == "localhost") and bool(
        _HOST.fullmatch(component)
    )


@dataclass(frozen=True)
class ImageName:
    """A repository on a named registry, e.g. registry=docker.io, repository=library/busybox."""

    registry: str
    repository: str

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}"


def route_name(path_name: str, namespace: str | None = None) -> ImageName:
    """Resolve the `<name>` of a `/v2/<name>/...` request to a registry and repository.

    containerd's `?ns=<host>` wins; otherwise a first component that is a host selects that
    registry; otherwise the name is a Docker Hub name and one-component names get `library/`.
    """
    registry = DEFAULT_REGISTRY
    repository = path_name
    first, _, rest = path_name.partition("/")
    if namespace:
        registry = normalise_registry(namespace)
    elif rest and is_host(first):
        registry, repository = normalise_registry(first), rest
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = f"library/{repository}"
    validate_repository(repository)
    if len(registry) + 1 + len(repository) > MAX_NAME_LENGTH:
        raise InvalidName(f"image name is longer than {MAX_NAME_LENGTH} characters")
    return ImageName(registry, repository)


def normalise_registry(host: str) -> str:
    """Docker Hub goes by several names; they all mean docker.io."""
    host = host.lower()
    if host in ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"):
        return DEFAULT_REGISTRY
    if not is_host(host) and host != DEFAULT_REGISTRY:
        raise InvalidName(f"invalid registry host {host[:64]!r}")
    return host
