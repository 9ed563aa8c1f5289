"""Azure Blob behind /fusion/az (client.py), with Shared Key, SAS and managed-identity
credentials (credentials.py)."""
