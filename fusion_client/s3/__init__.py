"""Stdlib-only S3 client for the Fusion file system (see client.py for behaviour, config.py for
the environment variables it reads)."""

from .client import S3Client
from .config import S3Config
from .credentials import CredentialChain, Credentials
from .errors import (
    AccessDenied,
    CredentialsError,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    PreconditionFailed,
    S3ConnectionError,
    S3Error,
    SlowDown,
)

__all__ = [
    "AccessDenied",
    "CredentialChain",
    "Credentials",
    "CredentialsError",
    "NoSuchBucket",
    "NoSuchKey",
    "NoSuchUpload",
    "PreconditionFailed",
    "S3Client",
    "S3Config",
    "S3ConnectionError",
    "S3Error",
    "SlowDown",
]
