"""The Wave-compatible HTTP API: Nextflow (nf-wave) and wave-cli talk to it unchanged.

request.py parses what clients send, layers.py turns containerConfig layers into verified blobs
(remote_layers.py fetches http(s) ones safely), tokens.py keeps what each token serves,
service.py does the work, handlers.py speaks HTTP and routes.py lists the routes and builds the
state that wave_proxy/app mounts beside the registry API. The client side (`wavectl augment`,
`wavectl token`) is in wave_proxy/cli.

Decisions worth knowing:
- Augmentation happens while the request waits, so answers are always DONE and errors (no such
  image, no such platform, a layer that does not match its digests) reach the requester.
- Unlike the incumbent, layer digests are checked by computing them, `image@sha256:...` requests
  are augmented (the targetImage then names the augmented digest), and the incumbent's Fusion
  package URL is replaced by our own Fusion layer of every architecture (--fusion-layers).
- `containerPlatform` takes one platform or a comma list; every runnable platform of a multi-arch
  base is augmented; the request fails if the base has none of the requested platforms.
- Replicas share tokens, requests and produced manifests/configs in the metadata store (Redis).
  Appended layers: `data:` ones (at most ~10 MiB each) live in the store too, for as long as a
  token may use them; http(s) ones are recorded by URL and digests, and a replica that lacks one
  fetches and verifies it on first use; Fusion layers are built once per fleet when replicas
  share a --blob-store (wave_proxy/fusion_fleet), else by each replica into --fusion-layers.
- `/v2/wt/<token>/...` belongs to tokens, so a Docker Hub namespace named `wt` cannot be
  mirrored by its bare name (as with the incumbent).
- API keys (--api-key) guard the endpoints that create or delete tokens or read registries;
  Nextflow sends its `tower.accessToken` in every request body, so that is accepted as the key.
  A token's own read-only endpoints and the /v2 side are authorised by the token itself.
"""
