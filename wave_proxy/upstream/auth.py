"""Registry credentials and auth challenges: WWW-Authenticate parsing, docker config.json."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Challenge:
    """One WWW-Authenticate challenge: scheme (lowercase) and its parameters."""

    scheme: str
    params: dict[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(,|$)')


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse `Bearer realm="..",service="..",scope=".."` (several challenges allowed).

    Quoted values may contain commas (scopes do) and backslash escapes.
    """
    challenges: list[Challenge] = []
    rest = header.strip()
    while rest:
        scheme_match = re.match(r"([A-Za-z][A-Za-z0-9_-]*)\s*", rest)
        if not scheme_match:
            break
        scheme = scheme_match.group(1).lower()
        rest = rest[scheme_match.end() :]
        params: dict[str, str] = {}
        while rest:
            match = _PARAM.match(rest)
            if not match:
                break
            quoted, bare = match.group(2), match.group(3)
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
            params[match.group(1).lower()] = value
            rest = rest[match.end() :]
        challenges.append(Challenge(scheme, params))
        rest = rest.lstrip(", ")
    return challenges


def preferred_challenge(challenges: list[Challenge]) -> Challenge | None:
    """Bearer over Basic, as containerd does; other schemes are not supported."""
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return None


class DockerConfigError(ValueError):
    """An unreadable or malformed docker config.json."""


@dataclass(frozen=True)
class DockerConfig:
    """What a docker config.json says about registry credentials."""

    auths: dict[str, Credentials] = field(default_factory=dict)  # by registry host
    helpers: dict[str, str] = field(default_factory=dict)  # credHelpers: host -> helper name
    store: str = ""  # credsStore: the helper for every host without its own


def load_docker_config(path: Path) -> DockerConfig:
    """Read `auths`, `credHelpers` and `credsStore` from a docker config.json."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise DockerConfigError(f"cannot read docker config {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise DockerConfigError(f"docker config {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DockerConfigError(f"docker config {path} is not a JSON object")
    auths = data.get("auths") if isinstance(data.get("auths"), dict) else {}
    helpers = data.get("credHelpers") if isinstance(data.get("credHelpers"), dict) else {}
    store = data.get("credsStore")
    return DockerConfig(
        auths={
            registry_host(key): creds
            for key, entry in auths.items()
            if isinstance(entry, dict) and (creds := _entry_credentials(entry))
        },
        helpers={registry_host(k): v for k, v in helpers.items() if isinstance(v, str) and v},
        store=store if isinstance(store, str) else "",
    )


def _entry_credentials(entry: dict[str, object]) -> Credentials | None:
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(password, str) and username:
        return Credentials(username, password)
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise DockerConfigError("docker config has an auth entry that is not base64") from None
        user, sep, secret = decoded.partition(":")
        if sep and user:
            return Credentials(user, secret)
    return None


def registry_host(key: str) -> str:
    """`https://index.docker.io/v1/` -> `docker.io`; `host:5000` stays `host:5000`."""
    host = re.sub(r"^[a-z]+://", "", key.strip()).split("/", 1)[0].lower()
    if host in ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"):
        return "docker.io"
    return host
