"""Which object stores a mount serves, built from the environment: one owner for that choice.

S3 is always there (anonymous or signed). Google Cloud Storage is there too: on Google Batch
Nextflow passes no credentials at all and the VM's metadata server is the credential, found at
the first request. Azure Blob needs an account (AZURE_STORAGE_ACCOUNT or a connection string),
as Nextflow always passes one to Azure Batch tasks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from fusion_client.azure.client import AzureBlobClient
from fusion_client.azure.errors import AzureError
from fusion_client.gcs.client import GcsClient
from fusion_client.log import get_logger
from fusion_client.s3 import S3Client, S3Error

from .interface import ObjectStore

log = get_logger("store")


class StoreNotConfigured(Exception):
    """No store can be used with this environment; the message says what to set."""


def stores_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, ObjectStore]:
    try:
        stores: dict[str, ObjectStore] = {"s3": S3Client.from_env(environ)}
    except (S3Error, ValueError) as exc:
        raise StoreNotConfigured(f"S3 is not configured: {exc}") from None
    stores["gs"] = GcsClient.from_env(environ)
    try:
        azure = AzureBlobClient.from_env(environ)
    except (AzureError, ValueError) as exc:
        raise StoreNotConfigured(f"Azure Blob is not configured: {exc}") from None
    if azure is not None:
        stores["az"] = azure
    else:
        log.debug("no Azure storage account configured: /fusion/az is not mounted")
    return stores
