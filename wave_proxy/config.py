"""Settings of `wavectl serve`: CLI flags > environment (WAVE_PROXY_*) > config file > defaults.

Every option is one entry of OPTIONS (at the end of this module): its flag, environment variable,
config key, default, parser and help all come from that entry, and so does the README's table.
Registry mappings and credentials merge per registry name across sources (so `--registry` can
re-point docker.io while the file adds ghcr.io); lists (layers) come whole from the highest
source that sets them. Relative paths in a config file are relative to that file.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fusion_client.settings import parse_size as parse_binary_size
from wave_proxy.image.layer import Platform
from wave_proxy.image.reference import InvalidName, normalise_registry
from wave_proxy.upstream.auth import Credentials

ENV_PREFIX = "WAVE_PROXY_"
DEFAULT_FUSION_LAYERS = "fusion-layers"  # in the data dir, when Fusion is on
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(ValueError):
    """A setting that cannot be used, described so the operator can fix it."""


@dataclass(frozen=True)
class LayerSpec:
    """A gzip tar layer to append, optionally only to images of one platform."""

    path: Path
    platform: Platform | None = None


def env_name(option: str) -> str:
    return ENV_PREFIX + option.upper()


def load_settings(
    cli: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge the sources. `cli` maps option keys to values, None (or absent) when not given."""
    environ = os.environ if environ is None else environ
    config_path = config_file or _path_or_none(environ.get(env_name("config")))
    file_values, base_dir = ({}, Path.cwd())
    if config_path is not None:
        file_values, base_dir = read_config_file(config_path), config_path.resolve().parent
    env_values = {o.key: o.from_env(environ[o.env]) for o in OPTIONS if environ.get(o.env)}
    sources = [
        ("config file", file_values, base_dir, lambda o: f"key {o.key}"),
        ("environment", env_values, Path.cwd(), lambda o: o.env),
        ("command line", {k: v for k, v in cli.items() if v is not None}, Path.cwd(), _flag),
    ]
    values: dict[str, Any] = {}
    for origin, given, base, where in sources:
        for option in OPTIONS:
            if option.key not in given:
                continue
            try:
                value = option.parse(given[option.key], base)
            except ConfigError as exc:
                raise ConfigError(f"{origin} ({where(option)}): {exc}") from None
            if option.merge:  # tables merge by name, over the default's entries
                value = {**values.get(option.key, option.default_value()), **value}
            values[option.key] = value
    fields = {OPTION[key].setting: value for key, value in values.items()}
    if fields.get("fusion") is None:
        fields["fusion"] = not fields.get("layers")  # an explicit --layer replaces it
    settings = Settings(**fields)
    if settings.fusion and settings.fusion_layers is None:
        settings = replace(settings, fusion_layers=settings.data_dir / DEFAULT_FUSION_LAYERS)
    unknown = sorted(set(settings.registry_auth) - set(settings.registries))
    if unknown:
        raise ConfigError(f"credentials given for unconfigured registry {', '.join(unknown)}")
    return settings


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
    unknown = sorted(set(data) - set(OPTION))
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
    """Bytes from `0`, `123456`, `512M`, `10G` or `1TiB`: binary units, in the format that
    fusion_client.settings.parse_size owns (so `10G` means 10 * 2**30 on both sides)."""
    try:
        return parse_binary_size(str(value))
    except ValueError:
        raise ConfigError(f"invalid size {value!r}: use bytes or a unit, e.g. 500M, 10G") from None


def parse_store(value: str) -> str:
    """ "" or "sqlite" for the embedded store, else a redis:// (or rediss://) URL."""
    if value in ("", "sqlite"):
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigError(f"invalid store {value!r}: use sqlite or redis://HOST:PORT/DB")
    return value


def parse_blob_store(value: str) -> str:
    """ "" for none (the local blob cache only), else s3://BUCKET[/PREFIX] or file:///DIR."""
    if value in ("", "none", "local"):
        return ""
    parts = urlsplit(value)
    if parts.scheme == "s3" and parts.netloc:
        return value
    if parts.scheme == "file" and parts.path.startswith("/") and not parts.netloc:
        return value
    raise ConfigError(
        f"invalid blob store {value!r}: use s3://BUCKET[/PREFIX] or file:///DIR (a shared mount)"
    )


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


def parse_network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        raise ConfigError(f"invalid address range {value!r}: expected e.g. 10.0.0.0/8") from None


def parse_count(value: Any) -> int:
    text = str(value).strip()
    if not text.isdigit():
        raise ConfigError(f"invalid number {value!r}: expected a whole number, 0 or more")
    return int(text)


def parse_positive_count(value: Any) -> int:
    if (count := parse_count(value)) == 0:
        raise ConfigError(f"invalid number {value!r}: expected 1 or more")
    return count


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


def _path_or_none(value: str | None) -> Path | None:
    return Path(value) if value else None


def _flag(option: Option) -> str:
    return option.flag


def _path(value: Any, base: Path) -> Path:
    return base / str(value)


def _text(value: Any, _base: Path) -> str:
    return str(value).strip()


def _choice(*choices: str) -> Callable[[Any, Path], str]:
    def parse(value: Any, _base: Path) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ConfigError(f"invalid value {value!r}: use one of {', '.join(choices)}")
        return text

    parse.choices = choices  # type: ignore[attr-defined]
    return parse


@dataclass(frozen=True)
class Option:
    """One `serve` option: flag `--key-with-dashes` (`--key/--no-key` for a boolean),
    environment variable `WAVE_PROXY_KEY`, config file key `key`. `parse(value, base)` turns what
    a source gave (text, or a list for a repeatable option) into the Settings value; `base` is
    the directory that relative paths are relative to."""

    key: str
    help: str
    parse: Callable[[Any, Path], Any]
    metavar: str = ""  # "" for a boolean
    default: str | None = None  # parsed like any input; None: see the help
    attr: str = ""  # the Settings field, when not named like the key
    group: str = "proxy"
    repeat: bool = False  # a repeatable flag; commas or whitespace separate environment entries
    merge: bool = False  # NAME=VALUE entries merge by name across sources, over the default's

    @property
    def setting(self) -> str:
        return self.attr or self.key

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    @property
    def env(self) -> str:
        return env_name(self.key)

    @property
    def boolean(self) -> bool:
        return not self.metavar

    @property
    def choices(self) -> tuple[str, ...]:
        return getattr(self.parse, "choices", ())

    def from_env(self, text: str) -> Any:
        return text.replace(",", " ").split() if self.repeat else text

    def default_value(self) -> Any:
        return self.parse(self.default, Path()) if self.default is not None else {}


def _each(parse: Callable[[Any, Path], Any]) -> Callable[[Any, Path], tuple[Any, ...]]:
    return lambda value, base: tuple(parse(item, base) for item in _as_list(value))


# The options of `wavectl serve`, in the order of `--help`. --config FILE (WAVE_PROXY_CONFIG)
# names the config file and is the one option outside the table.
OPTIONS: tuple[Option, ...] = (
    Option(
        "listen",
        "address to serve the registry, the Wave API and the health endpoints on",
        lambda value, _base: parse_listen(str(value)),
        "HOST:PORT",
        default="0.0.0.0:9090",
    ),
    Option(
        "registry",
        "an upstream registry; entries merge by name with the default and other sources",
        lambda value, _base: parse_registries(value),
        "NAME=URL",
        default="docker.io=https://registry-1.docker.io",
        attr="registries",
        repeat=True,
        merge=True,
    ),
    Option(
        "registry_auth",
        "credentials for an upstream registry (a secret: never logged)",
        lambda value, _base: parse_registry_auth(value),
        "NAME=USER:PASSWORD",
        repeat=True,
        merge=True,
    ),
    Option(
        "docker_config",
        "docker config.json whose credHelpers, auths and credsStore give upstream credentials",
        _path,
        "PATH",
    ),
    Option(
        "layer",
        "a gzip tar layer appended to every image, or only to one platform's; replaces the "
        "default Fusion layer",
        _each(parse_layer),
        "[OS/ARCH=]PATH.tar.gz",
        attr="layers",
        repeat=True,
    ),
    Option(
        "fusion",
        "append the Fusion layer of each image's architecture and run the image's command "
        "through /usr/bin/fusion; default: on unless --layer is given (the layers are built into "
        "--fusion-layers at start when absent)",
        lambda value, _base: parse_bool(value),
    ),
    Option(
        "data_dir",
        "where the embedded store, the blob cache and the built Fusion layers live",
        _path,
        "DIR",
        default="var",
    ),
    Option(
        "blob_cache_size",
        "disk space for upstream blobs kept in --data-dir, e.g. 50GiB; 0 disables",
        lambda value, _base: parse_size(value),
        "SIZE",
        default="10GiB",
    ),
    Option(
        "store",
        "metadata store: sqlite (in --data-dir) or redis://HOST:PORT/DB to share tokens and "
        "augmented images between replicas",
        lambda value, _base: parse_store(str(value)),
        "URL",
        default="sqlite",
        group="Wave API",
    ),
    Option(
        "blob_store",
        "keep every served blob in this store shared by replicas: s3://BUCKET[/PREFIX] "
        "(credentials and AWS_ENDPOINT_URL the standard AWS way) or file:///DIR; default: the "
        "local blob cache only",
        lambda value, _base: parse_blob_store(str(value)),
        "URL",
        group="fleet",
    ),
    Option(
        "blob_redirect",
        "answer blob GETs with a 307 to a short-lived presigned URL of the --blob-store, so blob "
        "bytes do not pass through the proxy",
        lambda value, _base: parse_bool(value),
        default="false",
        group="fleet",
    ),
    Option(
        "advertise_host",
        "host in the targetImage of API responses; default: the Host the client used",
        lambda value, _base: str(value).strip().rstrip("/"),
        "HOST[:PORT]",
        group="Wave API",
    ),
    Option(
        "token_ttl",
        "lifetime of container tokens, e.g. 36h",
        lambda value, _base: parse_duration(value),
        "DURATION",
        default="36h",
        group="Wave API",
    ),
    Option(
        "api_key",
        "require this key (Authorization: Bearer KEY, or Nextflow's tower.accessToken) on API "
        "calls; default: open (a secret: never logged)",
        lambda value, _base: tuple(str(k) for k in _as_list(value) if str(k)),
        "KEY",
        attr="api_keys",
        repeat=True,
        group="Wave API",
    ),
    Option(
        "allow_private_layer_hosts",
        "let containerConfig layers be fetched from loopback, link-local and private addresses",
        lambda value, _base: parse_bool(value),
        default="false",
        group="Wave API",
    ),
    Option(
        "layer_expanded_limit",
        "how far a containerConfig layer may decompress; larger ones (gzip bombs) are refused",
        lambda value, _base: parse_size(value),
        "SIZE",
        default="4GiB",
        group="Wave API",
    ),
    Option(
        "layer_ingests",
        "containerConfig layers decompressed and hashed at once (each keeps a CPU busy)",
        lambda value, _base: parse_positive_count(value),
        "N",
        default="2",
        group="Wave API",
    ),
    Option(
        "fusion_layers",
        "directory with fusion-<version>-<arch>.tar.gz and .json from `wavectl layer build`; "
        "default: DATA_DIR/fusion-layers, built there at start (with --no-fusion: served by "
        "the Wave API if present)",
        _path,
        "DIR",
        group="Wave API",
    ),
    Option(
        "tls_cert",
        "serve HTTPS on --listen with this PEM certificate (chain); SIGHUP reloads it and "
        "--tls-key without dropping connections",
        _path,
        "FILE",
        group="access",
    ),
    Option(
        "tls_key",
        "the PEM private key of --tls-cert (a secret: never logged)",
        _path,
        "FILE",
        group="access",
    ),
    Option(
        "htpasswd",
        "clients must log in (docker login; the registry token flow at /v2/token) as a user of "
        "this file of bcrypt entries, as `htpasswd -B` writes them; Wave token URLs stay open",
        _path,
        "FILE",
        group="access",
    ),
    Option(
        "allow_cidr",
        "admit only clients from this address range (403 DENIED to others; /healthz and "
        "/readyz stay open); with --htpasswd, these need no login and the others must log in; "
        "default: every address",
        _each(lambda value, _base: parse_network(value)),
        "CIDR",
        repeat=True,
        group="access",
    ),
    Option(
        "trusted_proxy",
        "a load balancer's address range: its X-Forwarded-For names the client for "
        "--allow-cidr (from other peers the header is ignored)",
        _each(lambda value, _base: parse_network(value)),
        "CIDR",
        attr="trusted_proxies",
        repeat=True,
        group="access",
    ),
    Option(
        "allow_anonymous_private",
        "start even though upstream credentials (--registry-auth, --docker-config) would serve "
        "private images to every client, for lack of --htpasswd or --allow-cidr",
        lambda value, _base: parse_bool(value),
        default="false",
        group="access",
    ),
    Option(
        "idle_timeout",
        "close a connection that sends no complete request for this long (idle keep-alive "
        "connections too)",
        lambda value, _base: parse_duration(value),
        "DURATION",
        default="60s",
        group="operations",
    ),
    Option(
        "max_connections",
        "connections served at once; more are closed at once (and logged once a minute); "
        "0: half the process's open-files limit",
        lambda value, _base: parse_count(value),
        "N",
        default="0",
        group="operations",
    ),
    Option(
        "metrics_listen",
        "serve /metrics (and /healthz, /readyz) on this separate address instead of --listen",
        lambda value, _base: parse_listen(str(value)),
        "HOST:PORT",
        group="operations",
    ),
    Option(
        "shutdown_grace",
        "after SIGTERM (readiness fails at once, no new connections), how long requests in "
        "flight may take to finish",
        lambda value, _base: parse_duration(value),
        "DURATION",
        default="30s",
        group="operations",
    ),
    Option(
        "log_format",
        "text, or json for one JSON object per line (access lines carry their fields)",
        _choice("text", "json"),
        "FORMAT",
        default="text",
        group="operations",
    ),
    Option(
        "log_level",
        "the least severe log messages written: debug, info, warning or error",
        _choice("debug", "info", "warning", "error"),
        "LEVEL",
        default="info",
        group="operations",
    ),
)
OPTION = {option.key: option for option in OPTIONS}


@dataclass(frozen=True)
class Settings:
    """What `wavectl serve` runs with; see OPTIONS for what each field means."""

    listen: tuple[str, int] = field(default_factory=OPTION["listen"].default_value)
    registries: Mapping[str, str] = field(default_factory=OPTION["registry"].default_value)
    registry_auth: Mapping[str, Credentials] = field(default_factory=dict, repr=False)
    docker_config: Path | None = None
    layers: tuple[LayerSpec, ...] = ()
    data_dir: Path = field(default_factory=OPTION["data_dir"].default_value)
    # Bytes of upstream blobs kept; 0 = none.
    blob_cache_size: int = field(default_factory=OPTION["blob_cache_size"].default_value)
    store: str = field(default_factory=OPTION["store"].default_value)  # "" = SQLite, or redis://
    blob_store: str = ""  # "" = local blob cache only, or s3://BUCKET[/PREFIX], file:///DIR
    blob_redirect: bool = field(default_factory=OPTION["blob_redirect"].default_value)
    advertise_host: str = ""  # host[:port] in targetImage; "" = the Host of each API request
    token_ttl: float = field(default_factory=OPTION["token_ttl"].default_value)
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    allow_private_layer_hosts: bool = field(
        default_factory=OPTION["allow_private_layer_hosts"].default_value
    )
    layer_expanded_limit: int = field(default_factory=OPTION["layer_expanded_limit"].default_value)
    layer_ingests: int = field(default_factory=OPTION["layer_ingests"].default_value)
    fusion_layers: Path | None = None  # directory of fusion-<version>-<arch>.tar.gz + .json
    # Append the Fusion layer of each image's architecture (wave_proxy/fusion_default builds it
    # into fusion_layers at start) and run every image's command through its launcher.
    # load_settings turns this on unless layers are given; a Settings made in code opts in.
    fusion: bool = False
    tls_cert: Path | None = None  # with tls_key: HTTPS on the listen port
    tls_key: Path | None = None
    htpasswd: Path | None = None  # None: pulls need no login
    allow_cidr: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()  # () = all
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    allow_anonymous_private: bool = False
    idle_timeout: float = field(default_factory=OPTION["idle_timeout"].default_value)
    # 0: from the open-files limit (wave_proxy/app/connections.py)
    max_connections: int = field(default_factory=OPTION["max_connections"].default_value)
    metrics_listen: tuple[str, int] | None = None  # None: /metrics on the main port
    shutdown_grace: float = field(default_factory=OPTION["shutdown_grace"].default_value)
    log_format: str = field(default_factory=OPTION["log_format"].default_value)
    log_level: str = field(default_factory=OPTION["log_level"].default_value)

    @property
    def host(self) -> str:
        return self.listen[0]

    @property
    def port(self) -> int:
        return self.listen[1]


def options_markdown() -> str:
    """The README's table of options (tests/wave_proxy/config/test_config_options.py checks it)."""
    rows = ["| flag | environment | config key | default | what it does |", "| --- " * 5 + "|"]
    for option in OPTIONS:
        flag = (
            f"`{option.flag}/--no-{option.flag[2:]}`"
            if option.boolean
            else (f"`{option.flag} {option.metavar}`")
        )
        repeat = " (repeatable)" if option.repeat else ""
        default = f"`{option.default}`" if option.default is not None else ""
        what = option.help.replace("|", "\\|")
        rows.append(f"| {flag}{repeat} | `{option.env}` | `{option.key}` | {default} | {what} |")
    return "\n".join(rows) + "\n"
