"""Container tokens: what a `/v2/wt/<token>/...` pull is allowed to see, kept in the shared store.

A token is 128 random bits (32 hex characters; the incumbent uses 48): a capability URL, so it
must not be guessable. Its record names the upstream image, the layers and config changes to
apply and when it expires. Records outlive
their expiry by a grace period so that a late pull is told "expired" rather than "unknown";
DELETE marks a record revoked for the same reason.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from wave_proxy.image.layer import LayerDescriptor, Platform
from wave_proxy.image.mutate import ConfigChanges
from wave_proxy.image.reference import ImageName
from wave_proxy.store.metadata import MetadataStore

TOKEN_BYTES = 16
EXPIRED_GRACE = 24 * 3600.0
TOKEN_PREFIX = "token/"
_TOKEN = re.compile(r"[a-f0-9]{12,64}")


def new_token() -> str:
    return secrets.token_hex(TOKEN_BYTES)


def looks_like_token(text: str) -> bool:
    return bool(_TOKEN.fullmatch(text))


def iso_time(epoch: float) -> str:
    """`2026-08-22T08:15:31.004Z`, the form Wave reports Instants in."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class TokenRecord:
    token: str
    created: float
    expires: float
    container_image: str  # as the client wrote it
    registry: str
    repository: str
    tag: str | None
    source_digest: str  # the upstream manifest or index the request resolved to
    wave_digest: str  # what /v2/wt/<token>/ serves for it
    platforms: tuple[str, ...]
    layers: tuple[LayerDescriptor, ...]
    changes: ConfigChanges
    info: Mapping[str, Any] = field(default_factory=dict)
    revoked: bool = False

    @property
    def name(self) -> ImageName:
        return ImageName(self.registry, self.repository)

    def expired(self, now: float) -> bool:
        return now >= self.expires

    def target_image(self, host: str, pinned: bool) -> str:
        """`<host>/wt/<token>/<repository>:<tag>`, or `@<augmented digest>` when pinned."""
        base = f"{host}/wt/{self.token}/{self.repository}"
        return f"{base}@{self.wave_digest}" if pinned or not self.tag else f"{base}:{self.tag}"

    def to_json(self) -> str:
        data = asdict(self)
        data["layers"] = [
            [x.digest, x.size, x.diff_id, str(x.platform) if x.platform else None]
            for x in self.layers
        ]
        data["changes"] = self.changes.as_json()
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TokenRecord:
        data = json.loads(text)
        data["layers"] = tuple(
            LayerDescriptor(digest, size, diff_id, Platform.parse(p) if p else None)
            for digest, size, diff_id, p in data["layers"]
        )
        changes = data["changes"]
        data["changes"] = ConfigChanges(
            entrypoint=_tuple_or_none(changes["entrypoint"]),
            cmd=_tuple_or_none(changes["cmd"]),
            working_dir=changes["workingDir"],
            env=tuple(changes["env"]),
        )
        data["platforms"] = tuple(data["platforms"])
        return cls(**data)


def _tuple_or_none(value: list[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


class TokenStore:
    def __init__(self, store: MetadataStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self.clock = clock

    async def put(self, record: TokenRecord) -> None:
        keep = record.expires - self.clock() + EXPIRED_GRACE
        await self._store.set_value(TOKEN_PREFIX + record.token, record.to_json(), max(keep, 1.0))

    async def get(self, token: str) -> TokenRecord | None:
        """The record, also when expired or revoked (callers explain which); None if unknown."""
        if not looks_like_token(token):
            return None
        raw = await self._store.get_value(TOKEN_PREFIX + token)
        return TokenRecord.from_json(raw) if raw else None

    async def revoke(self, record: TokenRecord) -> None:
        await self.put(replace(record, revoked=True))
