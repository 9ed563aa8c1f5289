"""HTTP client for one upstream registry (distribution API v2, pull side only).

Requests carry the cached credentials for the registry (a Bearer token for the repository's pull
scope, or Basic); a 401 refreshes the token once. Connection errors, timeouts and 5xx are retried
with exponential backoff before anything reaches our client; 429 is raised at once, with its
Retry-After, because retrying only deepens a rate limit. Redirects are never followed with our
credentials: blob redirects go back to the client, internal fetches follow them anonymously.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import aiohttp
from cachetools import TLRUCache

from wave_proxy.image import mediatypes as mt
from wave_proxy.image.digest import matches, sha256_digest
from wave_proxy.upstream.auth import (
    Challenge,
    Credentials,
    parse_www_authenticate,
    preferred_challenge,
)
from wave_proxy.upstream.credentials import CredentialError, CredentialSource, StaticCredentials
from wave_proxy.upstream.errors import (
    UpstreamBadResponse,
    UpstreamDenied,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamUnavailable,
)

log = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 4 << 20
MAX_CONFIG_BYTES = 16 << 20
REDIRECTS = (301, 302, 303, 307, 308)
MIN_TOKEN_TTL = 10.0
MAX_CONNECT_TIMEOUT = 5.0
NOT_FOUND_CODES = frozenset({"NAME_UNKNOWN", "MANIFEST_UNKNOWN", "BLOB_UNKNOWN"})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    first_delay: float = 0.2
    max_delay: float = 2.0

    def delay(self, attempt: int) -> float:
        return min(self.first_delay * 2**attempt, self.max_delay)


@dataclass(frozen=True)
class FetchedManifest:
    body: bytes
    media_type: str
    digest: str


@dataclass(frozen=True)
class ManifestHead:
    digest: str
    media_type: str
    size: int


@dataclass
class BlobResponse:
    """An upstream blob answer: either a redirect, or a response to stream then release."""

    redirect: str | None = None
    response: aiohttp.ClientResponse | None = None

    def release(self) -> None:
        if self.response is not None:
            self.response.release()


class RegistryClient:
    def __init__(
        self,
        name: str,
        url: str,
        session: aiohttp.ClientSession,
        credentials: Credentials | CredentialSource | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self._session = session
        if isinstance(credentials, Credentials):
            credentials = StaticCredentials(credentials)
        self._credentials: CredentialSource | None = credentials
        self._retry = retry or RetryPolicy()
        self._clock = clock
        # A black-holed upstream must fail fast enough for retries to fit in a client's patience.
        connect = min(timeout, MAX_CONNECT_TIMEOUT)
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect, sock_read=timeout)
        self._challenge: Challenge | None = None
        # scope -> (token, expiry); entries expire with the token.
        self._tokens: TLRUCache[str, tuple[str, float]] = TLRUCache(
            maxsize=4096, ttu=lambda _key, value, _now: value[1], timer=clock
        )

    # -- manifests ---------------------------------------------------------------------------

    async def head_manifest(
        self, repository: str, reference: str, accept: list[str]
    ) -> ManifestHead | None:
        """Digest and type of a manifest without downloading it (HEAD is free of Hub's limit).

        None when the registry omits Docker-Content-Digest: the caller must GET instead.
        """
        response = await self._request(
            "HEAD", repository, f"manifests/{reference}", {"Accept": ", ".join(accept)}
        )
        async with response:
            await self._raise_for_status(response, "manifest", reference)
            digest = response.headers.get("Docker-Content-Digest")
            media_type = mt.strip_parameters(response.headers.get("Content-Type", ""))
            if not digest or not media_type:
                return None
            return ManifestHead(digest, media_type, response.content_length or 0)

    async def manifest_digest(self, repository: str, reference: str, accept: list[str]) -> str:
        """What a tag names now: HEAD first; GET only when HEAD cannot say (no digest header,
        or a 404 whose body would tell NAME_UNKNOWN from MANIFEST_UNKNOWN)."""
        try:
            head = await self.head_manifest(repository, reference, accept)
        except UpstreamNotFound:
            head = None
        if head is not None:
            return head.digest
        return (await self.get_manifest(repository, reference, accept)).digest

    async def get_manifest(
        self, repository: str, reference: str, accept: list[str]
    ) -> FetchedManifest:
        response = await self._request(
            "GET", repository, f"manifests/{reference}", {"Accept": ", ".join(accept)}
        )
        async with response:
            await self._raise_for_status(response, "manifest", reference)
            body = await self._read_limited(response, MAX_MANIFEST_BYTES, "manifest")
        media_type = mt.strip_parameters(response.headers.get("Content-Type", ""))
        digest = response.headers.get("Docker-Content-Digest") or ""
        if media_type == mt.DOCKER_SCHEMA1_SIGNED:
            # Its digest covers the JWS payload without signatures: upstream's word is all we
            # have, and the client verifies the signed payload itself.
            digest = digest or reference
        elif reference.startswith(("sha256:", "sha512:")):
            if not matches(reference, body):
                raise UpstreamBadResponse(self.name, f"manifest body does not match {reference}")
            digest = reference
        elif not digest or not _safe_matches(digest, body):
            digest = sha256_digest(body)
        return FetchedManifest(body, media_type, digest)

    async def list_tags(
        self, repository: str, query: Mapping[str, str]
    ) -> tuple[bytes, str | None]:
        """One page of `/tags/list` (`n`, `last` passed on): the JSON body and the next page's
        query string, if upstream has more."""
        params = "&".join(
            f"{k}={quote(v, safe='')}" for k, v in query.items() if k in ("n", "last")
        )
        path = "tags/list" + (f"?{params}" if params else "")
        response = await self._request("GET", repository, path, {})
        async with response:
            await self._raise_for_status(response, "tag list of", repository)
            body = await self._read_limited(response, MAX_MANIFEST_BYTES, "tag list")
            link = response.headers.get("Link", "")
        next_page = re.search(r"<[^>?]*\?([^>]*)>\s*;\s*rel=\"?next", link)
        return body, next_page.group(1) if next_page else None

    # -- blobs -------------------------------------------------------------------------------

    async def read_blob(self, repository: str, digest: str, limit: int = MAX_CONFIG_BYTES) -> bytes:
        """Download a small blob (an image config) completely and verify its digest."""
        response = await self._request("GET", repository, f"blobs/{digest}", {})
        if response.status in REDIRECTS:
            location = urljoin(str(response.url), response.headers.get("Location", ""))
            response.release()
            scope = f"repository:{repository}:pull"
            same_origin = self._same_origin(location)
            response = await self._send("GET", location, {}, authorize=same_origin, scope=scope)
        async with response:
            await self._raise_for_status(response, "blob", digest)
            body = await self._read_limited(response, limit, "blob")
        if not matches(digest, body):
            raise UpstreamBadResponse(self.name, f"blob content does not match {digest}")
        return body

    async def open_blob(
        self, method: str, repository: str, digest: str, range_header: str | None
    ) -> BlobResponse:
        """Start a blob response to relay: a redirect for the client, or a body to stream."""
        headers = {"Range": range_header} if range_header else {}
        response = await self._request(method, repository, f"blobs/{digest}", headers)
        if response.status in REDIRECTS and "Location" in response.headers:
            location = urljoin(str(response.url), response.headers["Location"])
            response.release()
            return BlobResponse(redirect=location)
        if response.status not in (200, 206, 416):
            try:
                await self._raise_for_status(response, "blob", digest)
            finally:
                response.release()
        return BlobResponse(response=response)

    # -- plumbing ----------------------------------------------------------------------------

    async def _raise_for_status(
        self, response: aiohttp.ClientResponse, what: str, ref: str
    ) -> None:
        status = response.status
        if status in (200, 206):
            return
        if status == 404:
            code = await self._error_code(response) or (
                "BLOB_UNKNOWN" if what == "blob" else "MANIFEST_UNKNOWN"
            )
            raise UpstreamNotFound(self.name, f"{what} {ref} not found ({code})", code)
        if status in (401, 403):
            hint = (
                "the configured credentials were refused"
                if self._credentials
                else "it requires credentials: configure --registry-auth or --docker-config"
            )
            raise UpstreamDenied(self.name, f"access to {what} {ref} denied: {hint}", status)
        raise UpstreamBadResponse(self.name, f"unexpected status {status} for {what} {ref}")

    async def _error_code(self, response: aiohttp.ClientResponse) -> str | None:
        """The OCI code of an upstream error body (NAME_UNKNOWN says more than a bare 404)."""
        if response.method == "HEAD":
            return None
        try:
            body = json.loads(await self._read_limited(response, 64 << 10, "error"))
            code = body["errors"][0]["code"]
        except (ValueError, LookupError, TypeError, UpstreamBadResponse, aiohttp.ClientError):
            return None
        return code if code in NOT_FOUND_CODES else None

    async def _read_limited(self, response: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
        if response.content_length is not None and response.content_length > limit:
            raise UpstreamBadResponse(
                self.name, f"{what} of {response.content_length} bytes exceeds {limit} bytes"
            )
        chunks, total = [], 0
        async for chunk in response.content.iter_chunked(64 << 10):
            total += len(chunk)
            if total > limit:
                raise UpstreamBadResponse(self.name, f"{what} exceeds {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _request(
        self, method: str, repository: str, path: str, headers: Mapping[str, str]
    ) -> aiohttp.ClientResponse:
        """Send with auth; refresh the token once on 401; raise 429 as UpstreamRateLimited."""
        url = f"{self.url}/v2/{repository}/{path}"
        scope = f"repository:{repository}:pull"
        response = await self._send(method, url, headers, authorize=True, scope=scope)
        if response.status == 401:
            challenge = preferred_challenge(
                parse_www_authenticate(response.headers.get("WWW-Authenticate", ""))
            )
            response.release()
            if challenge is None:
                raise UpstreamDenied(self.name, "401 without a usable auth challenge", 401)
            self._challenge = challenge
            self._tokens.pop(scope, None)
            response = await self._send(method, url, headers, authorize=True, scope=scope)
        if response.status == 429:
            retry_after = response.headers.get("Retry-After")
            response.release()
            raise UpstreamRateLimited(self.name, retry_after)
        return response

    async def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        authorize: bool,
        scope: str = "",
    ) -> aiohttp.ClientResponse:
        """One request with retries for connection errors, timeouts and 5xx."""
        last_error = ""
        for attempt in range(self._retry.attempts):
            if attempt:
                await asyncio.sleep(self._retry.delay(attempt - 1))
            request_headers = {"Accept-Encoding": "identity", **headers}
            if authorize and (authorization := await self._authorization(scope)):
                request_headers["Authorization"] = authorization
            try:
                response = await self._session.request(
                    method,
                    url,
                    headers=request_headers,
                    allow_redirects=False,
                    timeout=self._timeout,
                )
            except TimeoutError:
                last_error, timed_out = "timed out", True
                continue
            except aiohttp.ClientError as exc:
                last_error, timed_out = f"unreachable ({exc.__class__.__name__}: {exc})", False
                continue
            if response.status >= 500:
                last_error, timed_out = f"answered {response.status}", False
                response.release()
                continue
            return response
        log.warning("%s %s failed after %d attempts: %s", method, url, attempt + 1, last_error)
        raise UpstreamUnavailable(
            self.name, f"{last_error} at {self.url} (after {attempt + 1} attempts)", timed_out
        )

    async def _authorization(self, scope: str) -> str | None:
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            user = await self._user()
            return user.basic_header() if user else None
        cached = self._tokens.get(scope)
        if cached is None:
            cached = await self._fetch_token(challenge, scope)
            self._tokens[scope] = cached
        return f"Bearer {cached[0]}"

    async def _fetch_token(self, challenge: Challenge, scope: str) -> tuple[str, float]:
        realm = challenge.realm
        if not realm.startswith(("http://", "https://")):
            raise UpstreamDenied(self.name, f"auth challenge has no usable realm {realm!r}", 401)
        params = {"scope": scope}
        if service := challenge.params.get("service"):
            params["service"] = service
        user = await self._user()
        headers = {"Authorization": user.basic_header()} if user else {}
        try:
            async with self._session.get(
                realm, params=params, headers=headers, timeout=self._timeout
            ) as response:
                if response.status in (401, 403):
                    raise UpstreamDenied(
                        self.name, f"token server {realm} refused the credentials", 401
                    )
                if response.status == 429:
                    raise UpstreamRateLimited(self.name, response.headers.get("Retry-After"))
                if response.status != 200:
                    raise UpstreamUnavailable(
                        self.name, f"token server {realm} answered {response.status}"
                    )
                payload: Any = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise UpstreamUnavailable(self.name, f"token server {realm} failed: {exc}") from None
        if not isinstance(payload, dict):
            raise UpstreamBadResponse(self.name, f"token server {realm} answered no JSON object")
        token = payload.get("token") or payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise UpstreamBadResponse(self.name, f"token server {realm} returned no token")
        expires_in = payload.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 60.0
        # Refresh a little before the server's expiry; never cache for less than a few seconds.
        return token, self._clock() + max(lifetime - 10.0, MIN_TOKEN_TTL)

    async def _user(self) -> Credentials | None:
        if self._credentials is None:
            return None
        try:
            return await self._credentials.get()
        except CredentialError as exc:
            raise UpstreamDenied(self.name, f"cannot get credentials: {exc}", 401) from None

    def _same_origin(self, url: str) -> bool:
        ours, theirs = urlsplit(self.url), urlsplit(url)
        return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc)


def _safe_matches(digest: str, body: bytes) -> bool:
    try:
        return matches(digest, body)
    except ValueError:
        return False
