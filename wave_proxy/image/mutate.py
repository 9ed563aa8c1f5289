"""Append layers to an image: rewrite its config, its manifest and the index that lists it.

JSON is edited as plain dicts so every field we do not understand survives with its key order,
and serialised compactly with fixed separators: the same upstream bytes and the same layers give
byte-identical output on any machine, which keeps augmented digests stable across restarts and
replicas.

Choices worth knowing:
- Docker schema2 manifests get the `org.opencontainers.image.base.*` annotations too. Docker's
  spec has no `annotations` field there, but docker, containerd and containers/image decode into
  structs that ignore (or, for containerd, keep) unknown fields, and digests cover exact bytes, so
  clients verify and run them unchanged, and the original stays traceable in every family.
- `base.name` is the repository without tag, so every tag naming the same upstream bytes maps to
  the same augmented digest.
- A history entry is appended per layer only when the config already has a `history` list; adding
  one to a config without history would leave layers unaccounted for (BuildKit complains).
- Index entries marked as attestations (`unknown/unknown` or `vnd.docker.reference.type:
  attestation-manifest`) are dropped from augmented indexes: their `vnd.docker.reference.digest`
  names the original image manifest, which the augmented index no longer lists, so they would
  attest to nothing. The original index (and its attestations) stays pullable by its digest.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from wave_proxy.image import mediatypes as mt
from wave_proxy.image.digest import DigestError, parse_digest, sha256_digest
from wave_proxy.image.layer import LayerDescriptor, Platform

HISTORY_CREATED = "1970-01-01T00:00:00Z"
HISTORY_CREATED_BY = "wave-proxy: appended layer"
HISTORY_CHANGED_BY = "wave-proxy: changed config"
BASE_DIGEST = "org.opencontainers.image.base.digest"
BASE_NAME = "org.opencontainers.image.base.name"
ATTESTATION_TYPE = "vnd.docker.reference.type"


class ManifestError(ValueError):
    """A manifest, index or config that is not valid JSON of the expected shape."""


@dataclass(frozen=True)
class ConfigChanges:
    """Runtime settings to change in an image config (the Wave API's containerConfig).

    entrypoint, cmd and working_dir replace the image's values when given; env entries
    (`NAME=value`) replace a variable of the same name in place or are appended.
    entrypoint_prefix wraps instead of replacing (the Fusion launcher): it goes in front of the
    image's Entrypoint, so `docker run IMAGE [ARGS]` still runs the image's own command through
    it, and a user's `--entrypoint` still bypasses it. Wrapping is idempotent, and applies only
    to images that get a layer: the launcher comes in a layer, so an image of a platform no
    layer is for keeps its own Entrypoint.
    """

    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    working_dir: str | None = None
    env: tuple[str, ...] = field(default_factory=tuple)
    entrypoint_prefix: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for entry in self.env:
            if "=" not in entry or entry.startswith("="):
                raise ValueError(f"invalid environment entry {entry!r}: expected NAME=value")

    def is_empty(self) -> bool:
        return self == ConfigChanges()

    def as_json(self) -> dict[str, Any]:
        """A stable description, for fingerprints of what augmentation produces."""
        return {
            "entrypoint": self.entrypoint,
            "cmd": self.cmd,
            "workingDir": self.working_dir,
            "env": list(self.env),
            "entrypointPrefix": list(self.entrypoint_prefix),
        }


@dataclass(frozen=True)
class Document:
    """Serialised JSON content with its digest and media type."""

    media_type: str
    body: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.body)


@dataclass(frozen=True)
class AugmentedImage:
    manifest: Document
    config: Document


def load_json(body: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ManifestError(f"{what} is nested too deeply") from None
    if not isinstance(value, dict):
        raise ManifestError(f"{what} is not a JSON object")
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in JSON")


def dump_json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def manifest_media_type(manifest: Mapping[str, Any], content_type: str) -> str:
    """The type a manifest declares, else the Content-Type it came with (they must agree), else
    what its shape says: registries that answer `application/json` exist, and OCI makes the
    mediaType field optional."""
    declared = manifest.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestError("manifest mediaType is not a string")
    content_type = mt.strip_parameters(content_type) if content_type else ""
    if declared and content_type in mt.MANIFESTS and declared != content_type:
        raise ManifestError(f"manifest mediaType {declared} differs from Content-Type")
    if declared:
        return declared
    if content_type in mt.MANIFESTS:
        return content_type
    return _sniff_media_type(manifest) or content_type


def _sniff_media_type(manifest: Mapping[str, Any]) -> str:
    if manifest.get("schemaVersion") == 1:
        return mt.DOCKER_SCHEMA1_SIGNED if "signatures" in manifest else mt.DOCKER_SCHEMA1
    if manifest.get("schemaVersion") == 2:
        if isinstance(manifest.get("manifests"), list):
            return mt.OCI_INDEX
        if isinstance(manifest.get("config"), dict):
            return mt.OCI_MANIFEST
    return ""


def config_descriptor(manifest: Mapping[str, Any]) -> tuple[str, str, int]:
    """(media type, digest, size) of an image manifest's config, validated."""
    if manifest.get("schemaVersion") != 2:
        raise ManifestError("manifest schemaVersion is not 2")
    config = manifest.get("config")
    if not isinstance(config, dict):
        raise ManifestError("manifest has no config descriptor")
    _check_descriptor(config, "config")
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise ManifestError("manifest has no layers list")
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise ManifestError(f"manifest layer {i} is not an object")
        _check_descriptor(layer, f"layer {i}")
    return config.get("mediaType", ""), config["digest"], config["size"]


def _check_descriptor(descriptor: Mapping[str, Any], what: str) -> None:
    digest, size = descriptor.get("digest"), descriptor.get("size")
    if not isinstance(digest, str):
        raise ManifestError(f"{what} descriptor has no digest")
    try:
        parse_digest(digest)
    except DigestError as exc:
        raise ManifestError(f"{what} descriptor: {exc}") from None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{what} descriptor has no valid size")


def config_platform(config: Mapping[str, Any]) -> Platform:
    return Platform.of(
        str(config.get("os") or "linux"),
        str(config.get("architecture") or "amd64"),
        str(config.get("variant") or ""),
    )


def augment_config(
    config: Mapping[str, Any],
    layers: Sequence[LayerDescriptor],
    changes: ConfigChanges = ConfigChanges(),
) -> dict[str, Any]:
    """A copy of `config` with the layers' diff_ids and history appended and changes applied."""
    result = copy.deepcopy(dict(config))
    rootfs = result.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise ManifestError("image config has no rootfs.diff_ids list")
    rootfs["diff_ids"].extend(layer.diff_id for layer in layers)
    history = result.get("history")
    if isinstance(history, list):
        history.extend(
            {"created": HISTORY_CREATED, "created_by": HISTORY_CREATED_BY, "comment": layer.digest}
            for layer in layers
        )
    if not changes.is_empty():
        runtime = result.get("config")
        if not isinstance(runtime, dict):
            runtime = result["config"] = {}
        before = copy.deepcopy(runtime)
        apply_config_changes(runtime, changes)
        described = describe_changes(before, runtime)
        if isinstance(history, list) and described:
            # Like a Dockerfile's ENTRYPOINT/ENV line: `docker history` shows what we changed.
            history.append(
                {"created": HISTORY_CREATED, "created_by": described, "empty_layer": True}
            )
    return result


RUNTIME_INSTRUCTIONS = (("Entrypoint", "ENTRYPOINT"), ("Cmd", "CMD"), ("WorkingDir", "WORKDIR"))


def describe_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """The runtime settings that differ, as Dockerfile-like instructions (`` when none)."""
    parts = [
        f"{instruction} {json.dumps(after.get(key))}"
        for key, instruction in RUNTIME_INSTRUCTIONS
        if before.get(key) != after.get(key)
    ]
    added_env = [e for e in after.get("Env") or [] if e not in (before.get("Env") or [])]
    if added_env:
        parts.append("ENV " + " ".join(added_env))
    return f"{HISTORY_CHANGED_BY}: {'; '.join(parts)}" if parts else ""


def apply_config_changes(runtime: dict[str, Any], changes: ConfigChanges) -> None:
    """Apply `changes` in place to the `config` section of an image config."""
    if changes.entrypoint is not None:
        runtime["Entrypoint"] = list(changes.entrypoint)
    if changes.entrypoint_prefix:
        runtime["Entrypoint"] = wrap_entrypoint(
            changes.entrypoint_prefix, runtime.get("Entrypoint")
        )
    if changes.cmd is not None:
        runtime["Cmd"] = list(changes.cmd)
    if changes.working_dir is not None:
        runtime["WorkingDir"] = changes.working_dir
    if changes.env:
        runtime["Env"] = merge_env(runtime.get("Env") or [], changes.env)


def wrap_entrypoint(prefix: Sequence[str], current: Any) -> list[str]:
    """`prefix` + the current Entrypoint (null, a list, or a lone string), unless it already
    starts with prefix[0], the launcher."""
    existing = [current] if isinstance(current, str) else list(current or [])
    if existing[:1] == list(prefix[:1]):  # already starts with the launcher, e.g. a Wave image
        return existing
    return [*prefix, *existing]


def merge_env(current: Sequence[str], updates: Sequence[str]) -> list[str]:
    """Replace variables of the same name where they are, append new ones in order."""
    merged = list(current)
    position = {entry.split("=", 1)[0]: i for i, entry in enumerate(merged)}
    for entry in updates:
        name = entry.split("=", 1)[0]
        if name in position:
            merged[position[name]] = entry
        else:
            position[name] = len(merged)
            merged.append(entry)
    return merged


def augment_image(
    manifest_body: bytes,
    content_type: str,
    config_body: bytes,
    layers: Sequence[LayerDescriptor],
    base_name: str,
    changes: ConfigChanges = ConfigChanges(),
) -> AugmentedImage | None:
    """Append the layers that apply to this image's platform; None when nothing changes.

    Artifacts (a config that is not an image config) are never touched.
    """
    manifest = load_json(manifest_body, "manifest")
    media_type = manifest_media_type(manifest, content_type)
    if media_type not in mt.IMAGE_MANIFESTS:
        raise ManifestError(f"not an image manifest: {media_type or 'no media type'}")
    config_type, _, _ = config_descriptor(manifest)
    if config_type not in mt.IMAGE_CONFIGS:
        return None
    config = load_json(config_body, "image config")
    selected = [layer for layer in layers if layer.applies_to(config_platform(config))]
    if not selected:
        changes = replace(changes, entrypoint_prefix=())  # no launcher to wrap with
    if not selected and changes.is_empty():
        return None
    new_config = Document(config_type, dump_json(augment_config(config, selected, changes)))

    result = copy.deepcopy(manifest)
    result["config"].update(digest=new_config.digest, size=len(new_config.body))
    layer_type = mt.layer_type_for(media_type)
    result["layers"].extend(
        {"mediaType": layer_type, "size": layer.size, "digest": layer.digest} for layer in selected
    )
    _annotate_base(result, sha256_digest(manifest_body), base_name)
    return AugmentedImage(Document(media_type, dump_json(result)), new_config)


def _annotate_base(document: dict[str, Any], base_digest: str, base_name: str) -> None:
    annotations = document.get("annotations")
    if not isinstance(annotations, dict):
        annotations = document["annotations"] = {}
    annotations[BASE_DIGEST] = base_digest
    annotations[BASE_NAME] = base_name


@dataclass(frozen=True)
class IndexEntry:
    digest: str
    media_type: str


def index_children(index_body: bytes, content_type: str) -> list[IndexEntry]:
    """The image manifests of an index that augmentation rewrites (attestations excluded)."""
    index = _load_index(index_body, content_type)
    return [
        IndexEntry(entry["digest"], entry["mediaType"])
        for entry in index["manifests"]
        if entry.get("mediaType") in mt.IMAGE_MANIFESTS and not is_attestation(entry)
    ]


def is_attestation(entry: Mapping[str, Any]) -> bool:
    platform = entry.get("platform") or {}
    annotations = entry.get("annotations") or {}
    return (
        platform.get("os") == "unknown" and platform.get("architecture") == "unknown"
    ) or annotations.get(ATTESTATION_TYPE) == "attestation-manifest"


def rewrite_index(
    index_body: bytes,
    content_type: str,
    replacements: Mapping[str, Document],
    base_name: str,
) -> Document | None:
    """Point index entries at their augmented manifests and drop attestations.

    `replacements` maps an original child digest to its augmented manifest. None when no child
    changed: the upstream index is then served as it is.
    """
    if not replacements:
        return None
    index = _load_index(index_body, content_type)
    result = copy.deepcopy(index)
    entries = []
    for entry in result["manifests"]:
        if is_attestation(entry):
            continue
        replacement = replacements.get(entry["digest"])
        if replacement is not None:
            entry.update(digest=replacement.digest, size=len(replacement.body))
        entries.append(entry)
    result["manifests"] = entries
    _annotate_base(result, sha256_digest(index_body), base_name)
    return Document(manifest_media_type(index, content_type), dump_json(result))


def _load_index(body: bytes, content_type: str) -> dict[str, Any]:
    index = load_json(body, "index")
    media_type = manifest_media_type(index, content_type)
    if media_type not in mt.INDEXES:
        raise ManifestError(f"not an index: {media_type or 'no media type'}")
    if index.get("schemaVersion") != 2 or not isinstance(index.get("manifests"), list):
        raise ManifestError("index has no manifests list")
    for i, entry in enumerate(index["manifests"]):
        if not isinstance(entry, dict):
            raise ManifestError(f"index entry {i} is not an object")
        _check_descriptor(entry, f"index entry {i}")
    return index
