"""The client for upstream registries: auth, retries, size limits and streaming blobs."""
