"""Where upstream credentials come from: fixed ones, or Docker credential helpers.

A helper (`docker-credential-<name>`, e.g. `ecr-login`) is asked for the registry's server
address and answers `{"Username","Secret"}`; its answers rotate (ECR tokens last 12 hours), so
they are cached briefly and asked again after that.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from wave_proxy.upstream.auth import Credentials, DockerConfig

HELPER_TTL = 300.0
HELPER_TIMEOUT = 30.0
DOCKER_HUB_SERVER = "https://index.docker.io/v1/"  # the address docker gives helpers for Hub


class CredentialError(RuntimeError):
    """A credential helper that is missing, fails or answers nonsense."""


class CredentialSource(Protocol):
    async def get(self) -> Credentials | None: ...


@dataclass(frozen=True)
class StaticCredentials:
    credentials: Credentials

    async def get(self) -> Credentials | None:
        return self.credentials


class CredentialHelper:
    def __init__(
        self,
        helper: str,
        server: str,
        ttl: float = HELPER_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.program = f"docker-credential-{helper}"
        self.server = server
        self._ttl = ttl
        self._clock = clock
        self._cached: tuple[Credentials | None, float] | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Credentials | None:
        async with self._lock:
            if self._cached is None or self._clock() >= self._cached[1]:
                self._cached = (await self._ask(), self._clock() + self._ttl)
            return self._cached[0]

    async def _ask(self) -> Credentials | None:
        try:
            process = await asyncio.create_subprocess_exec(
                self.program,
                "get",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError:
            raise CredentialError(f"{self.program} is not installed (not found on PATH)") from None
        try:
            out, err = await asyncio.wait_for(
                process.communicate(self.server.encode()), HELPER_TIMEOUT
            )
        except TimeoutError:
            process.kill()
            raise CredentialError(f"{self.program} did not answer within 30 s") from None
        if process.returncode != 0:
            message = (out or err).decode(errors="replace").strip()
            if "credentials not found" in message.lower():
                return None
            raise CredentialError(f"{self.program} failed for {self.server}: {message[:200]}")
        try:
            answer = json.loads(out)
            return Credentials(str(answer["Username"]), str(answer["Secret"]))
        except (ValueError, KeyError, TypeError):
            raise CredentialError(f"{self.program} gave no Username/Secret") from None


def docker_config_source(config: DockerConfig, hosts: list[str]) -> CredentialSource | None:
    """Docker's order for a registry known by `hosts`: its credHelper, its `auths` entry, then
    the credsStore."""
    server = DOCKER_HUB_SERVER if "docker.io" in hosts else hosts[0]
    for host in hosts:
        if host in config.helpers:
            return CredentialHelper(config.helpers[host], server if host == "docker.io" else host)
    for host in hosts:
        if host in config.auths:
            return StaticCredentials(config.auths[host])
    if config.store:
        return CredentialHelper(config.store, server)
    return None
