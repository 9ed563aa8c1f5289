"""Orchestration: resolve a tag upstream, augment what it names, persist, serve.

Flow for `GET /v2/<name>/manifests/<tag>`: HEAD the tag upstream (a short-lived cache in the
store saves repeats; the last known answer covers an unreachable or rate-limiting upstream), then
look up what this proxy produced for that upstream digest; only on a miss fetch the manifest and
configs, append the layers and persist every produced document before recording the result.
Produced documents are linked to the repository they were made for, so a digest is served only
under names that legitimately lead to it. By-digest requests for anything we did not produce go
upstream and come back unchanged: clients verify digests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from wave_proxy import metrics
from wave_proxy.image import mediatypes as mt
from wave_proxy.image.digest import is_digest, parse_digest
from wave_proxy.image.layer import LayerDescriptor
from wave_proxy.image.mutate import (
    ConfigChanges,
    Document,
    augment_image,
    config_descriptor,
    index_children,
    load_json,
    manifest_media_type,
    rewrite_index,
)
from wave_proxy.image.reference import ImageName, validate_tag
from wave_proxy.store.metadata import MetadataStore, MetadataStoreError, StoredDocument
from wave_proxy.upstream.client import FetchedManifest, RegistryClient
from wave_proxy.upstream.errors import UpstreamRateLimited, UpstreamUnavailable
from wave_proxy.upstream.registries import Registries

log = logging.getLogger(__name__)

TAG_TTL = 30.0
UPSTREAM_BLOB = "upstream-blob"  # link value of blobs the upstream served under a name
INDEX_CONCURRENCY = 4
FORMAT_VERSION = 2  # 2: history records config changes
IMMUTABLE_KEYS = ("link/", "aug/")


class NotAcceptable(Exception):
    """The manifest exists, but not in a media type the client accepts."""

    def __init__(self, media_type: str) -> None:
        super().__init__(f"manifest is {media_type}, which the request's Accept header excludes")
        self.media_type = media_type


@dataclass(frozen=True)
class ServedManifest:
    body: bytes
    media_type: str
    digest: str
    augmented: bool


def fingerprint(layers: Sequence[LayerDescriptor], changes: ConfigChanges) -> str:
    """Identifies what augmentation does, so results of other layer sets are never reused."""
    description = {
        "version": FORMAT_VERSION,
        "layers": [[x.digest, x.diff_id, x.size, str(x.platform or "")] for x in layers],
        "changes": changes.as_json(),
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:32]


def upstream_accept(accepted: list[str]) -> list[str]:
    """What to ask upstream for: the client's manifest types, else every modern type."""
    manifest_types = [t for t in accepted if t in mt.MANIFESTS]
    return manifest_types or list(mt.DEFAULT_ACCEPT)


class Augmenter:
    def __init__(
        self,
        store: MetadataStore,
        registries: Registries,
        layers: Sequence[LayerDescriptor],
        changes: ConfigChanges | None = None,
        tag_ttl: float = TAG_TTL,
    ) -> None:
        self.store = store
        self.registries = registries
        self.layers = tuple(layers)
        self.changes = changes or ConfigChanges()
        self.fingerprint = fingerprint(self.layers, self.changes)
        self.tag_ttl = tag_ttl
        self._inflight: dict[str, asyncio.Future[ServedManifest]] = {}

    @property
    def passthrough(self) -> bool:
        return not self.layers and self.changes.is_empty()

    async def manifest(
        self, name: ImageName, reference: str, accepted: list[str]
    ) -> ServedManifest:
        client = self.registries.get(name.registry)
        accept = upstream_accept(accepted)
        if ":" in reference:  # tags cannot contain ':', digests must
            parse_digest(reference)
            served = await self._by_digest(client, name, reference, accept)
        else:
            validate_tag(reference)
            upstream_digest = await self._resolve_tag(client, name, reference, accept)
            served = await self._augmented(client, name, upstream_digest, accept)
        if not mt.accepts(accepted, served.media_type):
            raise NotAcceptable(served.media_type)
        return served

    async def augment_reference(
        self, name: ImageName, reference: str, accepted: list[str]
    ) -> tuple[str, ServedManifest]:
        """(upstream digest, what we serve for it), augmenting by digest too: the Wave API
        augments `image@sha256:...` requests, where a mirror pull serves the digest unchanged."""
        client = self.registries.get(name.registry)
        accept = upstream_accept(accepted)
        if is_digest(reference):
            upstream_digest = reference
        else:
            validate_tag(reference)
            upstream_digest = await self._resolve_tag(client, name, reference, accept)
        served = await self._augmented(client, name, upstream_digest, accept)
        return upstream_digest, served

    async def _augmented(
        self, client: RegistryClient, name: ImageName, upstream_digest: str, accept: list[str]
    ) -> ServedManifest:
        """One augmentation per upstream manifest at a time, however many clients ask."""
        return await self._single_flight(
            f"{name}@{upstream_digest}",
            lambda: self._produce(client, name, upstream_digest, accept),
        )

    async def is_linked(self, name: ImageName, digest: str) -> bool:
        """Whether `digest` may be served under `name` from our own stores: we produced it for
        that repository, or its upstream served it under that name."""
        return await self.store.get_value(_link_key(name, digest)) is not None

    async def link_blob(self, name: ImageName, digest: str) -> None:
        if not await self.is_linked(name, digest):
            await self._record(self.store.set_value(_link_key(name, digest), UPSTREAM_BLOB))

    # -- tags ----------------------------------------------------------------------------------

    async def _resolve_tag(
        self, client: RegistryClient, name: ImageName, tag: str, accept: list[str]
    ) -> str:
        accept_id = hashlib.sha256(",".join(accept).encode()).hexdigest()[:12]
        fresh_key = f"tag/{name}:{tag}/{accept_id}"
        last_key = f"lasttag/{name}:{tag}/{accept_id}"
        if cached := await self.store.get_value(fresh_key):
            return cached
        try:
            digest = await client.manifest_digest(name.repository, tag, accept)
        except (UpstreamUnavailable, UpstreamRateLimited) as exc:
            if last := await self.store.get_value(last_key):
                log.warning("serving last known %s:%s -> %s: %s", name, tag, last, exc)
                return last
            raise
        parse_digest(digest)
        await self._record(self.store.set_value(fresh_key, digest, self.tag_ttl))
        await self._record(self.store.set_value(last_key, digest))
        return digest

    # -- digests -------------------------------------------------------------------------------

    async def _by_digest(
        self, client: RegistryClient, name: ImageName, digest: str, accept: list[str]
    ) -> ServedManifest:
        base = await self.store.get_value(_link_key(name, digest))
        if base is not None and (document := await self.store.get_document(digest)):
            return ServedManifest(document.body, document.media_type, digest, base != digest)
        fetched = await client.get_manifest(name.repository, digest, accept)
        original = Document(_media_type_of(fetched), fetched.body)
        if original.digest == digest:
            # Content-addressed and verified: kept, it spares upstream (and Docker Hub's pull
            # limit) the next pull by digest, and serves it while upstream is down.
            await self._persist(name, original, base=digest)
        return ServedManifest(original.body, original.media_type, digest, augmented=False)

    async def _produce(
        self, client: RegistryClient, name: ImageName, upstream_digest: str, accept: list[str]
    ) -> ServedManifest:
        result_key = f"aug/{self.fingerprint}/{name}@{upstream_digest}"
        if produced := await self.store.get_value(result_key):
            document = await self.store.get_document(produced)
            if document is not None:
                return ServedManifest(
                    document.body, document.media_type, produced, produced != upstream_digest
                )
        fetched = await client.get_manifest(name.repository, upstream_digest, accept)
        if fetched.media_type in mt.SCHEMA1:
            # Signed schema1 digests cover the payload without its signatures: relay as is.
            return ServedManifest(fetched.body, fetched.media_type, fetched.digest, False)
        result = await self._augment(client, name, fetched) or Document(
            _media_type_of(fetched), fetched.body
        )
        await self._persist(name, result, base=upstream_digest)
        await self._record(self.store.set_value(result_key, result.digest))
        return ServedManifest(
            result.body, result.media_type, result.digest, result.digest != upstream_digest
        )

    async def _augment(
        self, client: RegistryClient, name: ImageName, fetched: FetchedManifest
    ) -> Document | None:
        """The augmented document, None to serve upstream's unchanged (no layers, schema1,
        artifacts, unknown types)."""
        media_type = _media_type_of(fetched)
        if self.passthrough:
            return None
        if media_type in mt.IMAGE_MANIFESTS:
            with metrics.AUGMENTATIONS.labels("image").time():
                return await self._augment_image(client, name, fetched)
        if media_type in mt.INDEXES:
            with metrics.AUGMENTATIONS.labels("index").time():
                return await self._augment_index(client, name, fetched)
        return None

    async def _augment_image(
        self, client: RegistryClient, name: ImageName, fetched: FetchedManifest
    ) -> Document | None:
        manifest = load_json(fetched.body, "upstream manifest")
        config_type, config_digest, _ = config_descriptor(manifest)
        if config_type not in mt.IMAGE_CONFIGS:
            return None  # an artifact, not a runnable image
        config_body = await client.read_blob(name.repository, config_digest)
        image = augment_image(
            fetched.body, fetched.media_type, config_body, self.layers, str(name), self.changes
        )
        if image is None:
            return None
        await self._persist(name, image.config, base=config_digest)
        return image.manifest

    async def _augment_index(
        self, client: RegistryClient, name: ImageName, fetched: FetchedManifest
    ) -> Document | None:
        children = index_children(fetched.body, fetched.media_type)
        # Big indexes (a dozen platforms) must not open a dozen upstream requests at once.
        limit = asyncio.Semaphore(INDEX_CONCURRENCY)

        async def augment_child(digest: str, media_type: str) -> tuple[str, Document | None]:
            async with limit:
                child = await client.get_manifest(name.repository, digest, [media_type])
                augmented = await self._augment_image(client, name, child)
            if augmented is not None:
                await self._persist(name, augmented, base=digest)
            return digest, augmented

        results = await asyncio.gather(*(augment_child(c.digest, c.media_type) for c in children))
        replacements = {digest: doc for digest, doc in results if doc is not None}
        return rewrite_index(fetched.body, fetched.media_type, replacements, str(name))

    async def _persist(self, name: ImageName, document: Document, base: str) -> None:
        """Store a document, then link it to the repository (so it is never linked yet absent;
        on a full disk both fail, and the memo serves them in this process)."""
        stored = StoredDocument(document.media_type, document.body)
        await self._record(self.store.put_document(document.digest, stored))
        await self._record(self.store.set_value(_link_key(name, document.digest), base))

    async def _record(self, write: Awaitable[None]) -> bool:
        """A write that spares work later (the memo in front of the store serves this process
        meanwhile): a store that cannot take it, e.g. on a full disk, must not fail the pull."""
        try:
            await write
        except MetadataStoreError as exc:
            log.warning("pull served without recording it: %s", exc)
            return False
        return True

    async def _single_flight(
        self, key: str, produce: Callable[[], Awaitable[ServedManifest]]
    ) -> ServedManifest:
        """Concurrent requests for the same image share one augmentation."""
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(produce())
            self._inflight[key] = future
            future.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(future)


def _link_key(name: ImageName, digest: str) -> str:
    return f"link/{name}@{digest}"


def _media_type_of(fetched: FetchedManifest) -> str:
    """The manifest's own mediaType wins over a registry's generic Content-Type."""
    try:
        return manifest_media_type(load_json(fetched.body, "manifest"), fetched.media_type)
    except ValueError:
        return fetched.media_type
