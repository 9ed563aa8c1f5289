"""Settings precedence: command line > environment > config file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusion_client.settings import Settings as FusionSettings
from fusion_client.settings import SettingsError
from wave_proxy.config import ConfigError, LayerSpec, load_settings
from wave_proxy.image.layer import Platform
from wave_proxy.upstream.auth import Credentials


def test_defaults_serve_docker_hub_on_9090_appending_the_fusion_layer():
    settings = load_settings({}, environ={})
    assert (settings.host, settings.port) == ("0.0.0.0", 9090)
    assert settings.registries == {"docker.io": "https://registry-1.docker.io"}
    assert settings.fusion is True, "the Fusion layer is on by default"
    assert settings.layers == (), "no extra layers beyond Fusion"
    assert settings.data_dir == Path("var")
    assert settings.fusion_layers == Path("var/fusion-layers")


def test_command_line_beats_environment_beats_config_file(tmp_path):
    config = tmp_path / "proxy.toml"
    config.write_text('listen = "127.0.0.1:1"\ndata_dir = "state"\nlayer = ["a.tar.gz"]\n')
    env = {"WAVE_PROXY_LISTEN": "127.0.0.1:2", "WAVE_PROXY_LAYER": "b.tar.gz,c.tar.gz"}
    settings = load_settings({"listen": "127.0.0.1:3"}, environ=env, config_file=config)
    assert settings.port == 3
    assert [spec.path.name for spec in settings.layers] == ["b.tar.gz", "c.tar.gz"]
    assert settings.data_dir == tmp_path / "state", "relative to the config file"


def test_config_file_can_be_named_by_environment_and_written_in_json(tmp_path):
    config = tmp_path / "proxy.json"
    config.write_text('{"registry": {"ghcr.io": "https://ghcr.io"}, "listen": ":7000"}')
    settings = load_settings({}, environ={"WAVE_PROXY_CONFIG": str(config)})
    assert settings.port == 7000
    assert settings.registries["ghcr.io"] == "https://ghcr.io"


def test_registries_merge_by_name_across_sources():
    settings = load_settings(
        {"registry": ["docker.io=http://127.0.0.1:5000", "quay.io=https://quay.io/"]},
        environ={"WAVE_PROXY_REGISTRY": "ghcr.io=https://ghcr.io"},
    )
    assert settings.registries == {
        "docker.io": "http://127.0.0.1:5000",
        "ghcr.io": "https://ghcr.io",
        "quay.io": "https://quay.io",
    }


def test_registry_auth_splits_user_from_password_at_first_colon():
    settings = load_settings({"registry_auth": ["docker.io=me:pa:ss"]}, environ={})
    assert settings.registry_auth == {"docker.io": Credentials("me", "pa:ss")}


def test_layer_may_be_restricted_to_a_platform():
    settings = load_settings({"layer": ["linux/arm64=/l/arm.tar.gz", "/l/all.tar.gz"]}, {})
    assert settings.layers == (
        LayerSpec(Path("/l/arm.tar.gz"), Platform.parse("linux/arm64")),
        LayerSpec(Path("/l/all.tar.gz"), None),
    )


@pytest.mark.parametrize(
    ("cli", "message"),
    [
        ({"listen": "nohost"}, "HOST:PORT"),
        ({"registry": ["docker.io=ftp://x"]}, "http(s)"),
        ({"registry": ["noequals"]}, "NAME=VALUE"),
        ({"registry_auth": ["docker.io=nopassword"]}, "USER:PASSWORD"),
        ({"registry_auth": ["ghcr.io=u:p"]}, "unconfigured registry ghcr.io"),
        ({"layer": ["linux/x/y/z=/a.tar.gz"]}, "invalid platform"),
    ],
)
def test_bad_settings_say_what_is_wrong(cli, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(cli, environ={})


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("0", 0),
        ("1234", 1234),
        ("64k", 64 << 10),
        ("512M", 512 << 20),
        ("10G", 10 << 30),
        ("10Gi", 10 << 30),
        ("10GB", 10 << 30),
        ("10GiB", 10 << 30),
        ("1.5g", 3 << 29),
        ("1T", 1 << 40),
    ],
)
def test_a_size_means_the_same_binary_bytes_to_the_proxy_and_the_fusion_client(value, size):
    assert load_settings({"blob_cache_size": value}, environ={}).blob_cache_size == size
    assert FusionSettings.from_env({"FUSION_CACHE_SIZE": value}).cache_size == size


@pytest.mark.parametrize("value", ["lots", "5i", "10X", "G", "1.5.0M", "-1G"])
def test_a_malformed_size_is_refused_by_the_proxy_and_the_fusion_client(value):
    with pytest.raises(ConfigError, match="invalid size"):
        load_settings({"blob_cache_size": value}, environ={})
    with pytest.raises(SettingsError, match="FUSION_CACHE_SIZE: not a size"):
        FusionSettings.from_env({"FUSION_CACHE_SIZE": value})


def test_invalid_blob_cache_size_is_refused():
    with pytest.raises(ConfigError, match="invalid size"):
        load_settings({}, environ={"WAVE_PROXY_BLOB_CACHE_SIZE": "lots"})


def test_unknown_config_file_keys_are_refused(tmp_path):
    config = tmp_path / "proxy.toml"
    config.write_text('lissen = "x"\n')
    with pytest.raises(ConfigError, match="unknown option lissen"):
        load_settings({}, environ={}, config_file=config)


def test_unreadable_config_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({}, environ={}, config_file=tmp_path / "missing.toml")
