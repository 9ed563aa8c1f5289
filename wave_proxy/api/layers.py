"""Turn containerConfig layers into verified blobs every replica can serve.

- `data:` payloads (base64 of the .tar.gz) are decoded within a size limit and checked by
  computing gzipDigest, gzipSize and tarDigest; they are kept in the shared metadata store (so
  any replica serves them) for as long as a token may use them, and in the local blob store.
- http(s) URLs are fetched once (remote_layers: size limit, no private addresses), checked the
  same way and kept in the local blob store; the shared store records the URL, so another replica
  re-fetches and re-checks it on first use.
- The incumbent's Fusion package URL is replaced by our Fusion layer of every architecture we
  have, each restricted to its platform, so a multi-arch image gets the right one per platform.

Every layer is checked before anything is stored, and data: layers are stored only once the
whole request has succeeded, so a bad request leaves no trace.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from wave_proxy.api.fusion import FusionLayers
from wave_proxy.api.request import LayerRequest, RequestError
from wave_proxy.image.layer import LayerDescriptor, LayerError, Platform
from wave_proxy.image.layercheck import MAX_EXPANDED, check_layer
from wave_proxy.remote_layers import RemoteLayerError, RemoteLayerFetcher
from wave_proxy.store.blobs import BlobStore
from wave_proxy.store.metadata import MetadataStore

MAX_DATA_LOCATION = 14_000_000  # characters, as the incumbent: ~10 MiB of .tar.gz
MAX_REMOTE_LAYER = 4 << 30
_SOURCE_KEY = "layer/"
_DATA_KEY = "layerdata/"


class LayerRejected(RequestError):
    """A layer whose content is missing, too large or not what its digests say."""


@dataclass(frozen=True)
class LayerLimits:
    data_location_chars: int = MAX_DATA_LOCATION
    remote_bytes: int = MAX_REMOTE_LAYER
    expanded_bytes: int = MAX_EXPANDED  # what a layer may decompress to (gzip bombs)
    ingests: int = 2  # layers checked at once: each keeps a CPU busy


def verify(content_digest: LayerDescriptor, request: LayerRequest, where: str) -> None:
    """Compare what we computed with what the client claimed."""
    checks = (
        ("gzipSize", content_digest.size, request.gzip_size),
        ("gzipDigest", content_digest.digest, request.gzip_digest),
        ("tarDigest", content_digest.diff_id, request.tar_digest),
    )
    for field, actual, claimed in checks:
        if actual != claimed:
            raise LayerRejected(
                f"{where}.{field}: the request says {claimed} but the layer content has {actual}"
            )


def decode_data_layer(request: LayerRequest, where: str, max_chars: int) -> bytes:
    payload = request.location.removeprefix("data:")
    if len(payload) > max_chars:
        raise LayerRejected(
            f"{where}.location: data: payload of {len(payload)} characters is over the limit of "
            f"{max_chars}; serve large layers over https instead"
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise LayerRejected(f"{where}.location: data: payload is not valid base64") from None


def inspect_file(path: Path, where: str, max_expanded: int) -> LayerDescriptor:
    """check_layer on a file, its failures said as the request's (blocks: run in a thread)."""
    with path.open("rb") as f:
        return inspect_stream(f, where, max_expanded)


def inspect_stream(source: BinaryIO, where: str, max_expanded: int) -> LayerDescriptor:
    try:
        return check_layer(source, max_expanded)
    except LayerError as exc:
        raise LayerRejected(f"{where}: {exc}") from None


@dataclass(frozen=True)
class PreparedLayers:
    descriptors: tuple[LayerDescriptor, ...]
    data: tuple[tuple[bytes, LayerDescriptor], ...]  # decoded data: layers, not yet stored


class LayerResolver:
    def __init__(
        self,
        store: MetadataStore,
        blobs: BlobStore,
        fusion: FusionLayers,
        fetcher: RemoteLayerFetcher,
        retention: float,
        limits: LayerLimits | None = None,
    ) -> None:
        """`retention`: how long the shared store keeps a data: layer after its last request
        (the token lifetime and its grace period), so Redis does not fill with old bundles."""
        self.store = store
        self.retention = retention
        self.blobs = blobs
        self.fusion = fusion
        self.fetcher = fetcher
        self.limits = limits or LayerLimits()
        self._ingests = asyncio.Semaphore(self.limits.ingests)

    async def resolve(
        self, requests: Sequence[LayerRequest], platforms: Sequence[Platform]
    ) -> PreparedLayers:
        """Descriptors in request order, each layer verified; data: layers are kept only by
        `keep()`, once the caller knows the request succeeds."""
        decoded: dict[int, tuple[bytes, LayerDescriptor]] = {}
        for i, request in enumerate(requests):  # phase 1: pure checks, nothing stored yet
            if request.location.startswith("data:") and request.fusion_arch is None:
                where = f"containerConfig.layers[{i}]"
                body = decode_data_layer(request, where, self.limits.data_location_chars)
                descriptor = await self._inspect_data(body, request, where)
                decoded[i] = (body, descriptor)
        self._check_fusion(requests, platforms)
        fetched = {  # phase 2: remote layers, each checked before it is kept
            i: await self._fetch_remote(request, f"containerConfig.layers[{i}]")
            for i, request in enumerate(requests)
            if i not in decoded and request.fusion_arch is None
        }
        result: list[LayerDescriptor] = []
        fusion_added = False
        for i in range(len(requests)):
            if i in decoded:
                result.append(decoded[i][1])
            elif i in fetched:
                result.append(fetched[i])
            elif not fusion_added:
                result.extend(x.descriptor for x in self.fusion.all_current())
                fusion_added = True
        return PreparedLayers(tuple(result), tuple(decoded.values()))

    async def _inspect_data(
        self, body: bytes, request: LayerRequest, where: str
    ) -> LayerDescriptor:
        async with self._ingests:
            descriptor = await asyncio.to_thread(
                inspect_stream, io.BytesIO(body), where, self.limits.expanded_bytes
            )
        verify(descriptor, request, where)
        return descriptor

    async def keep(self, prepared: PreparedLayers) -> None:
        """Store the data: layers, so this and every other replica can serve them."""
        for body, descriptor in prepared.data:
            await self._keep_data(body, descriptor)

    def _check_fusion(
        self, requests: Sequence[LayerRequest], platforms: Sequence[Platform]
    ) -> None:
        if not any(r.fusion_arch for r in requests):
            return
        missing = [str(p) for p in platforms if self.fusion.for_arch(p.architecture) is None]
        if missing:
            raise LayerRejected(
                f"containerConfig.layers: this proxy has no Fusion layer for {', '.join(missing)}; "
                "the operator builds it with `wavectl layer build` and serves it with "
                "--fusion-layers DIR"
            )

    async def _keep_data(self, body: bytes, descriptor: LayerDescriptor) -> None:
        await asyncio.to_thread(self.blobs.put_stream, descriptor.digest, iter([body]))
        encoded = base64.b64encode(body).decode()
        await self.store.set_value(_DATA_KEY + descriptor.digest, encoded, self.retention)
        await self._record(descriptor, "data:")

    async def _fetch_remote(self, request: LayerRequest, where: str) -> LayerDescriptor:
        ours = self.fusion.by_digest(request.gzip_digest)
        if ours is not None:  # a /fusion/<version>-<arch>.json of ours: already here
            verify(ours.descriptor, request, where)
            return ours.descriptor
        known = await self._known(request.gzip_digest)
        if known is not None and self.blobs.size(known.digest) is not None:
            verify(known, request, where)
            await self._record(known, request.location)  # in use again: keep it longer
            return known  # fetched (and checked) before: the URL is not contacted again
        descriptor = await self._download(request.location, request, where)
        await self._record(descriptor, request.location)
        return descriptor

    async def _download(self, url: str, request: LayerRequest, where: str) -> LayerDescriptor:
        limit = min(request.gzip_size, self.limits.remote_bytes)
        try:
            async with self.fetcher.download(url, limit, self.blobs.root / "tmp") as path:
                async with self._ingests:
                    descriptor = await asyncio.to_thread(
                        inspect_file, path, where, self.limits.expanded_bytes
                    )
                verify(descriptor, request, where)
                await asyncio.to_thread(self.blobs.put_file, descriptor.digest, path)
        except RemoteLayerError as exc:
            raise LayerRejected(f"{where}.location: {exc}") from None
        return descriptor

    async def _record(self, descriptor: LayerDescriptor, source: str) -> None:
        """Where a layer comes from, kept as long as a token may use it (each use extends it)."""
        record = {"size": descriptor.size, "diffId": descriptor.diff_id, "source": source}
        await self.store.set_value(
            _SOURCE_KEY + descriptor.digest, json.dumps(record), self.retention
        )

    async def forget_unused(self, keep: set[str]) -> list[str]:
        """Remove local copies of requested layers whose record expired with the last token
        that used them; `keep` are the layers the proxy appends itself. What was removed."""
        removed = []
        for digest in await asyncio.to_thread(self.blobs.digests):
            if digest in keep or self.fusion.by_digest(digest) is not None:
                continue
            if await self.store.get_value(_SOURCE_KEY + digest) is None:
                await asyncio.to_thread(self.blobs.remove, digest)
                removed.append(digest)
        return removed

    async def _known(self, digest: str) -> LayerDescriptor | None:
        raw = await self.store.get_value(_SOURCE_KEY + digest)
        if raw is None:
            return None
        record = json.loads(raw)
        return LayerDescriptor(digest, record["size"], record["diffId"])

    async def ensure_local(self, digest: str) -> bool:
        """Make an appended layer servable from this replica's blob store; False if unknown."""
        if self.blobs.size(digest) is not None:
            return True
        raw = await self.store.get_value(_SOURCE_KEY + digest)
        if raw is None:
            return False
        record = json.loads(raw)
        if record["source"] == "data:":
            encoded = await self.store.get_value(_DATA_KEY + digest)
            if encoded is None:
                return False
            body = base64.b64decode(encoded)
            await asyncio.to_thread(self.blobs.put_stream, digest, iter([body]))
            return True
        request = LayerRequest(record["source"], digest, record["size"], record["diffId"])
        await self._download(record["source"], request, f"layer {digest}")
        return True
