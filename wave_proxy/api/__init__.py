"""The Wave-compatible HTTP API: Nextflow (nf-wave) and wave-cli talk to it unchanged.

request.py parses what clients send, layers.py turns containerConfig layers into verified blobs
(remote_layers.py fetches http(s) ones safely), tokens.py keeps what each token serves,
service.py does the work, handlers.py speaks HTTP and routes.py mounts it all on the proxy app.
"""
