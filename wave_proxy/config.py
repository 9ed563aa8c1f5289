"""Settings of `wavectl serve`: CLI flags > environment (WAVE_PROXY_*) > config file > defaults.

Registry mappings and credentials merge per registry name across sources (so `--registry` can
re-point docker.io while the file adds ghcr.io); lists (layers) come whole from the highest
source that sets them. Relative paths in a config file are relative to that file.
"""

from __future__ import annotations

import json
import os
import re
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
DEFAULT_FUSION_LAYERS = "fusion-layers"  # in the data dir, when Fusion is on
DEFAULT_BLOB_CACHE_SIZE = 10 << 30
DEFAULT_TOKEN_TTL = 36 * 3600.0
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


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
    blob_cache_size: int = DEFAULT_BLOB_CACHE_SIZE  # bytes of upstream blobs kept; 0 = none
    # Wave API (wave_proxy/api): where state lives, how targetImages are named, who may call.
    store: str = ""  # "" = SQLite in data_dir; redis://HOST:PORT/N shares state between replicas
    advertise_host: str = ""  # host[:port] in targetImage; "" = the Host of each API request
    token_ttl: float = DEFAULT_TOKEN_TTL
    api_keys: tuple[str, ...] = ()
    allow_private_layer_hosts: bool = False
    fusion_layers: Path | None = None  # directory of fusion-<version>-<arch>.tar.gz + .json
    # Append the Fusion layer of each image's architecture (wave_proxy/fusion_default builds it
    # into fusion_layers at start) and run every image's command through its launcher.
    # load_settings turns this on unless layers are given; a Settings made in code opts in.
    fusion: bool = False


# One entry per option: (CLI/config key, environment suffix). Multi-valued environment
# variables separate entries with commas or whitespace.
OPTIONS = (
    *("listen", "registry", "registry_auth", "docker_config", "layer", "data_dir", "store"),
    "blob_cache_size",
    *("advertise_host", "token_ttl", "api_key", "allow_private_layer_hosts", "fusion_layers"),
    "fusion",
)


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
    api: dict[str, Any] = {}
    fusion: bool | None = None
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
            if "blob_cache_size" in values:
                api["blob_cache_size"] = parse_size(values["blob_cache_size"])
            if "store" in values:
                api["store"] = parse_store(str(values["store"]))
            if "advertise_host" in values:
                api["advertise_host"] = str(values["advertise_host"]).strip().rstrip("/")
            if "token_ttl" in values:
                api["token_ttl"] = parse_duration(values["token_ttl"])
            if "api_key" in values:
                api["api_keys"] = tuple(str(k) for k in _as_list(values["api_key"]) if str(k))
            if "allow_private_layer_hosts" in values:
                api["allow_private_layer_hosts"] = parse_bool(values["allow_private_layer_hosts"])
            if "fusion_layers" in values:
                api["fusion_layers"] = base / str(values["fusion_layers"])
            if "fusion" in values:
                fusion = parse_bool(values["fusion"])
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {exc}") from None
    unknown = sorted(set(auth) - set(registries))
    if unknown:
        raise ConfigError(f"credentials given for unconfigured registry {', '.join(unknown)}")
    api["fusion"] = not layers if fusion is None else fusion  # an explicit --layer replaces it
    if api["fusion"]:
        api.setdefault("fusion_layers", data_dir / DEFAULT_FUSION_LAYERS)
    return Settings(host, port, registries, auth, docker_config, layers, data_dir, **api)


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
        if "@" in parts.netloc:  # echoed in errors and logs otherwise
            raise ConfigError(
                f"the URL for registry {name} carries credentials: give the bare URL and the "
                f"credentials with --registry-auth {name}=USER:PASSWORD"
            )
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


def parse_size(value: Any) -> int:
    """Bytes from `0`, `123456`, `512MiB`, `10GiB` or `1TB` (decimal and binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*", str(value), re.IGNORECASE)
    if not match:
        raise ConfigError(f"invalid size {value!r}: use bytes or a unit, e.g. 500MiB, 10GiB")
    number, unit, binary = match.groups()
    exponent = "KMGT".find(unit.upper()) + 1 if unit else 0
    return int(float(number) * (1024 if binary else 1000) ** exponent)


def parse_store(value: str) -> str:
    """ "" or "sqlite" for the embedded store, else a redis:// (or rediss://) URL."""
    if value in ("", "sqlite"):
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigError(f"invalid store {value!r}: use sqlite or redis://HOST:PORT/DB")
    return value


def parse_duration(value: Any) -> float:
    """Seconds, or a number with a unit: 90s, 30m, 36h, 2d."""
    text = str(value).strip().lower()
    unit = _DURATION_UNITS.get(text[-1:], 0)
    number = text[:-1] if unit else text
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise ConfigError(f"invalid duration {value!r}: use e.g. 3600, 90m, 36h or 2d")
    return seconds


def parse_bool(value: Any) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"invalid boolean {value!r}: use true or false")


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
    if option in ("registry", "registry_auth", "layer", "api_key"):
        return value.replace(",", " ").split()
    return value


def _path_or_none(value: str | None) -> Path | None:
    return Path(value) if value else None
