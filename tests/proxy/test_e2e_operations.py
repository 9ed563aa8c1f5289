"""What an operator watches on a running `wavectl serve`: /metrics (parsed with
prometheus_client's own parser) after real pulls and API calls, /healthz and /readyz, and the
access log."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import free_port, need_binary, wait_until
from tests.support.images import Shapes
from tests.support.proxy import Proxy, proxy_running, upstream_args
from tests.support.redis import redis_running
from tests.support.registry import Registry

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((f"wave_proxy_{name}", tuple(sorted(labels.items()))), 0.0)


def scrape_when(url: str, name: str, expected: float, **labels: str) -> Samples:
    """Requests are counted once their answer has gone: wait until the last one is."""
    found: list[Samples] = []

    def reached() -> bool:
        found.append(scrape(url))
        return value(found[-1], name, **labels) >= expected

    wait_until(reached, 10, f"{name} {labels} to reach {expected}")
    return found[-1]


def skopeo_copy(proxy: Proxy, reference: str, target: Path) -> None:
    result = subprocess.run(
        [
            need_binary("skopeo"),
            "copy",
            "--src-tls-verify=false",
            *(
                f"docker://{proxy.host}/{reference}",
                f"dir:{target}",
            ),
        ],
        capture_output=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr.decode()


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def observed_proxy(
    tmp_path: Path, upstream: Registry, marker_layer, metrics_port: int
) -> Iterator[Proxy]:
    """A fresh proxy (its counters start at zero) with metrics on their own port, JSON logs."""
    args = [*upstream_args({"docker.io": upstream}), "--layer", str(marker_layer[0])]
    args += ["--metrics-listen", f"127.0.0.1:{metrics_port}", "--log-format", "json"]
    with proxy_running(tmp_path / "proxy", args) as proxy:
        yield proxy


def test_metrics_count_pulls_cache_use_augmentations_and_tokens(
    observed_proxy: Proxy, shapes: Shapes, marker_layer, metrics_port: int, tmp_path: Path
):
    image = shapes.schema2
    upstream_bytes = sum(layer.size for layer in image.layers)
    metrics_url = f"http://127.0.0.1:{metrics_port}"

    skopeo_copy(observed_proxy, image.reference, tmp_path / "first")
    blobs = len(image.layers) + 2  # the config and the marker layer
    first = scrape_when(metrics_url, "http_requests_total", blobs, route="blob", status="200")
    assert value(first, "http_requests_total", route="manifest", status="200") >= 1
    assert value(first, "augmentation_duration_seconds_count", kind="image") == 1
    assert value(first, "upstream_requests_total", registry="docker.io", status="200") >= 1
    assert value(first, "upstream_request_duration_seconds_count", registry="docker.io") >= 1
    assert value(first, "blob_bytes_served_total", source="upstream") == upstream_bytes
    assert value(first, "blob_bytes_served_total", source="local") >= marker_layer[1].size
    assert value(first, "blob_cache_requests_total", result="miss") == len(image.layers)
    assert value(first, "http_request_duration_seconds_count", route="blob") == (
        value(first, "http_requests_total", route="blob", status="200")
    )

    skopeo_copy(observed_proxy, image.reference, tmp_path / "second")
    response = requests.post(
        f"{observed_proxy.url}/v1alpha2/container",
        json={"containerImage": image.reference},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    second = scrape_when(metrics_url, "http_requests_total", 1, route="api", status="200")
    assert value(second, "blob_cache_requests_total", result="hit") == len(image.layers)
    assert value(second, "blob_bytes_served_total", source="cache") == upstream_bytes
    assert value(second, "blob_bytes_served_total", source="upstream") == upstream_bytes
    assert value(second, "blob_cache_bytes") == upstream_bytes
    assert value(second, "augmentation_duration_seconds_count", kind="image") == 1
    assert value(second, "http_requests_total", route="api", status="200") == 1
    assert value(second, "tokens_live") == 1
    assert value(second, "store_errors_total", operation="get_value") == 0


def test_metrics_move_to_the_metrics_port_when_one_is_given(
    observed_proxy: Proxy, metrics_port: int
):
    assert requests.get(f"{observed_proxy.url}/metrics", timeout=5).status_code == 404
    assert "wave_proxy_ready" in requests.get(f"http://127.0.0.1:{metrics_port}/metrics").text


def test_metrics_are_served_on_the_main_port_by_default(tmp_path: Path, upstream: Registry):
    with proxy_running(tmp_path, upstream_args({"docker.io": upstream})) as proxy:
        samples = scrape(proxy.url)
    assert ("process_open_fds", ()) in samples, "process metrics come along"


def test_health_and_readiness_answer_without_credentials(observed_proxy: Proxy):
    assert requests.get(f"{observed_proxy.url}/healthz", timeout=5).status_code == 200
    ready = requests.get(f"{observed_proxy.url}/readyz", timeout=5)
    assert (ready.status_code, ready.text) == (200, "ready\n")


def _access_lines(proxy: Proxy) -> list[dict]:
    lines = [json.loads(line) for line in proxy.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "wave_proxy.access"]


def test_access_log_has_one_json_line_per_request_and_no_secrets(
    observed_proxy: Proxy, shapes: Shapes
):
    token = "0123456789abcdef01234567"
    url = observed_proxy.url
    # The line of the start-up check's GET /v2/ is written once its answer has gone.
    wait_until(lambda: _access_lines(observed_proxy), 10, "the start-up check's access line")
    before = len(_access_lines(observed_proxy))
    requests.get(f"{url}/v2/", auth=("alice", "pw-s3cret"), timeout=5)
    requests.get(
        f"{url}/v2/{shapes.schema2.repository}/manifests/{shapes.schema2.tag}",
        headers={"Authorization": "Bearer key-s3cret"},
        timeout=30,
    )
    requests.get(f"{url}/v2/wt/{token}/x/manifests/1?access_token=tok-s3cret", timeout=5)
    wait_until(lambda: len(_access_lines(observed_proxy)) >= before + 3, 10, "the access lines")

    lines = _access_lines(observed_proxy)[before:]
    assert len(lines) == 3
    version, manifest, by_token = lines
    assert (version["method"], version["path"], version["status"]) == ("GET", "/v2/", 200)
    assert version["user"] == "alice" and version["remote"] == "127.0.0.1"
    assert manifest["route"] == "manifest" and manifest["user"] == "bearer"
    assert manifest["bytes"] > 0 and manifest["duration"] > 0
    assert by_token["status"] == 404 and by_token["user"] == "token:01234567…"
    assert by_token["path"] == "/v2/wt/01234567…/x/manifests/1?access_token=%2A%2A%2A"
    log = observed_proxy.log()
    for secret in ("pw-s3cret", "key-s3cret", "tok-s3cret", token):
        assert secret not in log


def test_text_access_lines_name_client_request_status_bytes_and_time(
    tmp_path: Path, upstream: Registry
):
    with proxy_running(tmp_path, upstream_args({"docker.io": upstream})) as proxy:
        requests.get(f"{proxy.url}/healthz", timeout=5)
        wait_until(lambda: "/healthz" in proxy.log(), 10, "the access line")
        line = next(x for x in proxy.log().splitlines() if "GET /healthz" in x)
    assert re.search(r'127\.0\.0\.1 - "GET /healthz HTTP/1\.1" 200 3 \d+\.\d{3}s healthz$', line)


def test_readiness_fails_without_the_store_and_health_does_not(tmp_path: Path, upstream: Registry):
    (tmp_path / "redis").mkdir()
    with redis_running(tmp_path / "redis") as redis:
        args = [*upstream_args({"docker.io": upstream}), "--store", redis.url(3)]
        with proxy_running(tmp_path / "proxy", args) as proxy:
            assert requests.get(f"{proxy.url}/readyz", timeout=5).status_code == 200
            redis.service.stop()
            ready = requests.get(f"{proxy.url}/readyz", timeout=10)
            assert ready.status_code == 503
            assert ready.text.startswith("not ready: metadata store unreachable")
            assert requests.get(f"{proxy.url}/healthz", timeout=5).status_code == 200


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 96 MiB tmpfs of our own (unmounted afterwards)."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def test_readiness_fails_while_the_data_dir_is_full(
    tmp_path: Path, upstream: Registry, small_disk: Path
):
    args = upstream_args({"docker.io": upstream})
    with proxy_running(tmp_path / "proxy", args, data_dir=small_disk / "data") as proxy:
        assert requests.get(f"{proxy.url}/readyz", timeout=5).status_code == 200
        filler = small_disk / "filler"
        filler.write_bytes(os.urandom(48 << 20))
        ready = requests.get(f"{proxy.url}/readyz", timeout=5)
        assert ready.status_code == 503 and "data dir full" in ready.text
        filler.unlink()
        assert requests.get(f"{proxy.url}/readyz", timeout=5).status_code == 200
