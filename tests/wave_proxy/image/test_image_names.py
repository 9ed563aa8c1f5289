"""Digests, repository names and how a request path picks its registry."""

from __future__ import annotations

import pytest

from wave_proxy.image.digest import DigestError, matches, parse_digest, sha256_digest
from wave_proxy.image.mediatypes import accepts, parse_accept
from wave_proxy.image.reference import ImageName, InvalidName, route_name, validate_tag

HEX = "a" * 64


def test_sha256_and_sha512_digests_parse():
    assert parse_digest(f"sha256:{HEX}") == ("sha256", HEX)
    assert parse_digest("sha512:" + "b" * 128) == ("sha512", "b" * 128)


@pytest.mark.parametrize(
    "bad",
    ["sha256:" + "A" * 64, "sha256:abc", "md5:" + "a" * 32, "sha256" + HEX, "totallywrong", ""],
)
def test_malformed_digests_are_rejected(bad):
    with pytest.raises(DigestError):
        parse_digest(bad)


def test_matches_checks_content_against_digest():
    assert matches(sha256_digest(b"x"), b"x")
    assert not matches(sha256_digest(b"x"), b"y")


def test_one_component_docker_hub_names_get_library_prefix():
    assert route_name("busybox") == ImageName("docker.io", "library/busybox")
    assert route_name("org/tool") == ImageName("docker.io", "org/tool")


def test_first_component_that_is_a_host_selects_that_registry():
    assert route_name("ghcr.io/org/tool") == ImageName("ghcr.io", "org/tool")
    assert route_name("localhost/tool") == ImageName("localhost", "tool")
    assert route_name("127.0.0.1:5000/a/b") == ImageName("127.0.0.1:5000", "a/b")


def test_containerd_ns_parameter_selects_the_registry():
    assert route_name("org/tool", "ghcr.io") == ImageName("ghcr.io", "org/tool")
    assert route_name("busybox", "registry-1.docker.io") == ImageName(
        "docker.io", "library/busybox"
    )


@pytest.mark.parametrize(
    "bad", ["../etc/passwd", "a/../b", "Upper/case", "a//b", "-lead", "a" * 256, "a/b/", ""]
)
def test_invalid_names_are_rejected(bad):
    with pytest.raises(InvalidName):
        route_name(bad)


def test_tags_follow_the_distribution_grammar():
    assert validate_tag("v1.2_3-rc") == "v1.2_3-rc"
    for bad in (".hidden", "-x", "a" * 129, "a/b"):
        with pytest.raises(InvalidName):
            validate_tag(bad)


def test_accept_values_are_read_from_joined_and_repeated_headers():
    types = parse_accept(["application/vnd.oci.image.index.v1+json, */*;q=0.1", "text/plain"])
    assert types == ["application/vnd.oci.image.index.v1+json", "*/*", "text/plain"]


def test_a_client_without_accept_or_with_wildcard_takes_anything():
    assert accepts([], "application/vnd.oci.image.manifest.v1+json")
    assert accepts(["*/*"], "application/vnd.oci.image.manifest.v1+json")


def test_oci_types_go_only_to_clients_that_accept_them():
    assert not accepts(
        ["application/vnd.docker.distribution.manifest.v2+json"],
        "application/vnd.oci.image.index.v1+json",
    )
    assert accepts(
        ["application/vnd.oci.image.manifest.v1+json"],
        "application/vnd.docker.distribution.manifest.v2+json",
    ), "Docker types predate negotiation: never refused"


@pytest.mark.parametrize("name", ["busybox\n", "org/tool\n", "ghcr.io\n/org/tool"])
def test_names_with_a_trailing_newline_are_invalid(name):
    with pytest.raises(InvalidName):
        route_name(name)


def test_tags_and_digests_with_a_trailing_newline_are_invalid():
    with pytest.raises(InvalidName):
        validate_tag("1.0\n")
    with pytest.raises(DigestError):
        parse_digest(f"sha256:{HEX}\n")
