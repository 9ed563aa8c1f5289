"""The Wave API's logic, apart from HTTP: issue tokens for augmented images, look them up.

An augmentation is done when the request is answered (status DONE at once): the upstream image
is resolved and augmented while the client waits, so a wrong name, a missing platform or an
unreachable registry is reported to the request, not to a later pull.

Platforms: `containerPlatform` may name one platform or a comma list. Every runnable platform of
a multi-arch base is augmented (each with the Fusion layer of its own architecture); the request
fails when the base has none of the requested platforms.

A token's image gets exactly the layers and changes of its request: the layers `wavectl serve
--layer` appends in mirror mode do not apply under /v2/wt/.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache

from wave_proxy.api.layers import LayerResolver
from wave_proxy.api.request import ContainerRequest, RequestError, parse_container_request
from wave_proxy.api.tokens import TokenRecord, TokenStore, iso_time, new_token
from wave_proxy.augment import Augmenter, ServedManifest
from wave_proxy.image import mediatypes as mt
from wave_proxy.image.layer import Platform
from wave_proxy.image.mutate import config_descriptor, config_platform, load_json
from wave_proxy.image.reference import ImageName
from wave_proxy.store.metadata import MetadataStore
from wave_proxy.upstream.errors import UpstreamNotFound
from wave_proxy.upstream.registries import Registries


class ImageNotFound(LookupError):
    """The requested image (or tag) is not in its registry."""


class TokenProblem(LookupError):
    """A token that is unknown, expired or revoked; `code` is the OCI error code to use."""

    def __init__(self, message: str, code: str = "NAME_UNKNOWN") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ApiOptions:
    token_ttl: float
    advertise_host: str = ""


class WaveService:
    def __init__(
        self,
        store: MetadataStore,
        registries: Registries,
        resolver: LayerResolver,
        tokens: TokenStore,
        options: ApiOptions,
    ) -> None:
        self.store = store
        self.registries = registries
        self.resolver = resolver
        self.tokens = tokens
        self.options = options
        # One augmenter per live token, so concurrent pulls share one augmentation.
        self._augmenters: LRUCache[str, Augmenter] = LRUCache(maxsize=4096)

    async def submit(self, body: Any) -> TokenRecord:
        request = parse_container_request(body)
        self.registries.get(request.image.name.registry)  # unknown registry: fail before work
        prepared = await self.resolver.resolve(request.layers, request.platforms)
        layers = prepared.descriptors
        augmenter = Augmenter(self.store, self.registries, layers, request.changes)
        try:
            source, served = await augmenter.augment_reference(
                request.image.name, request.image.reference, []
            )
        except UpstreamNotFound:
            raise ImageNotFound(
                f"containerImage: {request.image} does not exist in "
                f"{request.image.name.registry} (or this proxy may not pull it)"
            ) from None
        if (layers or not request.changes.is_empty()) and not served.augmented:
            raise RequestError(
                f"containerImage: {request.image.name} is a {served.media_type} manifest, not a "
                "runnable image this proxy can add layers or config to"
            )
        await self._check_platforms(request, served)
        await self.resolver.keep(prepared)  # before the token exists: pulls need the blobs
        now = self.tokens.clock()
        record = TokenRecord(
            token=new_token(),
            created=now,
            expires=now + self.options.token_ttl,
            container_image=body["containerImage"],
            registry=request.image.name.registry,
            repository=request.image.name.repository,
            tag=request.image.tag,
            source_digest=source,
            wave_digest=served.digest,
            platforms=tuple(str(p) for p in request.platforms),
            layers=layers,
            changes=request.changes,
            info=dict(request.info),
        )
        await self.tokens.put(record)
        self._augmenters[record.token] = augmenter
        return record

    async def _check_platforms(self, request: ContainerRequest, served: ServedManifest) -> None:
        available = await self._platforms_of(request.image.name, served)
        if available is None:
            return
        if not any(want.accepts(have) for want in request.platforms for have in available):
            wanted = ", ".join(str(p) for p in request.platforms)
            has = ", ".join(str(p) for p in available) or "no runnable platform"
            raise RequestError(
                f"containerPlatform: {request.image.name} has no {wanted} image (it has {has})"
            )

    async def _platforms_of(self, name: ImageName, served: ServedManifest) -> list[Platform] | None:
        """The platforms an image runs on; None for what is not an image (nothing to run)."""
        document = load_json(served.body, "manifest")
        if served.media_type in mt.INDEXES:
            return [
                Platform.of(str(p.get("os", "")), str(p.get("architecture", "")))
                for entry in document.get("manifests", [])
                if isinstance(p := entry.get("platform"), dict) and p.get("os") != "unknown"
            ]
        if served.media_type in mt.IMAGE_MANIFESTS:
            config_type, digest, _ = config_descriptor(document)
            if config_type not in mt.IMAGE_CONFIGS:
                return None  # an artifact
            config = await self.store.get_document(digest)  # what augmenting produced
            if config is not None:
                body = config.body
            else:  # served unchanged: upstream's own config says
                client = self.registries.get(name.registry)
                body = await client.read_blob(name.repository, digest)
            return [config_platform(load_json(body, "image config"))]
        return None

    async def lookup(self, token: str) -> TokenRecord:
        """A usable token's record; TokenProblem says why one is not usable."""
        record = await self.tokens.get(token)
        if record is None:
            raise TokenProblem(f"unknown container token {token[:64]!r}: request a new one")
        if record.revoked:
            raise TokenProblem(f"container token {token} was deleted: request a new one", "DENIED")
        if record.expired(self.tokens.clock()):
            raise TokenProblem(
                f"container token {token} expired at {iso_time(record.expires)}: request a new one "
                "(POST /v1alpha2/container)",
                "DENIED",
            )
        return record

    def augmenter_for(self, record: TokenRecord) -> Augmenter:
        augmenter = self._augmenters.get(record.token)
        if augmenter is None:
            augmenter = Augmenter(self.store, self.registries, record.layers, record.changes)
            self._augmenters[record.token] = augmenter
        return augmenter

    async def revoke(self, token: str) -> TokenRecord:
        record = await self.lookup(token)
        await self.tokens.revoke(record)
        self._augmenters.pop(token, None)
        return record

    def host(self, request_host: str) -> str:
        return self.options.advertise_host or request_host


def describe(record: TokenRecord, host: str) -> Mapping[str, Any]:
    """GET /container-token/{token}: Wave's DescribeWaveContainerResponse, as far as it applies."""
    source = f"{record.registry}/{record.repository}"
    return {
        "token": record.token,
        "expiration": iso_time(record.expires),
        "request": {
            "containerImage": record.container_image,
            "containerConfig": _config_json(record),
            "platform": ",".join(record.platforms),
            "timestamp": iso_time(record.created),
            **{k: v for k, v in record.info.items() if k in ("towerEndpoint", "fingerprint")},
        },
        "source": {"image": source, "digest": record.source_digest},
        "wave": {"image": record.target_image(host, pinned=True), "digest": record.wave_digest},
    }


def _config_json(record: TokenRecord) -> dict[str, Any]:
    changes = record.changes
    config: dict[str, Any] = {
        "entrypoint": list(changes.entrypoint) if changes.entrypoint is not None else None,
        "cmd": list(changes.cmd) if changes.cmd is not None else None,
        "env": list(changes.env),
        "workingDir": changes.working_dir,
        "layers": [
            {
                "gzipDigest": x.digest,
                "gzipSize": x.size,
                "tarDigest": x.diff_id,
                **({"platform": str(x.platform)} if x.platform else {}),
            }
            for x in record.layers
        ],
    }
    return {k: v for k, v in config.items() if v is not None}
