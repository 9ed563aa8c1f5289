"""Every `serve` option comes from one table: flag, environment variable, config key, README."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import pytest

from wave_proxy.cli import build_parser
from wave_proxy.cli.serve import settings_from
from wave_proxy.config import OPTIONS, Option, Settings, load_settings, options_markdown
from wave_proxy.upstream.auth import Credentials

README = Path(__file__).resolve().parents[3] / "README.md"

# For each option: a value as typed, and the Settings value it gives (not the default).
EXAMPLES: dict[str, tuple[Any, Any]] = {
    "listen": ("127.0.0.1:7000", ("127.0.0.1", 7000)),
    "registry": (
        "ghcr.io=https://ghcr.io",
        {"docker.io": "https://registry-1.docker.io", "ghcr.io": "https://ghcr.io"},
    ),
    "registry_auth": ("docker.io=me:s3cret", {"docker.io": Credentials("me", "s3cret")}),
    "docker_config": ("/etc/wave/docker.json", Path("/etc/wave/docker.json")),
    "layer": ("/l/extra.tar.gz", None),  # checked by path below
    "fusion": (False, False),
    "data_dir": ("/srv/wave", Path("/srv/wave")),
    "blob_cache_size": ("1GiB", 1 << 30),
    "store": ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    "blob_store": ("s3://wave-blobs/fleet-a", "s3://wave-blobs/fleet-a"),
    "blob_redirect": (True, True),
    "advertise_host": ("wave.internal:9090", "wave.internal:9090"),
    "token_ttl": ("2h", 7200.0),
    "api_key": ("k-123", ("k-123",)),
    "allow_private_layer_hosts": (True, True),
    "fusion_layers": ("/srv/fusion-layers", Path("/srv/fusion-layers")),
    "tls_cert": ("/etc/wave/tls.crt", Path("/etc/wave/tls.crt")),
    "tls_key": ("/etc/wave/tls.key", Path("/etc/wave/tls.key")),
    "htpasswd": ("/etc/wave/htpasswd", Path("/etc/wave/htpasswd")),
    "allow_cidr": ("10.0.0.0/8", (ipaddress.ip_network("10.0.0.0/8"),)),
    "trusted_proxy": ("192.168.0.0/16", (ipaddress.ip_network("192.168.0.0/16"),)),
    "allow_anonymous_private": (True, True),
    "idle_timeout": ("10s", 10.0),
    "max_connections": ("500", 500),
    "layer_expanded_limit": ("1GiB", 1 << 30),
    "layer_ingests": ("4", 4),
    "metrics_listen": ("127.0.0.1:9102", ("127.0.0.1", 9102)),
    "shutdown_grace": ("5s", 5.0),
    "log_format": ("json", "json"),
    "log_level": ("debug", "debug"),
}


def _given(settings: Settings, option: Option) -> Any:
    value = getattr(settings, option.setting)
    if option.key == "layer":
        return tuple(str(spec.path) for spec in value)
    return value


def _expected(option: Option) -> Any:
    raw, expected = EXAMPLES[option.key]
    return (raw,) if option.key == "layer" else expected


def _argv(option: Option, raw: Any) -> list[str]:
    if option.boolean:
        return [option.flag if raw else f"--no-{option.flag[2:]}"]
    return [option.flag, str(raw)]


def _env_text(raw: Any) -> str:
    return str(raw).lower() if isinstance(raw, bool) else str(raw)


def test_every_option_has_an_example_here():
    assert sorted(EXAMPLES) == sorted(option.key for option in OPTIONS)


@pytest.mark.parametrize("option", OPTIONS, ids=lambda option: option.key)
def test_every_option_is_a_flag_an_environment_variable_and_a_config_key(
    option: Option, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    raw, _ = EXAMPLES[option.key]
    expected = _expected(option)
    default = load_settings({}, environ={})
    assert _given(default, option) != expected, "the example must differ from the default"
    for name in (o.env for o in OPTIONS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("WAVE_PROXY_CONFIG", raising=False)

    args = build_parser().parse_args(["serve", *_argv(option, raw)])
    assert _given(settings_from(args), option) == expected, option.flag

    from_env = load_settings({}, environ={option.env: _env_text(raw)})
    assert _given(from_env, option) == expected, option.env

    config = tmp_path / "proxy.json"
    config.write_text(json.dumps({option.key: [raw] if option.repeat else raw}))
    from_file = load_settings({}, environ={}, config_file=config)
    assert _given(from_file, option) == expected, f"config key {option.key}"


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.boolean], ids=lambda option: option.key)
def test_a_boolean_flag_overrides_the_environment_both_ways(
    option: Option, monkeypatch: pytest.MonkeyPatch
):
    for env_value, argv, expected in (("true", "--no-", False), ("false", "--", True)):
        monkeypatch.setenv(option.env, env_value)
        args = build_parser().parse_args(["serve", argv + option.flag[2:]])
        assert getattr(settings_from(args), option.setting) is expected


def test_log_level_is_taken_from_the_environment_and_checked():
    assert load_settings({}, environ={"WAVE_PROXY_LOG_LEVEL": "WARNING"}).log_level == "warning"
    with pytest.raises(Exception, match=r"WAVE_PROXY_LOG_LEVEL.*use one of debug, info"):
        load_settings({}, environ={"WAVE_PROXY_LOG_LEVEL": "loud"})


def test_a_bad_value_names_the_source_and_the_option(tmp_path: Path):
    config = tmp_path / "proxy.toml"
    config.write_text('token_ttl = "soon"\n')
    with pytest.raises(Exception, match=r"^config file \(key token_ttl\): invalid duration"):
        load_settings({}, environ={}, config_file=config)


def test_secrets_do_not_appear_in_the_settings_repr():
    settings = load_settings(
        {"registry_auth": ["docker.io=me:s3cret"], "api_key": ["k-123"]}, environ={}
    )
    assert "s3cret" not in repr(settings) and "k-123" not in repr(settings)


def test_serve_help_names_every_flag_and_environment_variable(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = re.sub(r"\s+", " ", capsys.readouterr().out)
    for option in OPTIONS:
        assert option.flag in text and f"[{option.env}]" in text


def test_readme_options_table_is_the_option_table():
    text = README.read_text()
    begin, end = "<!-- options:begin -->\n", "<!-- options:end -->"
    assert begin in text and end in text
    table = text[text.index(begin) + len(begin) : text.index(end)]
    assert table == options_markdown(), (
        "README's options table is out of date; replace it with the output of\n"
        "  python -c 'from wave_proxy.config import options_markdown as t; print(t(), end=\"\")'"
    )


def test_layer_ingests_of_zero_is_refused():
    with pytest.raises(Exception, match=r"WAVE_PROXY_LAYER_INGESTS.*expected 1 or more"):
        load_settings({}, environ={"WAVE_PROXY_LAYER_INGESTS": "0"})
