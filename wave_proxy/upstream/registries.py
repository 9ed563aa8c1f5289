"""The configured upstream registries, by name, sharing one connection pool."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from wave_proxy.upstream.auth import Credentials
from wave_proxy.upstream.client import RegistryClient, RetryPolicy
from wave_proxy.upstream.credentials import CredentialSource


class UnknownRegistry(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"registry {name} is not configured on this proxy (known: {', '.join(known)}); "
            f"add it with --registry {name}=https://{name}"
        )
        self.name = name


class Registries:
    def __init__(
        self,
        urls: Mapping[str, str],
        session: aiohttp.ClientSession,
        credentials: Mapping[str, Credentials | CredentialSource],
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._clients = {
            name: RegistryClient(name, url, session, credentials.get(name), retry, timeout)
            for name, url in urls.items()
        }

    def get(self, name: str) -> RegistryClient:
        try:
            return self._clients[name]
        except KeyError:
            raise UnknownRegistry(name, sorted(self._clients)) from None
