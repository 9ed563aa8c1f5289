"""AWS credentials: environment, web identity (EKS IRSA), shared credentials file, container
endpoint (ECS, EKS Pod Identity), EC2 instance metadata (IMDSv2).

The chain picks the first source that has credentials (in that order, as the AWS SDKs do) and
refreshes temporary credentials before they expire: from REFRESH_AHEAD seconds before expiry
one caller refreshes while others keep using the still-valid ones; only once they are about to
expire (MANDATORY_AHEAD) do callers wait. A failed refresh keeps valid credentials in use.

Endpoints are injectable (the AWS_CONTAINER_CREDENTIALS_FULL_URI, AWS_ENDPOINT_URL_STS and
AWS_EC2_METADATA_SERVICE_ENDPOINT variables, or constructor arguments), so tests point them
at loopback servers.
"""

from __future__ import annotations

import configparser
import http.client
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree

from fusion_client.log import get_logger

from .errors import CredentialsError

log = get_logger("s3")

ECS_ENDPOINT = "http://169.254.170.2"
IMDS_ENDPOINT = "http://169.254.169.254"
REFRESH_AHEAD = 15 * 60.0
MANDATORY_AHEAD = 60.0
ADVISORY_RETRY_INTERVAL = 30.0
FAILURE_MEMORY = 5.0  # a failed load is answered from memory this long


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None
    expires_at: float | None = None  # epoch seconds; None = does not expire

    def __repr__(self) -> str:  # never print secrets in logs or tracebacks
        return f"Credentials(access_key={self.access_key!r}, expires_at={self.expires_at})"


class CredentialSource(Protocol):
    name: str

    def load(self) -> Credentials | None:
        """Credentials, or None when this source does not apply here; raises when it applies
        but failed (so the chain reports a useful cause)."""


class EnvironmentSource:
    name = "environment"

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def load(self) -> Credentials | None:
        key = self._environ.get("AWS_ACCESS_KEY_ID")
        secret = self._environ.get("AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            return None
        return Credentials(key, secret, self._environ.get("AWS_SESSION_TOKEN") or None)


class SharedFileSource:
    """The [profile] of ~/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE), for
    `fusion mount` on a workstation."""

    name = "shared credentials file"

    def __init__(self, environ: Mapping[str, str]) -> None:
        home = environ.get("HOME") or os.path.expanduser("~")
        self.path = environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(
            home, ".aws", "credentials"
        )
        self.profile = environ.get("AWS_PROFILE") or "default"

    def load(self) -> Credentials | None:
        parser = configparser.RawConfigParser()
        try:
            if not parser.read(self.path) or not parser.has_section(self.profile):
                return None
        except configparser.Error as exc:
            raise CredentialsError(f"{self.path}: {exc}") from None
        section = parser[self.profile]
        key, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
        if not key or not secret:
            return None
        return Credentials(key, secret, section.get("aws_session_token") or None)


class WebIdentitySource:
    """STS AssumeRoleWithWebIdentity with a projected token file (EKS IAM roles for service
    accounts: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE)."""

    name = "web identity"

    def __init__(self, environ: Mapping[str, str], *, region: str, timeout: float = 5.0) -> None:
        self.role_arn = environ.get("AWS_ROLE_ARN")
        self.token_file = environ.get("AWS_WEB_IDENTITY_TOKEN_FILE")
        self.session_name = environ.get("AWS_ROLE_SESSION_NAME") or f"fusion-{os.getpid()}"
        self.endpoint = (
            environ.get("AWS_ENDPOINT_URL_STS") or f"https://sts.{region}.amazonaws.com"
        ).rstrip("/")
        self._timeout = timeout

    def load(self) -> Credentials | None:
        if not self.role_arn or not self.token_file:
            return None
        with open(self.token_file) as f:
            token = f.read().strip()
        form = urlencode(
            {
                "Action": "AssumeRoleWithWebIdentity",
                "Version": "2011-06-15",
                "RoleArn": self.role_arn,
                "RoleSessionName": self.session_name,
                "WebIdentityToken": token,
            }
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        status, body = _http("POST", self.endpoint + "/", headers, self._timeout, form.encode())
        if status != 200:
            raise CredentialsError(f"STS AssumeRoleWithWebIdentity: HTTP {status}: {body[:200]!r}")
        try:
            root = ElementTree.fromstring(body)
            fields = {
                elem.tag.rsplit("}", 1)[-1]: elem.text or ""
                for elem in root.iter()
                if isinstance(elem.tag, str)
            }
            expires = datetime.fromisoformat(fields["Expiration"].replace("Z", "+00:00"))
            return Credentials(
                fields["AccessKeyId"],
                fields["SecretAccessKey"],
                fields["SessionToken"],
                expires.timestamp(),
            )
        except (ElementTree.ParseError, KeyError, ValueError) as exc:
            raise CredentialsError(f"STS AssumeRoleWithWebIdentity: bad response ({exc})") from None


class ContainerSource:
    """ECS/EKS-Pod-Identity container credentials endpoint."""

    name = "container endpoint"

    def __init__(
        self,
        environ: Mapping[str, str],
        *,
        relative_base: str = ECS_ENDPOINT,
        timeout: float = 2.0,
    ) -> None:
        relative = environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        full = environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        self.url = relative_base.rstrip("/") + relative if relative else full
        self._token = environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
        self._token_file = environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        self._timeout = timeout

    def load(self) -> Credentials | None:
        if not self.url:
            return None
        headers = {"Accept": "application/json"}
        token = self._token
        if self._token_file:
            with open(self._token_file) as f:
                token = f.read().strip()
        if token:
            headers["Authorization"] = token
        status, body = _http("GET", self.url, headers, self._timeout)
        if status != 200:
            raise CredentialsError(f"container credentials endpoint {self.url}: HTTP {status}")
        return _parse_credentials_json(body, self.url)


class InstanceMetadataSource:
    """EC2 instance profile credentials through IMDSv2 (session token first)."""

    name = "EC2 instance metadata"

    def __init__(self, endpoint: str = IMDS_ENDPOINT, *, timeout: float = 1.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._timeout = timeout

    def load(self) -> Credentials | None:
        try:
            status, token = _http(
                "PUT",
                f"{self.endpoint}/latest/api/token",
                {"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
                self._timeout,
            )
        except OSError:
            return None  # not on EC2 (or metadata blocked): this source does not apply
        if status != 200:
            raise CredentialsError(f"instance metadata token request: HTTP {status}")
        headers = {"X-aws-ec2-metadata-token": token.decode()}
        base = f"{self.endpoint}/latest/meta-data/iam/security-credentials/"
        status, roles = _http("GET", base, headers, self._timeout)
        if status == 404:
            return None  # instance without a role
        if status != 200 or not roles.strip():
            raise CredentialsError(f"instance metadata role list: HTTP {status}")
        role = roles.decode().split()[0]
        status, body = _http("GET", base + role, headers, self._timeout)
        if status != 200:
            raise CredentialsError(f"instance metadata credentials for role {role}: HTTP {status}")
        return _parse_credentials_json(body, f"instance metadata role {role}")


class CredentialChain:
    """Thread-safe, refreshing credentials from the first source that has them."""

    def __init__(
        self, sources: list[CredentialSource], *, clock: Callable[[], float] = time.time
    ) -> None:
        self._sources = sources
        self._clock = clock
        self._lock = threading.Lock()
        self._current: Credentials | None = None
        self._source: CredentialSource | None = None
        self._next_advisory = 0.0  # earliest time of the next refresh in the advisory window
        self._failure: tuple[CredentialsError | None, float] = (None, 0.0)  # last, and when

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] = os.environ, *, region: str = "us-east-1"
    ) -> CredentialChain:
        """The standard chain; `region` picks the regional STS endpoint for web identity."""
        sources: list[CredentialSource] = [
            EnvironmentSource(environ),
            WebIdentitySource(environ, region=region),
            SharedFileSource(environ),
            ContainerSource(environ),
        ]
        if environ.get("AWS_EC2_METADATA_DISABLED", "").lower() != "true":
            sources.append(
                InstanceMetadataSource(
                    environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or IMDS_ENDPOINT
                )
            )
        return cls(sources)

    def get(self) -> Credentials:
        current = self._current
        if current is not None and not self._due(current, REFRESH_AHEAD):
            return current
        if current is not None and not self._due(current, MANDATORY_AHEAD):
            # Advisory window: one thread refreshes, the others carry on with valid credentials;
            # attempts are spaced so short-lived credentials do not hammer the endpoint.
            if self._clock() >= self._next_advisory and self._lock.acquire(blocking=False):
                try:
                    self._next_advisory = self._clock() + ADVISORY_RETRY_INTERVAL
                    self._refresh_locked()
                finally:
                    self._lock.release()
            return self._current or current
        with self._lock:
            if self._current is None or self._due(self._current, MANDATORY_AHEAD):
                failed, when = self._failure
                if failed is not None and self._clock() - when < FAILURE_MEMORY:
                    raise failed  # every request must not probe every source again
                try:
                    self._refresh_locked()
                except CredentialsError as exc:
                    self._failure = (exc, self._clock())
                    raise
                self._failure = (None, 0.0)
            assert self._current is not None
            return self._current

    def invalidate(self) -> None:
        """Forget the current credentials (S3 said they expired); the next get() reloads."""
        with self._lock:
            self._current = None
            self._failure = (None, 0.0)

    def _due(self, creds: Credentials, ahead: float) -> bool:
        return creds.expires_at is not None and self._clock() >= creds.expires_at - ahead

    def _refresh_locked(self) -> None:
        try:
            creds, source = self._load()
        except CredentialsError as exc:
            if self._current is not None and not self._due(self._current, 0.0):
                log.warning("credential refresh failed, using current credentials: %s", exc)
                return
            raise
        self._current, self._source = creds, source

    def _load(self) -> tuple[Credentials, CredentialSource]:
        sources = [self._source] if self._source is not None else self._sources
        problems: list[str] = []
        for source in sources:
            try:
                creds = source.load()
            except (CredentialsError, OSError, ValueError, http.client.HTTPException) as exc:
                problems.append(f"{source.name}: {exc}")
                continue
            if creds is not None:
                return creds, source
        tried = ", ".join(s.name for s in sources)
        detail = f" ({'; '.join(problems)})" if problems else ""
        raise CredentialsError(
            f"no AWS credentials found (tried {tried}){detail}; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, run with a task/instance role, or set "
            "FUSION_AWS_ANONYMOUS=true for public buckets"
        )


def _parse_credentials_json(body: bytes, where: str) -> Credentials:
    try:
        doc = json.loads(body)
        expiration = doc.get("Expiration")
        expires_at = (
            datetime.fromisoformat(expiration.replace("Z", "+00:00")).timestamp()
            if expiration
            else None
        )
        return Credentials(
            doc["AccessKeyId"], doc["SecretAccessKey"], doc.get("Token") or None, expires_at
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CredentialsError(f"{where}: unexpected credentials document ({exc})") from None


def _http(
    method: str, url: str, headers: dict[str, str], timeout: float, body: bytes | None = None
) -> tuple[int, bytes]:
    """One plain request to a credentials endpoint (never through HTTP proxies)."""
    parts = urlsplit(url)
    conn_cls = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    conn = conn_cls(parts.hostname or "", parts.port, timeout=timeout)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(1 << 20)
    finally:
        conn.close()
