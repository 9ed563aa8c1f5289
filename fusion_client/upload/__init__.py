"""Eager multipart uploads of written files (see uploader.py for the exact semantics)."""

from .uploader import ObjectUpload, Uploader, UploadError, UploadFailure, UploadStats, part_span

__all__ = ["ObjectUpload", "UploadError", "UploadFailure", "UploadStats", "Uploader", "part_span"]
