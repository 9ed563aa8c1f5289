"""The Fusion layers built once per fleet, so every replica appends byte-identical layers and
serves the same augmented digests, whatever day it started and whatever Debian offered then.

The first replica to start a version (its inputs' fingerprint) takes a lease, builds the layers,
puts the tarballs into the shared blob store and then records their descriptors in the metadata
store. Every other replica waits for that record and downloads those exact tarballs (verified)
into its Fusion layer directory, where the ordinary start finds them current and builds nothing.
Without the lease service or the blob store, a replica builds for itself (as one machine does)
and says so in its log.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from wave_proxy.layerbuild import ARCHES, LayerInputs, layer_name
from wave_proxy.layerbuild.builder import inputs_fingerprint
from wave_proxy.store.fleet import Fleet
from wave_proxy.store.leases import LEASE_SECONDS, LeaseUnavailable, holding
from wave_proxy.store.metadata import MetadataStore, MetadataStoreError
from wave_proxy.store.shared import BlobStoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
WAIT_POLL = 1.0
RECORD = "fusion-layers/"  # + inputs fingerprint -> {layer name: {digest, descriptor}}


async def provide_once_per_fleet(
    fleet: Fleet, store: MetadataStore, directory: Path, provide: Callable[[], T]
) -> T:
    """Run `provide` (which builds into `directory` whatever is missing or stale) with the
    fleet's layers in `directory` first, or as the fleet's one builder."""
    inputs = LayerInputs.from_repo()
    if not (inputs.lock_path.is_file() and inputs.shim_source.is_file()):
        return await asyncio.to_thread(provide)  # prebuilt tarballs: nothing to build
    fingerprint = await asyncio.to_thread(inputs_fingerprint, inputs)
    lease = f"fusion-build:{fingerprint}"
    try:
        while True:
            if (record := await store.get_value(RECORD + fingerprint)) is not None:
                await _adopt(fleet, directory, json.loads(record))
                return await asyncio.to_thread(provide)
            token = await fleet.leases.acquire(lease, LEASE_SECONDS)
            if token is not None:
                async with holding(fleet.leases, lease, token):
                    provided = await asyncio.to_thread(provide)
                    await _publish(fleet, store, directory, fingerprint)
                return provided
            log.info("another replica builds the Fusion layers; waiting for them")
            await asyncio.sleep(WAIT_POLL)
    except (LeaseUnavailable, MetadataStoreError, BlobStoreUnavailable) as exc:
        log.warning("building the Fusion layers on this replica alone: %s", exc)
        return await asyncio.to_thread(provide)


async def _publish(fleet: Fleet, store: MetadataStore, directory: Path, fingerprint: str) -> None:
    record = {}
    for arch in ARCHES.values():
        name = layer_name(arch)
        descriptor = (directory / f"{name}.json").read_text()
        (entry,) = json.loads(descriptor)["layers"]
        if not await fleet.publish(entry["gzipDigest"], directory / f"{name}.tar.gz"):
            raise BlobStoreUnavailable(f"cannot publish {name}: {fleet.problem}")
        record[name] = {"digest": entry["gzipDigest"], "descriptor": descriptor}
    await store.set_value(RECORD + fingerprint, json.dumps(record, sort_keys=True))
    log.info("published the Fusion layers for the fleet (inputs %s)", fingerprint[:12])


async def _adopt(fleet: Fleet, directory: Path, record: dict[str, dict[str, str]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, layer in record.items():
        descriptor = directory / f"{name}.json"
        if descriptor.is_file() and descriptor.read_text() == layer["descriptor"]:
            continue
        await fleet.download(layer["digest"], directory / f"{name}.tar.gz")
        descriptor.write_text(layer["descriptor"])
    log.info("using the fleet's Fusion layers: %s", ", ".join(sorted(record)))
