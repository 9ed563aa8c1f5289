"""skopeo (which verifies every digest and diff_id it copies) pulling each seeded shape through
the proxy, and `skopeo inspect --raw` showing what the proxy appended."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support import need_binary
from tests.support.images import (
    DOCKER_LAYER,
    OCI_LAYER,
    OCI_MANIFEST,
    SHAPE_NAMES,
    UNKNOWN_CONFIG_FIELD,
    Layer,
    Shapes,
)
from tests.support.proxy import Proxy

SINGLE_IMAGES = ("schema2", "oci", "no_entrypoint", "entrypoint_and_cmd", "busybox")
INDEXES = ("oci_index", "manifest_list")


def skopeo(*args: str) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run([need_binary("skopeo"), *args], capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    return result


def inspect_raw(proxy: Proxy, reference: str, *extra: str) -> bytes:
    return skopeo(
        "inspect", "--raw", "--tls-verify=false", *extra, f"docker://{proxy.host}/{reference}"
    ).stdout


def layout_manifests(layout: Path) -> list[dict]:
    """Every image manifest in an OCI layout, descending through indexes."""

    def blob(digest: str) -> dict:
        return json.loads((layout / "blobs" / digest.replace(":", "/")).read_bytes())

    pending = [
        blob(d["digest"]) for d in json.loads((layout / "index.json").read_text())["manifests"]
    ]
    manifests = []
    while pending:
        document = pending.pop()
        if "manifests" in document:
            pending += [blob(d["digest"]) for d in document["manifests"]]
        else:
            manifests.append(document)
    return manifests


@pytest.mark.parametrize("shape", SHAPE_NAMES)
def test_skopeo_copies_every_shape_and_each_image_ends_with_the_appended_layer(
    shape: str, shapes: Shapes, proxy: Proxy, marker_layer: tuple[Path, Layer], tmp_path: Path
) -> None:
    image = shapes.named(shape)
    skopeo(
        "copy",
        "--all",
        "--src-tls-verify=false",
        f"docker://{proxy.host}/{image.reference}",
        f"oci:{tmp_path}/out",
    )
    runnable = [
        m
        for m in layout_manifests(tmp_path / "out")
        if m["layers"][0]["mediaType"] in (DOCKER_LAYER, OCI_LAYER)
    ]
    assert runnable
    assert {m["layers"][-1]["digest"] for m in runnable} == {marker_layer[1].digest}


@pytest.mark.parametrize("shape", SINGLE_IMAGES)
def test_inspect_raw_shows_the_appended_layer_in_the_manifest_family(
    shape: str, shapes: Shapes, proxy: Proxy, marker_layer: tuple[Path, Layer]
) -> None:
    image = shapes.named(shape)
    manifest = json.loads(inspect_raw(proxy, image.reference))
    family_layer = OCI_LAYER if image.media_type == OCI_MANIFEST else DOCKER_LAYER
    marker = {
        "mediaType": family_layer,
        "size": marker_layer[1].size,
        "digest": marker_layer[1].digest,
    }
    assert manifest["mediaType"] == image.media_type
    assert manifest["layers"] == [*image.manifest_json()["layers"], marker]


def test_augmented_config_appends_diff_id_and_history_and_keeps_every_other_field(
    shapes: Shapes, proxy: Proxy, marker_layer: tuple[Path, Layer]
) -> None:
    original = shapes.schema2.config_json()
    config = json.loads(inspect_raw(proxy, shapes.schema2.reference, "--config"))
    assert config["rootfs"]["diff_ids"] == [
        *original["rootfs"]["diff_ids"],
        marker_layer[1].diff_id,
    ]
    assert config["history"][: len(original["history"])] == original["history"]
    assert len(config["history"]) == len(original["history"]) + 1
    assert config[UNKNOWN_CONFIG_FIELD] == original[UNKNOWN_CONFIG_FIELD]
    assert config["config"] == original["config"]


@pytest.mark.parametrize("shape", ["no_entrypoint", "entrypoint_and_cmd"])
def test_augmentation_leaves_entrypoint_and_cmd_as_the_image_had_them(
    shape: str, shapes: Shapes, proxy: Proxy
) -> None:
    image = shapes.named(shape)
    config = json.loads(inspect_raw(proxy, image.reference, "--config"))
    assert config["config"] == image.config_json()["config"]


@pytest.mark.parametrize("shape", INDEXES)
def test_index_entries_point_at_augmented_platform_images(
    shape: str, shapes: Shapes, proxy: Proxy, marker_layer: tuple[Path, Layer]
) -> None:
    image = shapes.named(shape)
    index = json.loads(inspect_raw(proxy, image.reference))
    assert index["mediaType"] == image.media_type
    upstream_runnable = [c for c in image.children if not c.subject]
    runnable = [e for e in index["manifests"] if e["platform"]["architecture"] != "unknown"]
    assert [e["platform"] for e in runnable] == [
        {"architecture": c.config_json()["architecture"], "os": "linux"} for c in upstream_runnable
    ]
    for entry, upstream_child in zip(runnable, upstream_runnable, strict=True):
        assert entry["digest"] != upstream_child.digest
        child = json.loads(inspect_raw(proxy, f"{image.repository}@{entry['digest']}"))
        assert child["layers"][-1]["digest"] == marker_layer[1].digest


def test_oci_manifest_records_its_base_image(shapes: Shapes, proxy: Proxy) -> None:
    manifest = json.loads(inspect_raw(proxy, shapes.oci.reference))
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == shapes.oci.digest
    assert manifest["annotations"]["org.opencontainers.image.title"] == "shapes/oci"


def test_a_request_by_upstream_digest_is_served_byte_for_byte(shapes: Shapes, proxy: Proxy) -> None:
    raw = inspect_raw(proxy, f"{shapes.schema2.repository}@{shapes.schema2.digest}")
    assert raw == shapes.schema2.manifest


def test_augmented_index_drops_attestations_whose_subject_digest_it_replaced(
    shapes: Shapes, proxy: Proxy
) -> None:
    """The documented choice (wave_proxy/image/mutate.py): an attestation names the upstream
    platform digest, which the augmented index no longer contains. The original index, with its
    attestation, stays pullable by its own digest."""
    index = json.loads(inspect_raw(proxy, shapes.oci_index.reference))
    assert all(e["platform"]["architecture"] != "unknown" for e in index["manifests"])
    original = inspect_raw(proxy, f"{shapes.oci_index.repository}@{shapes.oci_index.digest}")
    assert original == shapes.oci_index.manifest
