"""`wavectl augment`: ask a Wave endpoint for an augmented image, like wave-cli.

Without -o it prints only the targetImage, so `docker run $(wavectl augment alpine) ...` works.
--inspect prints, per platform, the original and augmented digests, the layers added and the
config fields that changed, read back from the endpoint's inspect API (so it shows what a
registry client will really get).
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.request
from pathlib import Path
from typing import Any

from wave_proxy.cli import CliError
from wave_proxy.cli.bundle import BundleError, data_layer, load_layer
from wave_proxy.cli.wave_client import DEFAULT_ENDPOINT, WaveClient, WaveClientError
from wave_proxy.image.mutate import merge_env

CONFIG_FIELDS = ("Entrypoint", "Cmd", "Env", "WorkingDir")


def add_endpoint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint",
        default=os.environ.get("WAVE_ENDPOINT", DEFAULT_ENDPOINT),
        help=f"Wave API endpoint [WAVE_ENDPOINT, default {DEFAULT_ENDPOINT}]",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("WAVE_API_KEY"),
        help="API key sent as Authorization: Bearer [WAVE_API_KEY]",
    )
    parser.add_argument("-o", "--output", choices=("json", "yaml"), help="print the full answer")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "augment",
        help="get an augmented image from a Wave endpoint",
        description="Request IMAGE with layers and config changes; print the targetImage.",
    )
    parser.add_argument("image", metavar="IMAGE", help="e.g. alpine:3.20 or quay.io/org/tool:1")
    parser.add_argument("--platform", help="linux/amd64 (default), linux/arm64, or both (comma)")
    parser.add_argument(
        "--layer",
        action="append",
        default=[],
        type=Path,
        metavar="DIR|TAR",
        help="a directory, .tar or .tar.gz to append (repeatable, in order)",
    )
    config = parser.add_argument_group("image config (replace; --config-env merges by name)")
    config.add_argument("--config-entrypoint", action="append", metavar="ARG", help="repeatable")
    config.add_argument("--config-cmd", action="append", metavar="ARG", help="repeatable")
    config.add_argument("--config-env", action="append", default=[], metavar="K=V")
    config.add_argument("--config-working-dir", metavar="DIR")
    config.add_argument(
        "--config-file", metavar="JSON", help="a Wave container config (file path or http(s) URL)"
    )
    parser.add_argument(
        "--inspect", action="store_true", help="print digests, layers and changes per platform"
    )
    add_endpoint_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        request = build_request(args)
        answer = client.submit(request)
        output: Any = answer
        if args.inspect:
            output = inspect_augmentation(client, answer)
    except (WaveClientError, BundleError) as exc:
        raise CliError(str(exc), exit_code=1) from None
    if args.output is None and not args.inspect:
        print(answer["targetImage"])
    else:
        print_output(output, args.output or "json")
    return 0


def _client(args: argparse.Namespace) -> WaveClient:
    try:
        return WaveClient(args.endpoint, args.api_key)
    except WaveClientError as exc:
        raise CliError(str(exc)) from None


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    config = read_config_file(args.config_file) if args.config_file else {}
    if args.config_entrypoint:
        config["entrypoint"] = args.config_entrypoint
    if args.config_cmd:
        config["cmd"] = args.config_cmd
    if args.config_working_dir:
        config["workingDir"] = args.config_working_dir
    for entry in args.config_env:
        if "=" not in entry or entry.startswith("="):
            raise CliError(f"--config-env {entry!r}: expected NAME=VALUE")
    if args.config_env:
        config["env"] = merge_env(config.get("env") or [], args.config_env)
    layers = list(config.get("layers") or [])
    layers += [data_layer(load_layer(path), path) for path in args.layer]
    if layers:
        config["layers"] = layers
    request: dict[str, Any] = {"containerImage": args.image, "containerConfig": config or None}
    if args.platform:
        request["containerPlatform"] = args.platform
    return request


def read_config_file(source: str) -> dict[str, Any]:
    try:
        if source.startswith(("http://", "https://")):
            with urllib.request.urlopen(source, timeout=60) as response:
                text = response.read()
        else:
            text = Path(source).read_bytes()
        config = json.loads(text)
    except OSError as exc:
        raise CliError(f"--config-file {source}: {getattr(exc, 'reason', None) or exc}") from None
    except ValueError as exc:
        raise CliError(f"--config-file {source}: not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise CliError(f"--config-file {source}: expected a JSON object")
    return config


def inspect_augmentation(client: WaveClient, answer: dict[str, Any]) -> dict[str, Any]:
    """Per platform: what the original image was and what the targetImage now serves."""
    described = client.describe(answer["containerToken"])
    original = f"{described['source']['image']}@{described['source']['digest']}"
    target = answer["targetImage"]
    top = client.inspect(target)
    platforms: list[str | None] = [None]
    if "index" in top:
        platforms = [
            _platform_text(entry["platform"])
            for entry in top["index"]["manifests"]
            if isinstance(entry.get("platform"), dict)
        ]
    return {
        "containerImage": answer["containerImage"],
        "targetImage": target,
        "originalDigest": described["source"]["digest"],
        "augmentedDigest": described["wave"]["digest"],
        "platforms": [
            _compare(
                client.inspect(original, platform)["container"],
                client.inspect(target, platform)["container"],
            )
            for platform in platforms
        ],
    }


def _platform_text(platform: dict[str, Any]) -> str:
    parts = (platform.get("os"), platform.get("architecture"), platform.get("variant"))
    return "/".join(str(p) for p in parts if p)


def _compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    old_layers = before["manifest"]["layers"]
    new_layers = after["manifest"]["layers"]
    old_runtime = before["config"].get("config") or {}
    new_runtime = after["config"].get("config") or {}
    changes = {
        field: {"from": old_runtime.get(field), "to": new_runtime.get(field)}
        for field in CONFIG_FIELDS
        if old_runtime.get(field) != new_runtime.get(field)
    }
    config = after["config"]
    return {
        "platform": _platform_text(config),
        "originalDigest": before["digest"],
        "augmentedDigest": after["digest"],
        "layersAdded": [
            {"digest": layer["digest"], "size": layer["size"]}
            for layer in new_layers[len(old_layers) :]
        ],
        "configChanges": changes,
    }


def print_output(value: Any, fmt: str) -> None:
    if fmt == "yaml":
        print(to_yaml(value), end="")
    else:
        print(json.dumps(value, indent=2))


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML; scalars are written as JSON, which YAML reads as the same values."""
    pad = " " * indent
    if isinstance(value, dict) and value:
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{json.dumps(str(key))}:\n{to_yaml(item, indent + 2)}")
            else:
                lines.append(f"{pad}{json.dumps(str(key))}: {json.dumps(item)}\n")
        return "".join(lines)
    if isinstance(value, list) and value:
        lines = []
        for item in value:
            if isinstance(item, dict | list) and item:
                nested = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {nested.lstrip()}")
            else:
                lines.append(f"{pad}- {json.dumps(item)}\n")
        return "".join(lines)
    return f"{pad}{json.dumps(value)}\n"
