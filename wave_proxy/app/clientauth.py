"""Client authentication for pulls (`--htpasswd`): bcrypt users and the registry token flow.

Docker clients speak the distribution token flow: `/v2/...` answers 401 with
`WWW-Authenticate: Bearer realm="<proxy>/v2/token",service=...,scope="repository:<name>:pull"`,
the client asks `GET /v2/token` with its Basic credentials and retries with the short-lived
token it gets. Clients that send Basic credentials on every request (containerd's `hosts.toml`
header) are admitted too; a verified password is remembered for a few minutes, since bcrypt is
deliberately slow. Tokens are HMAC-signed with a key drawn at start, so they are only valid on
this process, and carry the repositories they grant and `pull`, nothing else.

`/v2/wt/<token>/...` stays a capability URL (the Wave token in the path is the authorisation).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import bcrypt
from aiohttp import web
from cachetools import TTLCache

from wave_proxy.app.access import ADMITTED_BY_ADDRESS
from wave_proxy.config import ConfigError
from wave_proxy.failures import RegistryError

TOKEN_SECONDS = 300
REMEMBER_SECONDS = 300.0
MAX_SCOPES = 32
_BCRYPT = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")
_SCOPE = re.compile(r"repository:(?P<name>[a-z0-9._/-]{1,255}):(?P<actions>[a-z,*]+)")
# The repository as the registry routes read it (greedy, like server/handlers.py), so a scope
# for `a` never covers `a/manifests/b/manifests/1`.
_REPOSITORY_PATH = re.compile(r"^/v2/(?P<name>.+)/(?:(?:manifests|blobs)/[^/]+|tags/list)$")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Htpasswd:
    """Users and bcrypt hashes, as `htpasswd -B` writes them."""

    def __init__(self, users: dict[str, bytes]) -> None:
        self._users = users
        # Checked for unknown users at the file's highest cost, so a wrong name takes as long
        # as a wrong password and the timing does not tell which names exist.
        cost = max((int(hashed[4:6]) for hashed in users.values()), default=4)
        self.unknown_user_hash = bcrypt.hashpw(b"x", bcrypt.gensalt(min(max(cost, 4), 31)))

    @classmethod
    def load(cls, path: Path) -> Htpasswd:
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read htpasswd file {path}: {exc}") from None
        users: dict[str, bytes] = {}
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.startswith("#"):
                continue
            user, sep, hashed = line.strip().partition(":")
            if not sep or not user or not _BCRYPT.fullmatch(hashed):
                raise ConfigError(
                    f"htpasswd file {path}, line {number}: not a USER:bcrypt-hash entry; only "
                    "bcrypt is accepted (write entries with `htpasswd -B`)"
                )
            users[user] = hashed.encode()
        if not users:
            raise ConfigError(f"htpasswd file {path} has no users")
        return cls(users)

    def verify(self, user: str, password: str) -> bool:
        """bcrypt's check (blocks ~0.1 s: run it in a thread)."""
        hashed = self._users.get(user)
        try:
            ok = bcrypt.checkpw(password.encode(), hashed or self.unknown_user_hash)
        except ValueError:
            return False
        return ok and hashed is not None


@dataclass(frozen=True)
class Grant:
    user: str
    repositories: tuple[str, ...]  # what may be pulled; () for `docker login`'s /v2/ check


class TokenSigner:
    """Compact HMAC-SHA256 tokens: base64url(JSON claims) "." base64url(signature)."""

    def __init__(self, key: bytes | None = None, clock: Callable[[], float] = time.time) -> None:
        self._key = key or secrets.token_bytes(32)
        self._clock = clock

    def issue(self, grant: Grant, service: str) -> str:
        claims = {
            "sub": grant.user,
            "aud": service,
            "repos": list(grant.repositories),
            "act": "pull",
            "exp": int(self._clock()) + TOKEN_SECONDS,
            "jti": secrets.token_hex(16),
        }
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{body}.{_b64(self._sign(body))}"

    def check(self, token: str) -> Grant | None:
        """The grant of a token this process signed and that has not expired; else None."""
        body, sep, signature = token.partition(".")
        if not sep or len(token) > 8192:
            return None
        try:
            given = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
            if not hmac.compare_digest(given, self._sign(body)):
                return None
            claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (binascii.Error, ValueError):
            return None
        if claims.get("act") != "pull" or claims.get("exp", 0) <= self._clock():
            return None
        return Grant(str(claims.get("sub")), tuple(str(r) for r in claims.get("repos", [])))

    def _sign(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def requested_repositories(scopes: Sequence[str]) -> tuple[str, ...]:
    """Repository names of `repository:<name>:pull` scopes (other actions are not granted)."""
    names: list[str] = []
    for scope in scopes[:MAX_SCOPES]:
        for item in scope.split(" "):
            match = _SCOPE.fullmatch(item)
            if match and {"pull", "*"} & set(match["actions"].split(",")):
                names.append(match["name"])
    return tuple(dict.fromkeys(names))


class ClientAuth:
    def __init__(self, users: Htpasswd, signer: TokenSigner | None = None) -> None:
        self.users = users
        self.signer = signer or TokenSigner()
        self._remembered: TTLCache[bytes, str] = TTLCache(maxsize=4096, ttl=REMEMBER_SECONDS)

    async def basic_user(self, header: str) -> str | None:
        """The user of a valid `Basic` Authorization header, else None."""
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or len(encoded) > 4096:
            return None
        try:
            user, sep, password = (
                base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            return None
        if not sep:
            return None
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        if self._remembered.get(key) == user:
            return user
        if not await asyncio.to_thread(self.users.verify, user, password):
            return None
        self._remembered[key] = user
        return user

    async def admits(self, request: web.Request, repository: str | None) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "bearer":
            grant = self.signer.check(credential.strip())
            return grant is not None and (repository is None or repository in grant.repositories)
        return await self.basic_user(header) is not None


CLIENT_AUTH = web.AppKey("client_auth", ClientAuth)


def _realm(request: web.Request) -> str:
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
    return f"{scheme}://{request.host}/v2/token"


def unauthorized(request: web.Request, repository: str | None, message: str) -> web.Response:
    challenge = f'Bearer realm="{_realm(request)}",service="{request.host}"'
    if repository:
        challenge += f',scope="repository:{repository}:pull"'
    return RegistryError(
        401, "UNAUTHORIZED", message, headers={"WWW-Authenticate": challenge}
    ).response()


def client_auth_middleware(
    auth: ClientAuth,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Every `/v2` request but the token endpoint and Wave token URLs needs a user."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if not path.startswith("/v2") or path == "/v2/token" or path.startswith("/v2/wt/"):
            return await handler(request)
        if request.get(ADMITTED_BY_ADDRESS):  # --allow-cidr: admitted without a login
            return await handler(request)
        match = _REPOSITORY_PATH.match(path)
        repository = match["name"] if match else None
        if not await auth.admits(request, repository):
            what = f"pulling {repository}" if repository else "this registry"
            return unauthorized(
                request, repository, f"authentication required for {what}: `docker login`"
            )
        return await handler(request)

    return authenticate


async def token_endpoint(request: web.Request) -> web.Response:
    """`GET /v2/token`: Basic credentials in, a short-lived pull token for the scopes out."""
    auth = request.app[CLIENT_AUTH]
    user = await auth.basic_user(request.headers.get("Authorization", ""))
    if user is None:
        return unauthorized(request, None, "wrong or missing user name and password")
    repositories = requested_repositories(request.query.getall("scope", []))
    service = request.query.get("service", request.host)
    token = auth.signer.issue(Grant(user, repositories), service)
    return web.json_response(
        {
            "token": token,
            "access_token": token,
            "expires_in": TOKEN_SECONDS,
            "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
