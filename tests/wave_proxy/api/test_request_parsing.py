"""What the Wave API accepts and refuses, field by field (pure parsing, no I/O)."""

from __future__ import annotations

import copy

import pytest

from tests.wave_proxy.api.nfwave import FUSION_URL, nf_wave_request
from wave_proxy.api.request import (
    RequestError,
    parse_container_request,
    parse_image_reference,
    parse_platforms,
)
from wave_proxy.image.layer import Platform

DIGEST = "sha256:" + "a" * 64


def _digests(**overrides: object) -> dict:
    fields = {"gzipDigest": DIGEST, "gzipSize": 10, "tarDigest": DIGEST}
    fields.update(overrides)
    return fields


def test_nf_wave_request_with_every_field_and_nulls_is_accepted() -> None:
    body = nf_wave_request(
        "quay.io/nextflow/bash:latest", [{"location": "data:AAAA", **_digests()}]
    )
    request = parse_container_request(body)
    assert str(request.image.name) == "quay.io/nextflow/bash"
    assert request.image.tag == "latest"
    assert request.platforms == (Platform("linux", "amd64"),)
    assert request.changes.entrypoint == ("/usr/bin/fusion",)
    assert "FUSION_CONFIG_PROFILE=nextflow" in request.changes.env
    assert [layer.fusion_arch for layer in request.layers] == [None, "amd64"]


def test_unknown_fields_are_ignored() -> None:
    body = {"containerImage": "alpine", "someFutureField": {"x": 1}, "towerEndpoint": None}
    assert parse_container_request(body).image.name.repository == "library/alpine"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("containerFile", "RlJPTSBhbHBpbmU="),
        ("packages", {"type": "CONDA", "entries": ["samtools"]}),
        ("condaFile", "ZGVwczogW10="),
        ("freeze", True),
        ("mirror", True),
        ("containerIncludes", ["busybox"]),
        ("buildRepository", "registry.example/builds"),
        ("cacheRepository", "registry.example/cache"),
        ("scanMode", "required"),
        ("format", "sif"),
        ("dryRun", True),
    ],
)
def test_unsupported_feature_is_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(RequestError, match=f"^{field}: "):
        parse_container_request({"containerImage": "alpine", field: value})


@pytest.mark.parametrize("value", [None, "none", "NONE"])
def test_scan_mode_none_and_freeze_false_read_as_absent(value: object) -> None:
    body = {"containerImage": "alpine", "scanMode": value, "freeze": False}
    assert parse_container_request(body) == parse_container_request({"containerImage": "alpine"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", ["linux/amd64"]),
        ("x86_64", ["linux/amd64"]),
        ("aarch64", ["linux/arm64"]),
        ("linux/arm64/v8", ["linux/arm64"]),
        ("linux/amd64,linux/arm64", ["linux/amd64", "linux/arm64"]),
        (None, ["linux/amd64"]),
    ],
)
def test_platform_spellings(text: str | None, expected: list[str]) -> None:
    assert [str(p) for p in parse_platforms(text)] == expected


@pytest.mark.parametrize("text", ["windows/amd64", "linux/s390x", "linux", "a/b/c/d", "x86"])
def test_unsupported_platform_is_refused(text: str) -> None:
    with pytest.raises(RequestError, match=r"^containerPlatform: unsupported platform"):
        parse_platforms(text)


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("alpine", "docker.io", "library/alpine", "latest", None),
        ("alpine:3.20", "docker.io", "library/alpine", "3.20", None),
        ("quay.io/org/tool:1.0", "quay.io", "org/tool", "1.0", None),
        ("localhost:5000/tool", "localhost:5000", "tool", "latest", None),
        (f"ubuntu@{DIGEST}", "docker.io", "library/ubuntu", None, DIGEST),
        (f"ghcr.io/a/b:2@{DIGEST}", "ghcr.io", "a/b", "2", DIGEST),
    ],
)
def test_image_references(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_image_reference(text)
    assert (ref.name.registry, ref.name.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    assert ref.reference == (digest or tag)


@pytest.mark.parametrize("text", ["UPPER/case", "a/../b", "alpine@sha256:abc", "alpine:-bad"])
def test_invalid_image_reference_names_container_image(text: str) -> None:
    with pytest.raises(RequestError, match=r"^containerImage: "):
        parse_image_reference(text)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"env": ["NOVALUE"]}, r"containerConfig.env\[0\]: expected NAME=value"),
        ({"entrypoint": "/bin/sh"}, "containerConfig.entrypoint: must be a list of strings"),
        ({"layers": [{"location": "ftp://x", **_digests()}]}, r"layers\[0\].location"),
        ({"layers": [{"location": "data:", **_digests(gzipDigest="md5:1")}]}, "gzipDigest"),
        ({"layers": [{"location": "data:", **_digests(tarDigest="sha256:12")}]}, "tarDigest"),
        ({"layers": [{"location": "data:", **_digests(gzipSize=-1)}]}, "gzipSize"),
        ({"workingDir": 7}, "containerConfig.workingDir: must be a string"),
    ],
)
def test_bad_container_config_is_refused_naming_the_field(change: dict, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        parse_container_request({"containerImage": "alpine", "containerConfig": change})


def test_config_changes_replace_and_merge_as_given() -> None:
    body = {
        "containerImage": "alpine",
        "containerConfig": {
            "entrypoint": ["/e"],
            "cmd": ["c"],
            "workingDir": "/w",
            "env": ["A=1", "B=2"],
        },
    }
    changes = parse_container_request(body).changes
    assert (changes.entrypoint, changes.cmd, changes.working_dir, changes.env) == (
        ("/e",),
        ("c",),
        "/w",
        ("A=1", "B=2"),
    )


def test_fusion_package_url_is_recognised_per_architecture() -> None:
    body = copy.deepcopy(nf_wave_request("alpine", []))
    body["containerConfig"]["layers"][0]["location"] = FUSION_URL.replace("amd64", "arm64")
    assert parse_container_request(body).layers[0].fusion_arch == "arm64"
