"""The request Nextflow's nf-wave plugin sends with `fusion.enabled = true`, field for field.

Groovy's JsonOutput writes every field of SubmitContainerTokenRequest, null ones included; the
Fusion part is the v2.5 container config (entrypoint, env, the package layer with skipHashing),
after nf-wave prepends the project's bin/ bundle as a data: layer.
"""

from __future__ import annotations

from typing import Any

FUSION_URL = "https://fusionfs.seqera.io/releases/pkg/2/5/0/fusion-amd64.tar.gz"
FUSION_LAYER = {
    "location": FUSION_URL,
    "gzipDigest": "sha256:47d8862d0a27838a888a65265c081a21eb30052e2914baeaed5ea301a04a6b85",
    "gzipSize": 36067881,
    "tarDigest": "sha256:c4ac9c2aa25febb441f1a0e5161eaeb774f9c1a3f52c1a6564694f17fd978acc",
    "skipHashing": True,
}
FUSION_ENV = ["FUSION_CONFIG_PROFILE=nextflow", "FUSION_COMPACT_SYMLINKS=true"]


def nf_wave_request(
    image: str, bundle_layers: list[dict[str, Any]], platform: str = "linux/amd64"
) -> dict[str, Any]:
    return {
        "towerAccessToken": None,
        "towerRefreshToken": None,
        "towerEndpoint": "https://api.cloud.seqera.io",
        "towerWorkspaceId": None,
        "workflowId": None,
        "containerImage": image,
        "containerFile": None,
        "containerConfig": {
            "entrypoint": ["/usr/bin/fusion"],
            "cmd": None,
            "env": [*FUSION_ENV, "FUSION_SHOW_GLOBAL_INFO=true"],
            "workingDir": None,
            "layers": [*bundle_layers, dict(FUSION_LAYER)],
        },
        "condaFile": None,
        "containerPlatform": platform,
        "buildRepository": None,
        "cacheRepository": None,
        "timestamp": "2026-08-20T10:15:30.123+02:00",
        "fingerprint": "5f0c7a3d9e0b1c2d3e4f5a6b7c8d9e0f",
        "freeze": False,
        "format": None,
        "dryRun": False,
        "containerIncludes": None,
        "packages": None,
        "nameStrategy": None,
        "mirror": False,
        "scanMode": None,
        "scanLevels": None,
        "buildCompression": None,
        "buildTemplate": None,
    }
