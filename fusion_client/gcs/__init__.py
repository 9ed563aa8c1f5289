"""Google Cloud Storage behind /fusion/gs (client.py), with stdlib credentials
(credentials.py, rsa.py)."""
