"""The operator files for Kubernetes and systemd: probes on the real health endpoints, the
metrics port annotated, secrets mounted, and a systemd unit that verifies and is hardened."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from tests.support import REPO, free_port, need_binary
from tests.support.proxy import proxy_running, upstream_args
from tests.support.registry import Registry
from wave_proxy.cli import build_parser
from wave_proxy.config import load_settings

DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "systemd" / "wave-proxy.service"
INSTALLED_WAVECTL = "/opt/wave-proxy/bin/wavectl"


def _kubernetes() -> dict[str, list[dict]]:
    by_kind: dict[str, list[dict]] = {}
    for doc in yaml.safe_load_all((DEPLOY / "kubernetes" / "wave-proxy.yaml").read_text()):
        by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


def _container() -> dict:
    [deployment] = _kubernetes()["Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _config(tmp_path: Path) -> Path:
    [config_map] = _kubernetes()["ConfigMap"]
    path = tmp_path / "wave-proxy.toml"
    path.write_text(config_map["data"]["wave-proxy.toml"])
    return path


def test_kubernetes_probes_and_scrape_annotation_name_the_configured_ports(tmp_path: Path):
    container = _container()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    settings = load_settings({}, environ={}, config_file=_config(tmp_path))
    assert ports["registry"] == settings.port
    assert settings.metrics_listen is not None and ports["metrics"] == settings.metrics_listen[1]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "registry"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "registry"}
    [deployment] = _kubernetes()["Deployment"]
    pod = deployment["spec"]["template"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]
    assert pod["spec"]["terminationGracePeriodSeconds"] > settings.shutdown_grace


def test_kubernetes_secret_is_mounted_and_its_files_are_what_the_args_read():
    [secret] = _kubernetes()["Secret"]
    container = _container()
    [deployment] = _kubernetes()["Deployment"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "secrets"]
    assert volumes["secrets"]["secret"]["secretName"] == secret["metadata"]["name"]
    assert {"htpasswd", "tls.crt", "tls.key", "docker-config.json"} <= set(secret["stringData"])
    args = build_parser().parse_args(["serve", *container["args"]])
    assert args.docker_config == f"{mount['mountPath']}/docker-config.json"


def test_kubernetes_pod_runs_as_non_root_with_a_read_only_root():
    [deployment] = _kubernetes()["Deployment"]
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert _container()["securityContext"]["readOnlyRootFilesystem"] is True


def test_kubernetes_probe_and_scrape_paths_answer_on_a_proxy_run_from_its_config(
    tmp_path: Path, upstream: Registry
):
    container = _container()
    [deployment] = _kubernetes()["Deployment"]
    metrics_path = deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"]
    metrics_port = free_port()
    args = ["--config", str(_config(tmp_path)), *upstream_args({"docker.io": upstream})]
    args += ["--metrics-listen", f"127.0.0.1:{metrics_port}"]  # loopback, not 0.0.0.0:9100
    with proxy_running(tmp_path / "proxy", args) as proxy:
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            path = container[probe]["httpGet"]["path"]
            assert requests.get(proxy.url + path, timeout=5).status_code == 200, probe
        scraped = requests.get(f"http://127.0.0.1:{metrics_port}{metrics_path}", timeout=5)
        assert scraped.status_code == 200 and "wave_proxy_ready 1.0" in scraped.text


def _unit() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path):
    wavectl = Path(sys.executable).with_name("wavectl")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(INSTALLED_WAVECTL, str(wavectl)))
    result = subprocess.run(
        [need_binary("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True
    )
    assert result.returncode == 0 and str(unit) not in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DynamicUser", "yes"),
        ("StateDirectory", "wave-proxy"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("KillSignal", "SIGTERM"),
    ],
)
def test_systemd_unit_is_hardened(key: str, value: str):
    assert _unit()[key] == [value]


def test_systemd_unit_runs_a_valid_serve_command_with_state_in_var_lib(tmp_path: Path):
    [exec_start] = _unit()["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[:2] == [INSTALLED_WAVECTL, "serve"]
    args = build_parser().parse_args(argv[1:])
    assert args.data_dir == "/var/lib/wave-proxy"
    [timeout] = _unit()["TimeoutStopSec"]
    grace = load_settings({}, environ={}).shutdown_grace
    assert int(timeout) > grace, "systemd waits longer than the drain"
