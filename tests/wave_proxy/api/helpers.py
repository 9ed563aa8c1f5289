"""Helpers shared by the Wave API tests: layers as requests describe them, and a registry
client's view of a targetImage through the in-process proxy."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from typing import Any

from aiohttp.test_utils import TestClient

from tests.support import need_binary


def tar_names(gzip_bytes: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(gzip_bytes), mode="r:gz") as tar:
        return tar.getnames()


async def submit(client: TestClient, body: dict, path: str = "/v1alpha2/container", **kw: Any):
    response = await client.post(path, json=body, **kw)
    return response.status, await response.json()


DOCKER_ACCEPT = (
    "application/vnd.docker.distribution.manifest.v2+json,"
    "application/vnd.docker.distribution.manifest.list.v2+json,"
    "application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json"
)


async def pull_manifest(client: TestClient, target: str) -> tuple[dict, str]:
    """GET the manifest a targetImage names, through /v2/wt/...; (manifest, digest)."""
    path, reference = split_target(target)
    response = await client.get(
        f"/v2/{path}/manifests/{reference}", headers={"Accept": DOCKER_ACCEPT}
    )
    assert response.status == 200, await response.text()
    body = await response.read()
    assert response.headers["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(body).hexdigest()
    return json.loads(body), response.headers["Docker-Content-Digest"]


async def blob(client: TestClient, target: str, digest: str) -> bytes:
    path, _ = split_target(target)
    response = await client.get(f"/v2/{path}/blobs/{digest}")
    assert response.status == 200, await response.text()
    body = await response.read()
    assert "sha256:" + hashlib.sha256(body).hexdigest() == digest
    return body


def split_target(target: str) -> tuple[str, str]:
    _, _, path = target.partition("/")  # drop the host
    if "@" in path:
        return tuple(path.split("@"))  # type: ignore[return-value]
    name, _, tag = path.rpartition(":")
    return name, tag


def skopeo(*args: str) -> str:
    """Run skopeo (which verifies every digest it copies); its stdout, failing on errors."""
    result = subprocess.run(
        [need_binary("skopeo"), *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
