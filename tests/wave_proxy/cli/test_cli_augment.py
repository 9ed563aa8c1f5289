"""`wavectl augment` and `wavectl token` as users run them, against a real `wavectl serve`."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support import free_port
from tests.support.images import Shapes
from tests.support.proxy import WAVECTL, Proxy, proxy_running, upstream_args
from tests.support.registry import Registry
from tests.wave_proxy.api.helpers import skopeo

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def endpoint(
    tmp_path_factory: pytest.TempPathFactory, upstream: Registry, shapes: Shapes, fusion_dir: Path
) -> Iterator[Proxy]:
    args = [*upstream_args({"docker.io": upstream}), "--fusion-layers", str(fusion_dir)]
    with proxy_running(tmp_path_factory.mktemp("cli-endpoint"), args) as proxy:
        yield proxy


def wavectl(*args: str, endpoint: Proxy | None = None) -> subprocess.CompletedProcess[str]:
    env_args = ["--endpoint", endpoint.url] if endpoint else []
    return subprocess.run(
        [str(WAVECTL), *args, *env_args], capture_output=True, text=True, timeout=120
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "bin-bundle"
    (directory / "usr/local/bin").mkdir(parents=True)
    script = directory / "usr/local/bin/hello.sh"
    script.write_text("#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    return directory


def test_prints_only_the_target_image_which_skopeo_copies(
    endpoint: Proxy, bin_dir: Path, tmp_path: Path
) -> None:
    out = ok(wavectl("augment", "busybox:1", "--layer", str(bin_dir), endpoint=endpoint))
    target = out.strip()
    assert target.startswith(f"{endpoint.host}/wt/") and target.endswith("/library/busybox:1")
    assert "\n" not in target
    skopeo("copy", "--src-tls-verify=false", f"docker://{target}", f"oci:{tmp_path / 'copy'}")


def test_directory_layer_is_packed_deterministically(endpoint: Proxy, bin_dir: Path) -> None:
    digests = [
        json.loads(
            ok(
                wavectl(
                    "augment", "busybox:1", "--layer", str(bin_dir), "--inspect", endpoint=endpoint
                )
            )
        )["platforms"][0]["layersAdded"]
        for _ in range(2)
    ]
    assert digests[0] == digests[1] and len(digests[0]) == 1


@pytest.mark.parametrize("shape", ["schema2", "oci_index"])
def test_inspect_matches_what_skopeo_sees(
    endpoint: Proxy, shapes: Shapes, bin_dir: Path, shape: str
) -> None:
    image = shapes.named(shape).reference
    args = ["augment", image, "--layer", str(bin_dir), "--config-env", "NEW=1"]
    args += ["--config-cmd", "echo", "--config-cmd", "hi", "--platform", "linux/amd64,linux/arm64"]
    report = json.loads(ok(wavectl(*args, "--inspect", endpoint=endpoint)))
    target = report["targetImage"]
    assert len(report["platforms"]) == (2 if shape == "oci_index" else 1)
    for platform in report["platforms"]:
        arch = platform["platform"].split("/")[1]
        inspect = ["inspect", "--tls-verify=false", "--override-arch", arch]
        raw = skopeo(*inspect, "--raw", f"docker://{target}")
        manifest = json.loads(raw)
        if "manifests" in manifest:  # an index: skopeo --raw shows it; resolve the platform
            entry = next(m for m in manifest["manifests"] if m["platform"]["architecture"] == arch)
            assert entry["digest"] == platform["augmentedDigest"]
            manifest = json.loads(
                skopeo(*inspect, "--raw", f"docker://{target.rsplit(':', 1)[0]}@{entry['digest']}")
            )
        added = [{"digest": x["digest"], "size": x["size"]} for x in manifest["layers"][-1:]]
        assert platform["layersAdded"] == added
        config = json.loads(skopeo(*inspect, "--config", f"docker://{target}"))["config"]
        assert platform["configChanges"]["Cmd"]["to"] == config["Cmd"] == ["echo", "hi"]
        assert platform["configChanges"]["Env"]["to"] == config["Env"]
        assert "NEW=1" in config["Env"]
        assert platform["originalDigest"] != platform["augmentedDigest"]


def test_json_and_yaml_outputs_hold_the_whole_answer(endpoint: Proxy) -> None:
    as_json = json.loads(ok(wavectl("augment", "busybox:1", "-o", "json", endpoint=endpoint)))
    as_yaml = yaml.safe_load(ok(wavectl("augment", "busybox:1", "-o", "yaml", endpoint=endpoint)))
    for answer in (as_json, as_yaml):
        assert {"requestId", "containerToken", "targetImage", "expiration"} <= set(answer)


def test_config_file_and_flags_merge(endpoint: Proxy, tmp_path: Path) -> None:
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"env": ["A=1", "B=2"], "workingDir": "/from-file"}))
    args = ["augment", "busybox:1", "--config-file", str(config_file), "--config-env", "B=3"]
    report = json.loads(ok(wavectl(*args, "--inspect", endpoint=endpoint)))
    changes = report["platforms"][0]["configChanges"]
    assert changes["WorkingDir"]["to"] == "/from-file"
    assert changes["Env"]["to"][-2:] == ["A=1", "B=3"]


def test_token_show_and_delete(endpoint: Proxy, tmp_path: Path) -> None:
    answer = json.loads(ok(wavectl("augment", "busybox:1", "-o", "json", endpoint=endpoint)))
    token = answer["containerToken"]
    shown = json.loads(ok(wavectl("token", "show", token, endpoint=endpoint)))
    assert shown["token"] == token and shown["source"]["image"] == "docker.io/library/busybox"
    assert ok(wavectl("token", "delete", token, endpoint=endpoint)).strip() == f"deleted {token}"
    result = wavectl("token", "show", token, endpoint=endpoint)
    assert result.returncode == 1
    assert "was deleted" in result.stderr
    copy = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{answer['targetImage']}"],
        capture_output=True,
        text=True,
    )
    assert copy.returncode != 0
    assert "was deleted" in copy.stderr, copy.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["augment", "busybox:1", "--platform", "linux/s390x"],
            1,
            "containerPlatform: unsupported",
        ),
        (["augment", "busybox:1", "--config-env", "NOEQUALS"], 2, "--config-env 'NOEQUALS'"),
        (["augment", "busybox:1", "--layer", "/no/such/dir"], 1, "--layer /no/such/dir"),
        (["augment", "shapes/missing:1"], 1, "does not exist"),
        (["token", "show", "0123456789abcdef01234567"], 1, "unknown container token"),
    ],
)
def test_errors_are_one_line_with_a_non_zero_exit(
    endpoint: Proxy, args: list[str], code: int, message: str
) -> None:
    result = wavectl(*args, endpoint=endpoint)
    assert result.returncode == code
    assert result.stderr.startswith("wavectl: error: ")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_unreachable_endpoint_is_one_line() -> None:
    result = wavectl("augment", "busybox:1", "--endpoint", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stderr.startswith("wavectl: error: cannot reach http://127.0.0.1:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_endpoint_comes_from_wave_endpoint_when_not_given(endpoint: Proxy) -> None:
    result = subprocess.run(
        [str(WAVECTL), "augment", "busybox:1"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "WAVE_ENDPOINT": endpoint.url},
    )
    assert ok(result).startswith(f"{endpoint.host}/wt/")
