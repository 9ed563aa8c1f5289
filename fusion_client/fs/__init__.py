"""The S3 file system served at /fusion (semantics: docs/SEMANTICS.md)."""
