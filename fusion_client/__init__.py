"""Fusion client: a pure-Python FUSE mount of S3 (see its own issue)."""
