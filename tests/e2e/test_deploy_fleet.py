"""The fleet's operator files: three replicas on one Redis and one bucket, ready on /readyz."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from tests.support import REPO
from wave_proxy.config import load_settings

DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose" / "fleet"


def _kubernetes() -> dict[str, dict[str, dict]]:
    by_kind: dict[str, dict[str, dict]] = {}
    for doc in yaml.safe_load_all((DEPLOY / "kubernetes" / "fleet.yaml").read_text()):
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    return by_kind


def test_kubernetes_fleet_runs_three_replicas_ready_on_readyz_with_shared_stores(tmp_path: Path):
    kinds = _kubernetes()
    deployment = kinds["Deployment"]["wave-proxy"]
    assert deployment["spec"]["replicas"] == 3
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "registry"}
    config = tmp_path / "wave-proxy.toml"
    config.write_text(kinds["ConfigMap"]["wave-proxy-fleet-config"]["data"]["wave-proxy.toml"])
    settings = load_settings({}, environ={}, config_file=config)
    assert settings.blob_store.startswith("s3://") and settings.blob_redirect
    assert urlsplit(settings.store).hostname in kinds["Service"]


def test_compose_fleet_replicas_share_one_config_behind_the_load_balancer():
    compose = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    replicas = [name for name in compose["services"] if name.startswith("wave-proxy-")]
    assert len(replicas) == 3
    settings = load_settings({}, environ={}, config_file=COMPOSE / "wave-proxy.toml")
    assert urlsplit(settings.store).hostname in compose["services"]
    assert settings.blob_store.startswith("s3://")
    endpoint = compose["services"][replicas[0]]["environment"]["AWS_ENDPOINT_URL"]
    assert urlsplit(endpoint).hostname in compose["services"]
    balanced = re.findall(r"server (\S+):9090", (COMPOSE / "nginx.conf").read_text())
    assert sorted(balanced) == sorted(replicas)
