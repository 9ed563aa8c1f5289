"""MetadataStore on SQLite: the embedded default, one file under the data directory.

sqlite3 blocks, so every statement runs on one dedicated thread that owns the connection; WAL
keeps readers and the writer out of each other's way and survives crashes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from wave_proxy.store.metadata import MetadataStoreError, StoredDocument

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    digest TEXT PRIMARY KEY,
    media_type TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires REAL
);
"""


class SqliteMetadataStore:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path) -> SqliteMetadataStore:
        store = cls(path)
        try:
            await store._run(store._connect)
        except sqlite3.Error as exc:
            store._executor.shutdown(wait=False)
            raise MetadataStoreError(
                f"cannot open the metadata store {path}: {exc} (move the file away to start "
                "afresh: augmented images are rebuilt on the next pull)"
            ) from None
        return store

    def _connect(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        self._conn = conn
        self._purge()

    def _purge(self) -> int:
        now = time.time()
        return self._db().execute("DELETE FROM kv WHERE expires <= ?", (now,)).rowcount

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _statement(self, fn: Any) -> Any:
        """Run a query or write; a failing database (a full disk) is a MetadataStoreError."""
        try:
            return await self._run(fn)
        except sqlite3.Error as exc:
            raise MetadataStoreError(f"metadata store {self._path}: {exc}") from None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("metadata store is closed")
        return self._conn

    async def get_document(self, digest: str) -> StoredDocument | None:
        def query() -> StoredDocument | None:
            row = (
                self._db()
                .execute("SELECT media_type, body FROM documents WHERE digest = ?", (digest,))
                .fetchone()
            )
            return StoredDocument(row[0], bytes(row[1])) if row else None

        return await self._statement(query)

    async def put_document(self, digest: str, document: StoredDocument) -> None:
        def insert() -> None:
            self._db().execute(
                "INSERT OR IGNORE INTO documents (digest, media_type, body) VALUES (?, ?, ?)",
                (digest, document.media_type, document.body),
            )

        await self._statement(insert)

    async def get_value(self, key: str) -> str | None:
        def query() -> str | None:
            row = (
                self._db()
                .execute(
                    "SELECT value FROM kv WHERE key = ? AND (expires IS NULL OR expires > ?)",
                    (key, time.time()),
                )
                .fetchone()
            )
            return row[0] if row else None

        return await self._statement(query)

    async def set_value(self, key: str, value: str, ttl: float | None = None) -> None:
        expires = time.time() + ttl if ttl is not None else None

        def upsert() -> None:
            self._db().execute(
                "INSERT OR REPLACE INTO kv (key, value, expires) VALUES (?, ?, ?)",
                (key, value, expires),
            )

        await self._statement(upsert)

    async def count_values(self, prefix: str) -> int:
        def query() -> int:
            row = (
                self._db()
                .execute(
                    "SELECT COUNT(*) FROM kv WHERE substr(key, 1, ?) = ? "
                    "AND (expires IS NULL OR expires > ?)",
                    (len(prefix), prefix, time.time()),
                )
                .fetchone()
            )
            return int(row[0])

        return await self._run(query)

    async def purge_expired(self) -> int:
        """SQLite keeps expired rows until this sweep (the app runs it periodically)."""
        return await self._run(self._purge)

    async def ping(self) -> None:
        try:
            await self._run(lambda: self._db().execute("SELECT 1").fetchone())
        except (sqlite3.Error, RuntimeError) as exc:
            raise MetadataStoreError(f"metadata store {self._path}: {exc}") from None

    async def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._run(close)
        self._executor.shutdown(wait=True)
