"""The Wave API options of `wavectl serve`: flags, environment and config file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import free_port
from tests.support.proxy import WAVECTL
from wave_proxy.config import ConfigError, load_settings


def test_api_options_from_flags() -> None:
    settings = load_settings(
        {
            "store": "redis://127.0.0.1:6379/2",
            "advertise_host": "wave.example.com/",
            "token_ttl": "90m",
            "api_key": ["one", "two"],
            "allow_private_layer_hosts": True,
            "fusion_layers": "layers/out",
        },
        environ={},
    )
    assert settings.store == "redis://127.0.0.1:6379/2"
    assert settings.advertise_host == "wave.example.com"
    assert settings.token_ttl == 5400
    assert settings.api_keys == ("one", "two")
    assert settings.allow_private_layer_hosts is True
    assert settings.fusion_layers == Path.cwd() / "layers/out"


def test_api_options_from_environment() -> None:
    environ = {
        "WAVE_PROXY_TOKEN_TTL": "2d",
        "WAVE_PROXY_API_KEY": "a,b",
        "WAVE_PROXY_ALLOW_PRIVATE_LAYER_HOSTS": "yes",
        "WAVE_PROXY_STORE": "sqlite",
    }
    settings = load_settings({}, environ=environ)
    assert (settings.token_ttl, settings.api_keys) == (172800, ("a", "b"))
    assert settings.allow_private_layer_hosts is True
    assert settings.store == ""


def test_api_options_from_config_file(tmp_path: Path) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text('token-ttl = 3600\nfusion-layers = "fusion"\napi-key = ["k"]\n')
    settings = load_settings({}, environ={}, config_file=config)
    assert (settings.token_ttl, settings.api_keys) == (3600, ("k",))
    assert settings.fusion_layers == tmp_path / "fusion"


def test_defaults_are_sqlite_36h_open_and_public_layers_only() -> None:
    settings = load_settings({}, environ={})
    assert (settings.store, settings.token_ttl, settings.api_keys) == ("", 36 * 3600, ())
    assert settings.allow_private_layer_hosts is False


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("store", "memcached://x", "invalid store"),
        ("token_ttl", "soon", "invalid duration"),
        ("token_ttl", "-5m", "invalid duration"),
        ("allow_private_layer_hosts", "maybe", "invalid boolean"),
    ],
)
def test_bad_api_options_are_reported(option: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({option: value}, environ={})


def test_serve_with_unreachable_redis_exits_with_one_line(tmp_path: Path) -> None:
    argv = [str(WAVECTL), "serve", "--listen", f"127.0.0.1:{free_port()}"]
    argv += ["--data-dir", str(tmp_path), "--store", f"redis://127.0.0.1:{free_port()}/0"]
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("wavectl: error: cannot reach the Redis store redis://127.0.0.1:")
    assert "Traceback" not in result.stderr
