"""The embedded store: SQLite documents and values, and the verified blob directory."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3

import pytest

from wave_proxy.store.blobs import BlobStore, BlobWriteError
from wave_proxy.store.memo import MemoizedStore
from wave_proxy.store.metadata import StoredDocument
from wave_proxy.store.sqlite import SqliteMetadataStore

DIGEST = "sha256:" + "a" * 64


async def test_documents_and_values_survive_reopening(tmp_path):
    store = await SqliteMetadataStore.open(tmp_path / "m.sqlite3")
    await store.put_document(DIGEST, StoredDocument("application/json", b"{}"))
    await store.set_value("link/x", "1")
    await store.close()
    store = await SqliteMetadataStore.open(tmp_path / "m.sqlite3")
    assert await store.get_document(DIGEST) == StoredDocument("application/json", b"{}")
    assert await store.get_value("link/x") == "1"
    assert await store.get_document("sha256:" + "b" * 64) is None
    await store.close()


async def test_values_with_ttl_expire(tmp_path):
    store = await SqliteMetadataStore.open(tmp_path / "m.sqlite3")
    await store.set_value("tag/a", "x", ttl=0.05)
    assert await store.get_value("tag/a") == "x"
    await asyncio.sleep(0.1)
    assert await store.get_value("tag/a") is None
    await store.close()


async def test_expired_values_are_purged_when_the_store_opens(tmp_path):
    store = await SqliteMetadataStore.open(tmp_path / "m.sqlite3")
    await store.set_value("tag/old", "x", ttl=0.01)
    await store.set_value("link/kept", "y")
    await store.close()
    await asyncio.sleep(0.02)
    store = await SqliteMetadataStore.open(tmp_path / "m.sqlite3")
    await store.close()
    with sqlite3.connect(tmp_path / "m.sqlite3") as conn:
        assert conn.execute("SELECT key FROM kv").fetchall() == [("link/kept",)]


async def test_memoized_store_keeps_immutable_values_and_documents(tmp_path):
    inner = await SqliteMetadataStore.open(tmp_path / "m.sqlite3")
    await inner.set_value("link/a", "1")
    store = MemoizedStore(inner, immutable_prefixes=("link/",))
    assert await store.get_value("link/a") == "1"
    await store.put_document(DIGEST, StoredDocument("t", b"x"))
    await inner.close()  # further reads must come from memory
    assert await store.get_value("link/a") == "1"
    assert await store.get_document(DIGEST) == StoredDocument("t", b"x")


def test_blob_is_published_only_when_its_digest_matches(tmp_path):
    blobs = BlobStore(tmp_path / "blobs")
    data = b"layer bytes"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with pytest.raises(BlobWriteError):
        blobs.put_stream(DIGEST, iter([data]))
    assert blobs.size(DIGEST) is None
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == [], "no temp file left behind"
    blobs.put_stream(digest, iter([b"layer ", b"bytes"]))
    assert blobs.size(digest) == len(data)
    assert blobs.path(digest).read_bytes() == data
