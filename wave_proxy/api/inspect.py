"""POST /v1alpha1/inspect: the manifest and config of an image, upstream or augmented.

A name of the form `<host>/wt/<token>/<repository>[:tag|@digest]` (a targetImage of ours) is
inspected as the token serves it, so a client can compare the original and the augmented image.
An index is returned as `{"index": ...}` unless `?platform=` picks one of its images.
"""

from __future__ import annotations

import re
from typing import Any

from wave_proxy.api.request import RequestError, parse_image_reference, parse_platforms
from wave_proxy.api.service import WaveService
from wave_proxy.augment import ServedManifest
from wave_proxy.image import mediatypes as mt
from wave_proxy.image.layer import Platform
from wave_proxy.image.mutate import config_descriptor, is_attestation, load_json
from wave_proxy.image.reference import ImageName

_TARGET = re.compile(r"^[^/]+/wt/(?P<token>[a-f0-9]{12,64})/(?P<rest>.+)$")


async def inspect_image(service: WaveService, image: str, platform: str | None) -> dict[str, Any]:
    wanted = parse_platforms(platform)[0] if platform else None
    target = _TARGET.match(image.strip())
    if target:
        record = await service.lookup(target["token"])
        reference = parse_image_reference(target["rest"])
        if reference.name.repository != record.repository:
            raise RequestError(f"containerImage: token {record.token} is for {record.repository}")
        name, ref = record.name, reference.reference
        augmenter = service.augmenter_for(record)

        async def fetch(reference: str) -> ServedManifest:
            return await augmenter.manifest(name, reference, [])
    else:
        parsed = parse_image_reference(image)
        name, ref = parsed.name, parsed.reference
        client = service.registries.get(name.registry)

        async def fetch(reference: str) -> ServedManifest:
            got = await client.get_manifest(name.repository, reference, list(mt.DEFAULT_ACCEPT))
            media_type = load_json(got.body, "manifest").get("mediaType") or got.media_type
            return ServedManifest(got.body, media_type, got.digest, augmented=False)

    served = await fetch(ref)
    if served.media_type in mt.INDEXES:
        index = load_json(served.body, "index")
        if wanted is None:
            return {"index": {**index, "digest": served.digest}}
        served = await fetch(_pick(index, wanted, name))
    manifest = load_json(served.body, "manifest")
    _, config_digest, _ = config_descriptor(manifest)
    return {
        "container": {
            "registry": name.registry,
            "imageName": name.repository,
            "reference": ref,
            "digest": served.digest,
            "config": load_json(await _config(service, name, config_digest), "image config"),
            "manifest": manifest,
        }
    }


def _pick(index: dict[str, Any], wanted: Platform, name: ImageName) -> str:
    for entry in index.get("manifests", []):
        platform = entry.get("platform") or {}
        if is_attestation(entry) or not platform:
            continue
        have = Platform.of(
            str(platform.get("os", "")),
            str(platform.get("architecture", "")),
            str(platform.get("variant", "")),
        )
        if wanted.accepts(have):
            return str(entry["digest"])
    raise RequestError(f"platform: {name} has no {wanted} image")


async def _config(service: WaveService, name: ImageName, digest: str) -> bytes:
    """A config we produced comes from the store; the original from upstream."""
    document = await service.store.get_document(digest)
    if document is not None:
        return document.body
    return await service.registries.get(name.registry).read_blob(name.repository, digest)
