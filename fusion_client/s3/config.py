"""S3 client settings and where each request goes (endpoint, addressing style).

Environment (read by S3Config.from_env):
  FUSION_AWS_REGION > AWS_REGION > AWS_DEFAULT_REGION > us-east-1   region used for signing
  AWS_S3_ENDPOINT > AWS_ENDPOINT_URL_S3 > AWS_ENDPOINT_URL          custom endpoint URL
      (a bare host[:port] means https)
  FUSION_S3_PATH_STYLE=true|false   force path-style (/bucket/key) or virtual-host
      (bucket.host/key) addressing. Unset = auto: path-style for custom endpoints and for
      bucket names that are not valid DNS labels (dots, upper case, underscores).
  FUSION_S3_SIGN_PAYLOAD=true|false  sign bodies with their SHA-256. Unset = auto: signed over
      plain http (integrity check by S3), UNSIGNED-PAYLOAD over https (TLS protects the body
      and hashing every uploaded byte would cost CPU). Small XML bodies are always signed.
  FUSION_AWS_SERVER_SIDE_ENCRYPTION=AES256|aws:kms, FUSION_AWS_SSEKMS_KEY_ID=key id or ARN
  FUSION_TAGS=Nextflow tag rules (see tags.py)
  FUSION_AWS_STORAGE_CLASS=STANDARD_IA|INTELLIGENT_TIERING|...   storage class of new objects
  FUSION_AWS_REQUESTER_PAYS=true     read requester-pays buckets (adds x-amz-request-payer)
  FUSION_AWS_ANONYMOUS=true          unsigned requests (public buckets)
  FUSION_S3_MAX_ATTEMPTS (8), FUSION_S3_RETRY_BASE_DELAY (0.1 s), FUSION_S3_RETRY_MAX_DELAY
      (20 s): retries with exponential backoff and full jitter
  FUSION_S3_TIMEOUT (30 s read timeout), FUSION_S3_CONNECT_TIMEOUT (5 s, TLS included),
  FUSION_S3_MAX_CONNECTIONS (64 per host)
  AWS_CA_BUNDLE                      CA file for https endpoints
  HTTPS_PROXY / HTTP_PROXY (or lower case), NO_PROXY   an HTTP proxy for S3 traffic, reached
      with CONNECT tunnels (credential endpoints never use it)
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fusion_client.store.endpoints import Endpoint, Proxy, RetryPolicy

from .sigv4 import encode_path
from .tags import TagRules

_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


@dataclass(frozen=True, slots=True)
class Target:
    """Where one request goes: the connection endpoint, the Host header and the encoded path."""

    endpoint: Endpoint
    host_header: str
    path: str


@dataclass(frozen=True)
class S3Config:
    region: str = "us-east-1"
    endpoint_url: str | None = None
    path_style: bool | None = None
    sign_payload: bool | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    tags: TagRules = field(default_factory=TagRules)
    storage_class: str | None = None
    requester_pays: bool = False
    anonymous: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 30.0
    connect_timeout: float = 5.0
    max_connections: int = 64
    ca_bundle: str | None = None
    https_proxy: Proxy | None = None
    http_proxy: Proxy | None = None
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> S3Config:
        def first(*names: str) -> str | None:
            for name in names:
                if environ.get(name):
                    return environ[name]
            return None

        sse = environ.get("FUSION_AWS_SERVER_SIDE_ENCRYPTION") or None
        if sse is not None and sse not in ("AES256", "aws:kms"):
            raise ValueError(
                f"FUSION_AWS_SERVER_SIDE_ENCRYPTION={sse!r}: expected AES256 or aws:kms"
            )
        kms_key = environ.get("FUSION_AWS_SSEKMS_KEY_ID") or None
        if kms_key and sse is None:
            sse = "aws:kms"
        return cls(
            region=first("FUSION_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1",
            endpoint_url=first("AWS_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
            path_style=_optional_bool(environ, "FUSION_S3_PATH_STYLE"),
            sign_payload=_optional_bool(environ, "FUSION_S3_SIGN_PAYLOAD"),
            sse=sse,
            sse_kms_key_id=kms_key,
            tags=TagRules.parse(environ.get("FUSION_TAGS", "")),
            storage_class=environ.get("FUSION_AWS_STORAGE_CLASS") or None,
            requester_pays=_optional_bool(environ, "FUSION_AWS_REQUESTER_PAYS") or False,
            anonymous=_optional_bool(environ, "FUSION_AWS_ANONYMOUS") or False,
            retry=RetryPolicy.from_env(environ),
            timeout=float(environ.get("FUSION_S3_TIMEOUT", 30.0)),
            connect_timeout=float(environ.get("FUSION_S3_CONNECT_TIMEOUT", 5.0)),
            max_connections=int(environ.get("FUSION_S3_MAX_CONNECTIONS", 64)),
            ca_bundle=environ.get("AWS_CA_BUNDLE") or None,
            https_proxy=_proxy(first("HTTPS_PROXY", "https_proxy")),
            http_proxy=_proxy(first("HTTP_PROXY", "http_proxy")),
            no_proxy=tuple(
                entry.strip().lower()
                for entry in (first("NO_PROXY", "no_proxy") or "").split(",")
                if entry.strip()
            ),
        )

    def proxy_for(self, endpoint: Endpoint) -> Proxy | None:
        proxy = self.https_proxy if endpoint.scheme == "https" else self.http_proxy
        if proxy is None:
            return None
        host = endpoint.host.lower()
        if _is_loopback(host):  # a proxy elsewhere could never reach our loopback
            return None
        for entry in self.no_proxy:
            name = entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry
            if name == "*" or host == name.lstrip(".") or host.endswith("." + name.lstrip(".")):
                return None
        return proxy

    def custom_endpoint(self) -> Endpoint | None:
        if not self.endpoint_url:
            return None
        url = self.endpoint_url
        if "://" not in url:
            url = "https://" + url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"S3 endpoint {self.endpoint_url!r} is not an http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return Endpoint(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    def aws_endpoint(self, region: str) -> Endpoint:
        suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        return Endpoint("https", f"s3.{region}.{suffix}", 443)

    def target(self, bucket: str, key: str | None, region: str) -> Target:
        """Endpoint, Host header and encoded path of a request on `bucket`/`key`."""
        custom = self.custom_endpoint()
        endpoint = custom or self.aws_endpoint(region)
        path_style = self.path_style
        if path_style is None:
            path_style = custom is not None or not _DNS_BUCKET.match(bucket) or "--" in bucket
        key_path = "/" + encode_path(key) if key is not None else "/"
        if path_style or not bucket:
            bucket_path = f"/{encode_path(bucket)}" if bucket else ""
            path = endpoint.base_path + bucket_path + (key_path if key is not None else "")
            return Target(endpoint, endpoint.host_header, path or "/")
        host = f"{bucket}.{endpoint.host}"
        vhost = Endpoint(endpoint.scheme, host, endpoint.port, endpoint.base_path)
        return Target(vhost, vhost.host_header, endpoint.base_path + key_path)

    def payload_signed(self, endpoint: Endpoint) -> bool:
        if self.sign_payload is not None:
            return self.sign_payload
        return endpoint.scheme == "http"


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _proxy(url: str | None) -> Proxy | None:
    return Proxy.parse(url) if url else None


def _optional_bool(environ: Mapping[str, str], name: str) -> bool | None:
    value = environ.get(name, "").strip().lower()
    if not value or value == "auto":
        return None
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={environ[name]!r}: expected true or false")
