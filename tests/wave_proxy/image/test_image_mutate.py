"""Appending layers to configs, manifests and indexes: pure, deterministic, lossless."""

from __future__ import annotations

import json

import pytest

from wave_proxy.image import mediatypes as mt
from wave_proxy.image.digest import sha256_digest
from wave_proxy.image.layer import LayerDescriptor, Platform
from wave_proxy.image.mutate import (
    BASE_DIGEST,
    BASE_NAME,
    HISTORY_CREATED,
    ConfigChanges,
    Document,
    ManifestError,
    augment_config,
    augment_image,
    index_children,
    manifest_media_type,
    merge_env,
    rewrite_index,
)

LAYER = LayerDescriptor("sha256:" + "1" * 64, 123, "sha256:" + "2" * 64)
ARM_LAYER = LayerDescriptor(
    "sha256:" + "3" * 64, 45, "sha256:" + "4" * 64, Platform.parse("linux/arm64")
)
BASE = "docker.io/library/demo"


def config_bytes(architecture: str = "amd64", history: bool = True) -> bytes:
    config = {
        "zeta-unknown": {"keep": [1, 2.5, None]},
        "architecture": architecture,
        "os": "linux",
        "config": {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "Labels": {"x": "y"}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "5" * 64]},
        "created": "2024-01-01T00:00:00Z",
    }
    if history:
        config["history"] = [{"created_by": "base"}]
    return json.dumps(config, indent=2).encode()


def manifest_bytes(media_type: str, config: bytes, declare_type: bool = True) -> bytes:
    docker = media_type == mt.DOCKER_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "config": {
            "mediaType": mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG,
            "size": len(config),
            "digest": sha256_digest(config),
        },
        "layers": [
            {
                "mediaType": mt.DOCKER_LAYER_GZIP if docker else mt.OCI_LAYER_GZIP,
                "size": 10,
                "digest": "sha256:" + "6" * 64,
                "urls": ["https://example.invalid/layer"],
            }
        ],
        "x-extra": "kept",
    }
    if declare_type:
        manifest = {"mediaType": media_type, **manifest}
    return json.dumps(manifest, indent=3).encode()


def test_config_gets_diff_id_and_history_and_keeps_unknown_fields_in_order():
    original = json.loads(config_bytes())
    result = augment_config(original, [LAYER])
    assert result["rootfs"]["diff_ids"] == [*original["rootfs"]["diff_ids"], LAYER.diff_id]
    assert result["history"][-1] == {
        "created": HISTORY_CREATED,
        "created_by": "wave-proxy: appended layer",
        "comment": LAYER.digest,
    }
    assert list(result) == list(original)
    assert result["zeta-unknown"] == original["zeta-unknown"]
    assert original["rootfs"]["diff_ids"] == ["sha256:" + "5" * 64], "input left untouched"


def test_config_without_history_gets_no_history():
    result = augment_config(json.loads(config_bytes(history=False)), [LAYER])
    assert "history" not in result


def test_config_without_diff_ids_is_rejected():
    with pytest.raises(ManifestError):
        augment_config({"rootfs": {"type": "layers"}}, [LAYER])


def test_config_changes_replace_entrypoint_cmd_and_workdir():
    changes = ConfigChanges(entrypoint=("/fusion",), cmd=("run",), working_dir="/work")
    result = augment_config(json.loads(config_bytes()), [], changes)["config"]
    assert result["Entrypoint"] == ["/fusion"]
    assert result["Cmd"] == ["run"]
    assert result["WorkingDir"] == "/work"
    assert result["Labels"] == {"x": "y"}


@pytest.mark.parametrize(
    ("entrypoint", "wrapped"),
    [
        (None, ["/usr/bin/fusion"]),
        (["/bin/sh", "-c"], ["/usr/bin/fusion", "/bin/sh", "-c"]),
        ("/app", ["/usr/bin/fusion", "/app"]),
        (["/usr/bin/fusion", "/app"], ["/usr/bin/fusion", "/app"]),
    ],
    ids=["none", "list", "string", "already-wrapped"],
)
def test_entrypoint_prefix_wraps_the_image_entrypoint_and_keeps_cmd(entrypoint, wrapped):
    config = json.loads(config_bytes())
    config["config"]["Entrypoint"] = entrypoint
    changes = ConfigChanges(entrypoint_prefix=("/usr/bin/fusion",))
    result = augment_config(config, [LAYER], changes)["config"]
    assert result["Entrypoint"] == wrapped
    assert result["Cmd"] == ["sh"]


def test_entrypoint_prefix_also_wraps_a_replacement_entrypoint():
    changes = ConfigChanges(entrypoint=("/new",), entrypoint_prefix=("/launch", "--"))
    result = augment_config(json.loads(config_bytes()), [], changes)["config"]
    assert result["Entrypoint"] == ["/launch", "--", "/new"]


def test_env_changes_replace_by_name_in_place_and_append_new_ones():
    assert merge_env(["PATH=/bin", "A=1"], ["A=2", "B=3", "PATH=/usr/bin:/bin"]) == [
        "PATH=/usr/bin:/bin",
        "A=2",
        "B=3",
    ]


def test_config_changes_on_a_config_without_runtime_section_create_it():
    result = augment_config({"rootfs": {"diff_ids": []}}, [], ConfigChanges(env=("A=1",)))
    assert result["config"] == {"Env": ["A=1"]}


def test_invalid_env_entries_are_refused():
    with pytest.raises(ValueError):
        ConfigChanges(env=("NOEQUALS",))


@pytest.mark.parametrize(
    ("media_type", "layer_type"),
    [(mt.DOCKER_MANIFEST, mt.DOCKER_LAYER_GZIP), (mt.OCI_MANIFEST, mt.OCI_LAYER_GZIP)],
)
def test_manifest_gets_layer_of_its_family_new_config_and_base_annotations(media_type, layer_type):
    config = config_bytes()
    manifest = manifest_bytes(media_type, config)
    image = augment_image(manifest, media_type, config, [LAYER], BASE)
    assert image is not None
    result = json.loads(image.manifest.body)
    assert image.manifest.media_type == media_type
    assert result["config"]["digest"] == image.config.digest == sha256_digest(image.config.body)
    assert result["config"]["size"] == len(image.config.body)
    assert result["layers"][-1] == {"mediaType": layer_type, "size": 123, "digest": LAYER.digest}
    assert result["layers"][0]["urls"] == ["https://example.invalid/layer"]
    assert result["annotations"] == {BASE_DIGEST: sha256_digest(manifest), BASE_NAME: BASE}
    assert result["x-extra"] == "kept"


def test_oci_manifest_without_media_type_field_uses_content_type():
    config = config_bytes()
    manifest = manifest_bytes(mt.OCI_MANIFEST, config, declare_type=False)
    image = augment_image(manifest, mt.OCI_MANIFEST, config, [LAYER], BASE)
    assert image is not None
    assert json.loads(image.manifest.body)["layers"][-1]["mediaType"] == mt.OCI_LAYER_GZIP


def test_augmentation_is_byte_for_byte_deterministic():
    config = config_bytes()
    manifest = manifest_bytes(mt.DOCKER_MANIFEST, config)
    first = augment_image(manifest, mt.DOCKER_MANIFEST, config, [LAYER], BASE)
    second = augment_image(manifest, mt.DOCKER_MANIFEST, config, [LAYER], BASE)
    assert first == second
    assert first is not None
    assert first.manifest.body == (
        json.dumps(json.loads(first.manifest.body), separators=(",", ":")).encode()
    )


def test_layers_for_another_architecture_are_not_appended():
    config = config_bytes("amd64")
    manifest = manifest_bytes(mt.OCI_MANIFEST, config)
    assert augment_image(manifest, mt.OCI_MANIFEST, config, [ARM_LAYER], BASE) is None
    arm_config = config_bytes("arm64")
    arm_manifest = manifest_bytes(mt.OCI_MANIFEST, arm_config)
    image = augment_image(arm_manifest, mt.OCI_MANIFEST, arm_config, [LAYER, ARM_LAYER], BASE)
    assert image is not None
    digests = [layer["digest"] for layer in json.loads(image.manifest.body)["layers"]]
    assert digests[-2:] == [LAYER.digest, ARM_LAYER.digest]


def test_artifact_manifests_are_not_augmented():
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.cncf.helm.config.v1+json",
                "size": 2,
                "digest": sha256_digest(b"{}"),
            },
            "layers": [],
        }
    ).encode()
    assert augment_image(manifest, mt.OCI_MANIFEST, b"{}", [LAYER], BASE) is None


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"schemaVersion":2,"mediaType":"' + mt.OCI_MANIFEST.encode() + b'","layers":[]}',
        b'{"schemaVersion":2,"config":{"digest":"sha256:zz","size":1},"layers":[]}',
        b'{"schemaVersion":2,"config":{"digest":"sha256:'
        + b"a" * 64
        + b'","size":-1},"layers":[]}',
        b'{"schemaVersion":2,"mediaType":"' + mt.DOCKER_MANIFEST.encode() + b'","config":{}}',
        b'{"schemaVersion":2,"x":NaN}',
    ],
)
def test_malformed_manifests_are_rejected(body):
    with pytest.raises(ManifestError):
        augment_image(body, mt.OCI_MANIFEST, config_bytes(), [LAYER], BASE)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"schemaVersion": 2, "config": {}, "layers": []}, mt.OCI_MANIFEST),
        ({"schemaVersion": 2, "manifests": []}, mt.OCI_INDEX),
        ({"schemaVersion": 1, "fsLayers": [], "signatures": []}, mt.DOCKER_SCHEMA1_SIGNED),
        ({"schemaVersion": 3}, "application/json"),
    ],
)
def test_generic_content_type_is_refined_from_the_manifest_shape(body, expected):
    assert manifest_media_type(body, "application/json; charset=utf-8") == expected


def test_media_type_field_must_agree_with_content_type():
    config = config_bytes()
    manifest = manifest_bytes(mt.DOCKER_MANIFEST, config)
    with pytest.raises(ManifestError):
        augment_image(manifest, mt.OCI_MANIFEST, config, [LAYER], BASE)


def index_bytes(media_type: str) -> bytes:
    docker = media_type == mt.DOCKER_MANIFEST_LIST
    child = mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [
                {
                    "mediaType": child,
                    "size": 1,
                    "digest": "sha256:" + "a" * 64,
                    "platform": {"architecture": "amd64", "os": "linux"},
                },
                {
                    "mediaType": child,
                    "size": 2,
                    "digest": "sha256:" + "b" * 64,
                    "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
                },
                {
                    "mediaType": child,
                    "size": 3,
                    "digest": "sha256:" + "c" * 64,
                    "platform": {"architecture": "unknown", "os": "unknown"},
                    "annotations": {
                        "vnd.docker.reference.type": "attestation-manifest",
                        "vnd.docker.reference.digest": "sha256:" + "a" * 64,
                    },
                },
            ],
        },
        indent=3,
    ).encode()


@pytest.mark.parametrize("media_type", [mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST])
def test_index_children_exclude_attestations(media_type):
    children = index_children(index_bytes(media_type), media_type)
    assert [c.digest[-1] for c in children] == ["a", "b"]


@pytest.mark.parametrize("media_type", [mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST])
def test_index_rewrite_points_at_augmented_children_and_drops_attestations(media_type):
    original = index_bytes(media_type)
    child = mt.DOCKER_MANIFEST if media_type == mt.DOCKER_MANIFEST_LIST else mt.OCI_MANIFEST
    new_a = Document(child, b'{"schemaVersion":2}')
    result = rewrite_index(original, media_type, {"sha256:" + "a" * 64: new_a}, BASE)
    assert result is not None and result.media_type == media_type
    entries = json.loads(result.body)["manifests"]
    assert [(e["digest"], e["size"]) for e in entries] == [
        (new_a.digest, len(new_a.body)),
        ("sha256:" + "b" * 64, 2),
    ]
    assert entries[0]["platform"] == {"architecture": "amd64", "os": "linux"}
    annotations = json.loads(result.body)["annotations"]
    assert annotations[BASE_DIGEST] == sha256_digest(original)


def test_index_without_augmented_children_is_left_alone():
    assert rewrite_index(index_bytes(mt.OCI_INDEX), mt.OCI_INDEX, {}, BASE) is None
