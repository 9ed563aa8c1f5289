"""The fleet's pieces on their in-process twins: leases, the blob store's health, verified
downloads, and the Fusion layers built once per fleet."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wave_proxy.fusion_fleet import provide_once_per_fleet
from wave_proxy.layerbuild import ARCHES, layer_name
from wave_proxy.store.fleet import Fleet
from wave_proxy.store.leases import LocalLeases
from wave_proxy.store.shared import BlobStoreUnavailable, MemoryBlobStore
from wave_proxy.store.sqlite import SqliteMetadataStore


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def test_a_lease_is_held_by_one_caller_until_released():
    leases = LocalLeases()
    token = await leases.acquire("fill:x", 10)
    assert token is not None
    assert await leases.acquire("fill:x", 10) is None
    await leases.release("fill:x", "someone-else")
    assert await leases.held("fill:x")
    await leases.release("fill:x", token)
    assert await leases.acquire("fill:x", 10) is not None


async def test_an_expired_lease_is_taken_over_and_its_old_holder_cannot_renew_it():
    leases = LocalLeases()
    old = await leases.acquire("fill:x", 0.05)
    assert old is not None
    await asyncio.sleep(0.1)
    new = await leases.acquire("fill:x", 10)
    assert new is not None
    assert not await leases.renew("fill:x", old, 10)
    assert await leases.renew("fill:x", new, 10)


async def test_a_failing_store_degrades_the_fleet_until_a_probe_sees_it_back(tmp_path: Path):
    store = MemoryBlobStore()
    fleet = Fleet(store, LocalLeases(), redirect=False)
    blob = tmp_path / "blob"
    blob.write_bytes(b"layer bytes")
    store.down = True
    assert not await fleet.publish(digest_of(b"layer bytes"), blob)
    assert not fleet.healthy and "down" in (fleet.problem or "")
    store.down = False
    assert await fleet.size(digest_of(b"layer bytes")) is None  # not asked while degraded
    await fleet.probe()
    assert fleet.healthy
    assert await fleet.publish(digest_of(b"layer bytes"), blob)
    assert store.objects == {digest_of(b"layer bytes"): b"layer bytes"}


async def test_a_download_that_does_not_match_its_digest_leaves_no_file(tmp_path: Path):
    store = MemoryBlobStore()
    claimed = digest_of(b"the real content")
    store.objects[claimed] = b"something else"
    fleet = Fleet(store, LocalLeases(), redirect=False)
    with pytest.raises(BlobStoreUnavailable, match="corrupt"):
        await fleet.download(claimed, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


class Replica:
    """A replica's Fusion layer directory and a builder whose output differs per build, as
    Debian's moving package set makes it on different days."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.builds = 0

    def provide(self) -> dict[str, bytes]:
        self.directory.mkdir(parents=True, exist_ok=True)
        for arch in ARCHES.values():
            name = layer_name(arch)
            tarball = self.directory / f"{name}.tar.gz"
            if not tarball.exists():
                if self.builds == 0:
                    time.sleep(0.3)  # a build takes a while
                data = os.urandom(256)
                tarball.write_bytes(data)
                entry = {"gzipDigest": digest_of(data), "gzipSize": len(data), "tarDigest": ""}
                (self.directory / f"{name}.json").write_text(json.dumps({"layers": [entry]}))
                self.builds += 1
        return {p.name: p.read_bytes() for p in sorted(self.directory.glob("*.tar.gz"))}


@pytest.fixture
async def metadata(tmp_path: Path) -> AsyncIterator[SqliteMetadataStore]:
    store = await SqliteMetadataStore.open(tmp_path / "metadata.sqlite3")
    yield store
    await store.close()


async def test_replicas_starting_together_serve_the_fusion_layers_one_of_them_built(
    tmp_path: Path, metadata: SqliteMetadataStore
):
    fleet = Fleet(MemoryBlobStore(), LocalLeases(), redirect=False)
    first, second = Replica(tmp_path / "a"), Replica(tmp_path / "b")
    provided = await asyncio.gather(
        provide_once_per_fleet(fleet, metadata, first.directory, first.provide),
        provide_once_per_fleet(fleet, metadata, second.directory, second.provide),
    )
    assert provided[0] == provided[1]
    assert sorted([first.builds, second.builds]) == [0, len(ARCHES)]


async def test_a_replica_started_later_adopts_the_published_layers_over_its_own(
    tmp_path: Path, metadata: SqliteMetadataStore
):
    fleet = Fleet(MemoryBlobStore(), LocalLeases(), redirect=False)
    first, later = Replica(tmp_path / "a"), Replica(tmp_path / "b")
    built = await provide_once_per_fleet(fleet, metadata, first.directory, first.provide)
    later.provide()  # its own, different build from another day
    assert later.provide() != built
    assert await provide_once_per_fleet(fleet, metadata, later.directory, later.provide) == built
