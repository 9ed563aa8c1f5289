"""Azure Blob account and credentials as Nextflow passes them to Fusion tasks:

- AZURE_STORAGE_CONNECTION_STRING: AccountName, AccountKey or SharedAccessSignature, and
  BlobEndpoint (how Azurite and sovereign clouds are reached), or UseDevelopmentStorage=true.
- AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_SAS_TOKEN (preferred, as Nextflow generates one) or
  AZURE_STORAGE_KEY (Shared Key signing).
- AZURE_STORAGE_ACCOUNT alone: a managed identity through the instance metadata service
  (FUSION_AZ_MSI_CLIENT_ID selects a user-assigned identity), refreshed before it expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from fusion_client.store.http import fetch_json
from fusion_client.store.tokens import TokenSource

from .errors import AzureCredentialsError

AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
IMDS_HOST = "169.254.169.254"
STORAGE_RESOURCE = "https://storage.azure.com/"
_STANDARD_HEADERS = (
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-MD5",
    "Content-Type",
    "Date",
    "If-Modified-Since",
    "If-Match",
    "If-None-Match",
    "If-Unmodified-Since",
    "Range",
)


@dataclass(frozen=True)
class AzureAccount:
    name: str
    endpoint: str  # e.g. https://acct.blob.core.windows.net or http://127.0.0.1:10000/acct
    key: bytes | None = None  # Shared Key
    sas: str | None = None  # query string, without a leading "?"
    msi_client_id: str | None = None  # user-assigned identity; None: the system identity
    imds_host: str = IMDS_HOST

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AzureAccount | None:
        """The account to use, or None when no Azure account is configured."""
        fields = _connection_string(environ.get("AZURE_STORAGE_CONNECTION_STRING", ""))
        name = fields.get("AccountName") or environ.get("AZURE_STORAGE_ACCOUNT", "").strip()
        if not name:
            return None
        suffix = fields.get("EndpointSuffix", "core.windows.net")
        protocol = fields.get("DefaultEndpointsProtocol", "https")
        endpoint = fields.get("BlobEndpoint") or f"{protocol}://{name}.blob.{suffix}"
        key = fields.get("AccountKey") or environ.get("AZURE_STORAGE_KEY", "").strip()
        sas = fields.get("SharedAccessSignature") or environ.get("AZURE_STORAGE_SAS_TOKEN", "")
        sas = sas.strip().lstrip("?")
        try:
            secret = base64.b64decode(key, validate=True) if key and not sas else None
        except ValueError:
            raise AzureCredentialsError("the Azure storage account key is not base64") from None
        host = urllib.parse.urlsplit(environ.get("AZURE_POD_IDENTITY_AUTHORITY_HOST", "")).netloc
        return cls(
            name=name,
            endpoint=endpoint.rstrip("/"),
            key=secret,
            sas=sas or None,
            msi_client_id=environ.get("FUSION_AZ_MSI_CLIENT_ID", "").strip() or None,
            imds_host=host or IMDS_HOST,
        )


def _connection_string(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields[name.strip()] = value.strip()
    if fields.get("UseDevelopmentStorage", "").lower() == "true":
        fields = {
            "DefaultEndpointsProtocol": "http",
            "AccountName": AZURITE_ACCOUNT,
            "AccountKey": AZURITE_KEY,
            "BlobEndpoint": f"http://127.0.0.1:10000/{AZURITE_ACCOUNT}",
        }
    return fields


def shared_key_signature(
    account: str,
    key: bytes,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
) -> str:
    """The Authorization header value of a Shared Key request. `path` is the encoded path as
    sent (with Azurite's /<account> prefix), `query` the decoded parameters."""
    lower = {name.lower(): value for name, value in headers.items()}
    slots = []
    for name in _STANDARD_HEADERS:
        value = lower.get(name.lower(), "")
        if name == "Content-Length" and value == "0":
            value = ""
        slots.append(value)
    canonical_headers = "".join(
        f"{name}:{lower[name].strip()}\n" for name in sorted(lower) if name.startswith("x-ms-")
    )
    resource = f"/{account}{path}"
    params: dict[str, list[str]] = {}
    for name, value in query:
        params.setdefault(name.lower(), []).append(unquote(value))
    for name in sorted(params):
        resource += f"\n{name}:{','.join(sorted(params[name]))}"
    string_to_sign = f"{method}\n" + "\n".join(slots) + "\n" + canonical_headers + resource
    digest = hmac.new(key, string_to_sign.encode(), hashlib.sha256).digest()
    return f"SharedKey {account}:{base64.b64encode(digest).decode()}"


def managed_identity(host: str, client_id: str | None) -> TokenSource:
    """Bearer tokens for https://storage.azure.com/ from the instance metadata service."""
    return TokenSource(
        lambda: _managed_identity_token(host, client_id),
        f"the Azure instance metadata service ({host})",
    )


def _managed_identity_token(host: str, client_id: str | None) -> tuple[str, float]:
    query = {"api-version": "2018-02-01", "resource": STORAGE_RESOURCE}
    if client_id:
        query["client_id"] = client_id
    url = f"http://{host}/metadata/identity/oauth2/token?" + urllib.parse.urlencode(query)
    try:
        status, answer = fetch_json("GET", url, headers={"Metadata": "true"})
    except (OSError, http.client.HTTPException) as exc:
        raise AzureCredentialsError(
            f"no managed-identity token from the Azure instance metadata service: {exc}"
        ) from None
    if status != 200:
        hint = " (is the identity assigned to this VM?)" if status == 400 else ""
        raise AzureCredentialsError(
            f"the Azure instance metadata service refused a token: HTTP {status}{hint}"
        )
    try:
        return answer["access_token"], float(answer.get("expires_in", 3600))  # type: ignore[index,union-attr]
    except (TypeError, KeyError, ValueError) as exc:
        raise AzureCredentialsError(f"unusable managed-identity token: {exc}") from None
