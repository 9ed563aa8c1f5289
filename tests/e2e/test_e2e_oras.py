"""The `oras` Python client through the proxy: image manifests come augmented, OCI artifacts
(whose config is not an image config) come through untouched."""

from __future__ import annotations

from pathlib import Path

import oras.client
import requests

from tests.support.images import Layer, Shapes, sha256
from tests.support.proxy import Proxy
from tests.support.registry import Registry

ARTIFACT = "artifacts/notes:1"
NOTES = b"release notes, not a container image\n"


def push_artifact(upstream: Registry, workdir: Path) -> str:
    """Push a one-file artifact with oras straight to the upstream; return its manifest digest."""
    notes = workdir / "notes.txt"
    notes.write_bytes(NOTES)
    client = oras.client.OrasClient(hostname=upstream.host, insecure=True)
    response = client.push(
        target=f"{upstream.host}/{ARTIFACT}", files=[str(notes)], disable_path_validation=True
    )
    return response.headers["Docker-Content-Digest"]


def test_oras_fetches_an_augmented_image_manifest(
    proxy: Proxy, shapes: Shapes, marker_layer: tuple[Path, Layer]
) -> None:
    client = oras.client.OrasClient(hostname=proxy.host, insecure=True)
    manifest = client.get_manifest(f"{proxy.host}/{shapes.oci.reference}")
    assert manifest["layers"][-1]["digest"] == marker_layer[1].digest


def test_oras_pulls_an_artifact_through_the_proxy_unchanged(
    proxy: Proxy, upstream: Registry, tmp_path: Path
) -> None:
    digest = push_artifact(upstream, tmp_path)
    client = oras.client.OrasClient(hostname=proxy.host, insecure=True)
    manifest = client.get_manifest(f"{proxy.host}/{ARTIFACT}")
    assert len(manifest["layers"]) == 1
    repository, tag = ARTIFACT.split(":")
    served = requests.get(
        f"{proxy.url}/v2/{repository}/manifests/{tag}",
        headers={"Accept": manifest["mediaType"]},
        timeout=30,
    )
    assert sha256(served.content) == digest
    files = client.pull(target=f"{proxy.host}/{ARTIFACT}", outdir=str(tmp_path / "out"))
    assert [Path(f).read_bytes() for f in files] == [NOTES]
