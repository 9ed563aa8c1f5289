"""Azure credentials with the standard library: Shared Key signatures identical to the
azure-storage-blob SDK's signer, SAS tokens and connection strings as Nextflow and Azurite
give them, and managed-identity tokens from the instance metadata service."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas
from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy

from fusion_client.azure.client import AzureBlobClient
from fusion_client.azure.credentials import AzureAccount, managed_identity, shared_key_signature
from fusion_client.azure.errors import AzureCredentialsError
from tests.support.cloudservers import AZURITE_ACCOUNT, AZURITE_KEY
from tests.support.stub_http import StubServer

KEY = base64.b64encode(b"k" * 64).decode()


def sdk_signature(method: str, url: str, headers: dict[str, str]) -> str:
    request = PipelineRequest(
        HttpRequest(method, url, headers=dict(headers)), PipelineContext(None)
    )
    SharedKeyCredentialPolicy("acct", KEY).on_request(request)
    return request.http_request.headers["Authorization"]


@pytest.mark.parametrize(
    ("method", "path", "query", "headers"),
    [
        ("GET", "/c/dir/a%20b%2Bc.txt", [], {"x-ms-range": "bytes=0-9", "If-Match": '"0x1"'}),
        (
            "GET",
            "/c",
            [
                ("comp", "list"),
                ("delimiter", "%2F"),
                ("prefix", "dir%2F"),
                ("restype", "container"),
            ],
            {},
        ),
        (
            "PUT",
            "/c/blob",
            [("blockid", "MDAwMDAwMDE%3D"), ("comp", "block")],
            {"Content-Length": "5", "x-ms-meta-mode": "41471"},
        ),
        ("PUT", "/c/empty", [], {"Content-Length": "0", "x-ms-blob-type": "BlockBlob"}),
    ],
    ids=["ranged-read", "listing", "put-block", "empty-put"],
)
def test_shared_key_signatures_match_the_sdk_signer(method, path, query, headers):
    headers = {
        "x-ms-date": "Mon, 07 Dec 2026 02:00:00 GMT",
        "x-ms-version": "2021-08-06",
        **headers,
    }
    url = (
        "http://127.0.0.1:10000"
        + path
        + ("?" + "&".join(f"{n}={v}" for n, v in query) if query else "")
    )
    ours = shared_key_signature("acct", base64.b64decode(KEY), method, path, query, headers)
    assert ours == sdk_signature(method, url, headers)


def test_a_connection_string_blob_endpoint_wins_and_keeps_its_account_path():
    account = AzureAccount.from_env(
        {
            "AZURE_STORAGE_CONNECTION_STRING": f"AccountName=a;AccountKey={KEY};"
            "BlobEndpoint=http://127.0.0.1:9/a/;EndpointSuffix=core.chinacloudapi.cn"
        }
    )
    assert account is not None and account.endpoint == "http://127.0.0.1:9/a"


def test_an_account_name_alone_builds_the_public_endpoint_and_uses_a_managed_identity():
    account = AzureAccount.from_env(
        {"AZURE_STORAGE_ACCOUNT": "acct", "FUSION_AZ_MSI_CLIENT_ID": "0000-id"}
    )
    assert account is not None
    assert account.endpoint == "https://acct.blob.core.windows.net"
    assert account.key is None and account.sas is None and account.msi_client_id == "0000-id"


def test_a_sas_token_is_preferred_to_a_key_and_loses_its_leading_question_mark():
    account = AzureAccount.from_env(
        {
            "AZURE_STORAGE_ACCOUNT": "acct",
            "AZURE_STORAGE_KEY": KEY,
            "AZURE_STORAGE_SAS_TOKEN": "?sv=1&sig=x",
        }
    )
    assert account is not None and account.sas == "sv=1&sig=x" and account.key is None


def test_no_account_means_no_azure_store():
    assert AzureAccount.from_env({}) is None


def test_a_sas_token_authorizes_reads_and_writes_on_azurite(azurite):
    container = azurite.new_bucket("sas")
    sas = generate_account_sas(
        AZURITE_ACCOUNT,
        AZURITE_KEY,
        ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(read=True, write=True, list=True, delete=True, create=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    env = {
        "AZURE_STORAGE_ACCOUNT": AZURITE_ACCOUNT,
        "AZURE_STORAGE_SAS_TOKEN": sas,
        "AZURE_STORAGE_CONNECTION_STRING": f"BlobEndpoint={azurite.endpoint}",
    }
    client = AzureBlobClient.from_env(env)
    assert client is not None
    try:
        client.put_object(container, "sas.txt", b"via sas")
        assert azurite.get(container, "sas.txt") == b"via sas"
        assert [o.key for o in client.list_page(container, "").objects] == ["sas.txt"]
    finally:
        client.close()


def test_managed_identity_tokens_name_the_user_assigned_identity():
    answer = {"access_token": "eyJ.msi", "expires_in": "3599", "token_type": "Bearer"}
    with StubServer(lambda seen: (200, answer)) as stub:
        identity = managed_identity(stub.host, "1111-2222")
        assert identity.token() == "eyJ.msi"
    seen = stub.requests[0]
    assert seen.headers["Metadata"] == "true"
    assert (
        "client_id=1111-2222" in seen.path
        and "resource=https%3A%2F%2Fstorage.azure.com%2F" in seen.path
    )


def test_an_unassigned_identity_is_a_credentials_error_with_a_hint():
    with (
        StubServer(lambda seen: (400, {"error": "invalid_request"})) as stub,
        pytest.raises(AzureCredentialsError, match="identity assigned"),
    ):
        managed_identity(stub.host, None).token()
