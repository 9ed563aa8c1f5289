"""Settings of `wavectl serve`: CLI flags > environment (WAVE_PROXY_*) > config file > defaults.

Registry mappings and credentials merge per registry name across sources (so `--registry` can
re-point docker.io while the file adds ghcr.io); lists (layers) come whole from the highest
source that sets them. Relative paths in a config file are relative to that file.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wave_proxy.image.layer import Platform
from wave_proxy.image.reference import InvalidName, normalise_registry
from wave_proxy.upstream.auth import Credentials

ENV_PREFIX = "WAVE_PROXY_"
DEFAULT_LISTEN = "0.0.0.0:9090"
DEFAULT_REGISTRIES = {"docker.io": "https://registry-1.docker.io"}
DEFAULT_DATA_DIR = Path("var")


class ConfigError(ValueError):
    """A setting that cannot be used, described so the operator can fix it."""


@dataclass(frozen=True)
class LayerSpec:
    """A gzip tar layer to append, optionally only to images of one platform."""

    path: Path
    platform: Platform | None = None


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 9090
    registries: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_REGISTRIES))
    registry_auth: Mapping[str, Credentials] = field(default_factory=dict)
    docker_config: Path | None = None
    layers: tuple[LayerSpec, ...] = ()
    data_dir: Path = DEFAULT_DATA_DIR


# One entry per option: (CLI/config key, environment suffix). Multi-valued environment
# variables separate entries with commas or whitespace.
OPTIONS = ("listen", "registry", "registry_auth", "docker_config", "layer", "data_dir")


def env_name(option: str) -> str:
    return ENV_PREFIX + option.upper()


def load_settings(
    cli: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge the sources. `cli` maps option names to values, None (or absent) when not given."""
    environ = os.environ if environ is None else environ
    config_path = config_file or _path_or_none(environ.get(env_name("config")))
    file_values, base_dir = ({}, Path.cwd())
    if config_path is not None:
        file_values, base_dir = read_config_file(config_path), config_path.resolve().parent
    env_values = {
        option: _split_env(option, environ[env_name(option)])
        for option in OPTIONS
        if environ.get(env_name(option))
    }
    sources = [("config file", file_values, base_dir), ("environment", env_values, Path.cwd())]
    sources.append(("command line", {k: v for k, v in cli.items() if v is not None}, Path.cwd()))

    host, port = parse_listen(DEFAULT_LISTEN)
    registries = dict(DEFAULT_REGISTRIES)
    auth: dict[str, Credentials] = {}
    docker_config: Path | None = None
    layers: tuple[LayerSpec, ...] = ()
    data_dir = DEFAULT_DATA_DIR
    for origin, values, base in sources:
        try:
            if "listen" in values:
                host, port = parse_listen(str(values["listen"]))
            if "registry" in values:
                registries.update(parse_registries(values["registry"]))
            if "registry_auth" in values:
                auth.update(parse_registry_auth(values["registry_auth"]))
            if "docker_config" in values:
                docker_config = base / str(values["docker_config"])
            if "layer" in values:
                layers = tuple(parse_layer(item, base) for item in _as_list(values["layer"]))
            if "data_dir" in values:
                data_dir = base / str(values["data_dir"])
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {exc}") from None
    unknown = sorted(set(auth) - set(registries))
    if unknown:
        raise ConfigError(f"credentials given for unconfigured registry {', '.join(unknown)}")
    return Settings(host, port, registries, auth, docker_config, layers, data_dir)


def read_config_file(path: Path) -> dict[str, Any]:
    """A TOML file (or JSON when it ends in .json) with the option names as keys."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold an object/table of options")
    data = {key.replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(data) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"config file {path}: unknown option {', '.join(unknown)}")
    return data


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"invalid listen address {value!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def parse_registries(value: Any) -> dict[str, str]:
    """`NAME=URL` strings (or a NAME -> URL table in a config file)."""
    pairs = value.items() if isinstance(value, Mapping) else (_pair(v) for v in _as_list(value))
    result = {}
    for name, url in pairs:
        parts = urlsplit(str(url))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"invalid URL {url!r} for registry {name}: use http(s)://HOST[:PORT]")
        result[_registry_name(name)] = str(url).rstrip("/")
    return result


def parse_registry_auth(value: Any) -> dict[str, Credentials]:
    """`NAME=USER:PASSWORD` strings (or a NAME -> "USER:PASSWORD" table)."""
    pairs = value.items() if isinstance(value, Mapping) else (_pair(v) for v in _as_list(value))
    result = {}
    for name, secret in pairs:
        user, sep, password = str(secret).partition(":")
        if not sep or not user:
            raise ConfigError(f"invalid credentials for registry {name}: expected USER:PASSWORD")
        result[_registry_name(name)] = Credentials(user, password)
    return result


def parse_layer(value: Any, base: Path) -> LayerSpec:
    """`[OS/ARCH[/VARIANT]=]PATH.tar.gz`."""
    text = str(value)
    platform = None
    prefix, sep, rest = text.partition("=")
    if sep and "/" in prefix and not prefix.startswith((".", "/")):
        try:
            platform = Platform.parse(prefix)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        text = rest
    if not text:
        raise ConfigError(f"invalid layer {value!r}: expected [PLATFORM=]PATH.tar.gz")
    return LayerSpec(base / text, platform)


def _registry_name(name: Any) -> str:
    try:
        return normalise_registry(str(name))
    except InvalidName as exc:
        raise ConfigError(str(exc)) from None


def _pair(item: Any) -> tuple[str, str]:
    name, sep, value = str(item).partition("=")
    if not sep or not name:
        raise ConfigError(f"invalid entry {item!r}: expected NAME=VALUE")
    return name, value


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _split_env(option: str, value: str) -> Any:
    if option in ("registry", "registry_auth", "layer"):
        return value.replace(",", " ").split()
    return value


def _path_or_none(value: str | None) -> Path | None:
    return Path(value) if value else None
